"""The owner's fingerprinting methods, one class per file, registered by name.

``create_method(name, **params)`` -> a ``FingerprintMethod``; ``list_methods()`` -> names.
``method.generate(model, n, *, generator, seeds=None, pools=None, progress=None, target=None,
input_shape=None) -> FingerprintSet``.

Registered: ``ipguard`` (Cao et al. 2021), ``cae`` (Lukas et al. 2021), ``vce``, ``rce``,
``rce-gm``, ``rce-lt`` (Wang et al. 2021), and the label-only methods built for extraction:
``akh`` (Godinot et al. 2025), ``sac-m`` (Guan et al. 2022) and ``di`` (Maini et al. 2021);
and ``transfer``, the false claimant's transferable samples (Liu et al. 2024), which the testbed
measures the defence against. Importing this package registers all of them.
"""

from __future__ import annotations

import inspect
from typing import Any

from models.errors import UserError
from verifier_client.fingerprints import (  # noqa: F401
    akh,
    cae,
    di,
    ipguard,
    rce,
    rce_gm,
    rce_lt,
    sac_m,
    transfer,
    vce,
)
from verifier_client.fingerprints.base import (
    METHODS,
    Candidates,
    FingerprintMethod,
    GenerationError,
    ModelPools,
    ProgressEvent,
    ProgressFn,
    Run,
    SeedPool,
    register_method,
    snap,
)

__all__ = ["Candidates", "FingerprintMethod", "GenerationError", "ModelPools", "ProgressEvent",
           "ProgressFn", "Run", "SeedPool", "create_method", "get_method_class", "list_methods",
           "method_parameters", "register_method", "snap"]


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching a shell-style ``pattern``, sorted."""
    return METHODS.names(pattern)


def get_method_class(name: str) -> type[FingerprintMethod]:
    return METHODS.lookup(name)


def method_parameters(name: str) -> dict[str, Any]:
    """Each parameter of method ``name`` with its default."""
    cls = get_method_class(name)
    defaults: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for pname, param in inspect.signature(init).parameters.items():
            if param.kind is param.KEYWORD_ONLY:
                defaults[pname] = param.default
    return {pname: defaults[pname] for pname in cls.parameter_names()}


def create_method(name: str, **params: Any) -> FingerprintMethod:
    """An instance of method ``name`` with ``params`` (validated; bad ones raise ``UserError``)."""
    cls = get_method_class(name)
    known = cls.parameter_names()
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise UserError(f"{name}: unknown parameter(s) {', '.join(unknown)}; it takes "
                        f"{', '.join(known)}")
    try:
        return cls(**params)
    except (TypeError, ValueError) as error:
        raise UserError(f"{name}: bad parameter value ({error})") from None
