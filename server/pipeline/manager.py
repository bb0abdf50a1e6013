"""The set of served models and their loading.

``ModelManager.start`` (lifespan) returns at once; one background thread loads, warms up and
starts the models one after the other, so ``/v2/health/live`` answers during loading and
``/v2/health/ready`` turns true only when every model has warmed up.

A model that fails (at planning or while loading): with ``exit_on_error`` (the default, as
Triton's ``--exit-on-error``) it calls ``on_fatal`` (the CLI then exits non-zero) and the server
never becomes ready; without it the other models serve, and the failed one answers 503 with the
kind of failure and shows as not ready. The wire never carries paths or a runtime's messages:
those go to the log.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable

from models.config import validate_model_name
from models.errors import UserError
from server.core.config import Settings
from server.core.errors import BadRequestError, NotFoundError, UnavailableError
from server.metrics import Metrics
from server.pipeline.served_model import ModelPlan, ServedModel, public_reason

log = logging.getLogger("server")


class ModelManager:
    def __init__(self, settings: Settings, plans: list[ModelPlan], metrics: Metrics,
                 on_fatal: Callable[[str], None] | None = None,
                 failed: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.models = {plan.name: ServedModel(plan, settings, metrics) for plan in plans}
        #: models that could not be served, with the reason the wire may show
        self.failed: dict[str, str] = dict(failed or {})
        self._on_fatal = on_fatal
        self._stop = threading.Event()
        self._loader = threading.Thread(target=self._load_all, name="model-loader", daemon=True)
        self.error: str | None = None

    @property
    def ready(self) -> bool:
        """Every model that has not failed is ready (with ``exit_on_error``: none failed)."""
        return self.error is None and all(m.ready for name, m in self.models.items()
                                          if name not in self.failed)

    def unavailable(self, name: str) -> str | None:
        """Why model ``name`` cannot serve (``None`` when it can, or is still loading)."""
        return self.failed.get(name)

    def get(self, name: str) -> ServedModel:
        """The served model ``name``: 400 for an invalid name, 404 for one not served."""
        try:
            validate_model_name(name)
        except UserError as error:
            raise BadRequestError(str(error)) from None
        if name in self.failed:
            raise UnavailableError(f"model {name!r} is unavailable: {self.failed[name]}",
                                   retry_after_s=60)
        model = self.models.get(name)
        if model is None:
            raise NotFoundError(f"unknown model {name!r}")
        return model

    def start(self) -> None:
        self._loader.start()

    def _load_all(self) -> None:
        for model in self.models.values():
            if self._stop.is_set():
                return
            try:
                model.load(self._stop)
            except Exception as error:
                message = str(error) if isinstance(error, UserError) else \
                    f"{type(error).__name__}: {error}"
                message = " ".join(message.split())[:500]  # runtimes' messages span lines
                # one line for the operator; the stack only at debug level
                log.error("model %r failed to load: %s", model.name, message)
                log.debug("model %r failed to load", model.name, exc_info=True)
                public = f"model {model.name!r} failed to load: {public_reason(error)}"
                model.error = public
                if not self.settings.exit_on_error:
                    self.failed[model.name] = public_reason(error)
                    continue
                self.error = public
                if self._on_fatal is not None:
                    self._on_fatal(f"model {model.name!r} failed to load: {message}")
                return
        # Everything loaded so far (modules, sessions, graphs) lives as long as the server:
        # move it out of the collector's reach, so that full collections under load only scan
        # what requests allocate (the CPython docs' advice for pre-fork servers, gc.freeze).
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        """Stop loading and every worker (pending requests get 503)."""
        self._stop.set()
        if self._loader.is_alive():
            self._loader.join(timeout=30)
        for model in self.models.values():
            model.stop()
