"""Everything the ``models`` and ``verifier_client`` command lines share.

* the CLI shape: auto-discovered command modules, one-line user errors, exit status 2;
* argument types that check their value (``positive_int``, ``fraction``, ``out_entry``, ...);
* the transform options: ``--transform NAME`` (or ``NAME(key=value, ...)``) and one flag per
  option of every registered transform, turned into a checked preprocessing spec.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import pkgutil
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from models.config import CONFIG_FILE, validate_model_name
from models.errors import UserError

# --------------------------------------------------------------------------------------------
# the CLI shape
# --------------------------------------------------------------------------------------------


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; an option without a metavar shows the kind of value it takes,
    the last word of its flag (``--max-batch-size SIZE``, ``--data-root ROOT``), never an
    internal field name (argparse's default, ``--sigma TRANSFORM_SIGMA``)."""

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        flag = max(action.option_strings, key=len).lstrip("-")
        return flag.rsplit("-", 1)[-1].upper()


class OneLineParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors are one line, ``error: ...``, and a pointer to --help
    (exit status 2), as every other user error of the project."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser(prog: str, description: str, commands: ModuleType) -> argparse.ArgumentParser:
    """A parser with one sub-command per module in ``commands`` that defines ``register``."""
    parser = OneLineParser(prog=prog, description=description, formatter_class=HelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for found in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{found.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse and dispatch to ``args.run``; a ``UserError`` becomes one line and exit 2."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2, its line already printed)
        return int(done.code or 0)
    try:
        return int(args.run(args) or 0)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        extra = missing_extra(error.name)
        if extra is None:
            raise
        print(f"error: this command needs {error.name.split('.')[0]}, which this install does "
              f"not have: pip install 'csrp-testbed[{extra}]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


#: Which extra of pyproject.toml brings an optional module (the small base installs none).
EXTRAS = {"torch": "train", "torchvision": "train", "onnx": "train", "matplotlib": "studies",
          "lime": "explain", "skimage": "explain", "sklearn": "explain", "ray": "ray",
          "fastapi": "edge", "uvicorn": "edge", "onnxruntime": "edge", "prometheus_client": "edge",
          "pydantic_settings": "edge", "PIL": "edge", "multipart": "edge", "jinja2": "studies",
          "markdown": "studies"}


def missing_extra(module: str | None) -> str | None:
    """The extra that installs ``module`` (``None`` for a module no extra provides)."""
    return EXTRAS.get((module or "").split(".")[0])


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2))


def print_rich(renderable: Any, console: Any = None) -> None:
    """Print a rich table (or any renderable): as is on a terminal; piped or redirected, as
    plain text without the padding rich adds at line ends."""
    from rich.console import Console

    console = console or Console()
    if console.is_terminal:
        console.print(renderable)
        return
    with console.capture() as captured:
        console.print(renderable)
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))


@dataclass(frozen=True)
class Example:
    """An example command line shown in --help. ``cheap`` ones run as printed on the shipped
    zoo in seconds; the test of the help texts runs them for real, and parses every other."""

    command: str
    cheap: bool = False
    note: str = ""


def examples_epilog(examples: Sequence[Example], footer: str = "") -> str:
    """The --help epilog: every example (wrapped for the terminal), then ``footer``."""
    lines = ["examples:"]
    for example in examples:
        lines.append(f"  {example.command}" + (f"    # {example.note}" if example.note else ""))
    return "\n".join(lines) + (f"\n\n{footer}" if footer else "")


def add_command(subparsers: argparse._SubParsersAction, name: str, summary: str,
                description: str, examples: Sequence[Example],
                footer: str = "") -> argparse.ArgumentParser:
    """A sub-command with its one-line summary, description and examples (see --help)."""
    return subparsers.add_parser(name, help=summary, description=description,
                                 epilog=examples_epilog(examples, footer),
                                 formatter_class=HelpFormatter)


# --------------------------------------------------------------------------------------------
# output paths, checked before any work
# --------------------------------------------------------------------------------------------


def _stat(path: Path) -> os.stat_result | None:
    """``os.stat`` of ``path``, ``None`` when nothing is there; ``ArgumentTypeError`` for what
    cannot be looked at (a symbolic-link loop, a dangling link, no permission)."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # nothing there (or under a file)
        if os.path.lexists(path):
            raise argparse.ArgumentTypeError(f"{path}: a dangling symbolic link") from None
        return None
    except OSError as error:
        raise argparse.ArgumentTypeError(f"{path}: {error.strerror or error}") from None


def _check_creatable(path: Path) -> None:
    """``ArgumentTypeError`` unless a file or folder can be created at ``path``: its nearest
    existing ancestor is a folder in which this process can create a file."""
    if any(ord(c) < 32 for c in str(path)):
        raise argparse.ArgumentTypeError(f"{str(path)!r}: control characters in a path")
    ancestor = path.parent
    while (found := _stat(ancestor)) is None:
        ancestor = ancestor.parent
    if not stat.S_ISDIR(found.st_mode):
        raise argparse.ArgumentTypeError(f"{path}: {ancestor} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=ancestor, prefix=".write-check-"):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"{path}: cannot write under {ancestor} ({error.strerror or error})") from None


def output_file(value: str) -> Path:
    """A file the command will write (atomically): not a folder, not a special file (a device,
    FIFO or socket is never replaced: ``--json /dev/null`` as root would swap the device for a
    regular file), and creatable. Checked at parse time, before any work."""
    path = Path(value)
    found = _stat(path)
    if found is not None and stat.S_ISDIR(found.st_mode):
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name")
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise argparse.ArgumentTypeError(f"{path} is not a regular file (a device, FIFO or "
                                         "socket); refusing to replace it")
    if found is not None and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{path}: not writable")
    _check_creatable(path)
    return path


def output_dir(value: str) -> Path:
    """A folder the command will write into: not a file, and creatable."""
    path = Path(value)
    found = _stat(path)
    if found is not None and not stat.S_ISDIR(found.st_mode):
        raise argparse.ArgumentTypeError(f"{path} is a file, not a folder")
    _check_creatable(path / "x")
    return path


# --------------------------------------------------------------------------------------------
# argument types
# --------------------------------------------------------------------------------------------


class CommaList(argparse.Action):
    """A list flag that takes every spelling: ``--x a,b``, ``--x a b`` and ``--x a --x b`` all
    give ``[a, b]`` (comma-separated is the documented form). ``item`` converts each value;
    ``separator`` splits one value (``;`` where items hold commas, e.g. transform specs)."""

    def __init__(self, option_strings: Sequence[str], dest: str,
                 item: Callable[[str], Any] = str, separator: str = ",",
                 **kwargs: Any) -> None:
        kwargs.setdefault("nargs", "+")
        super().__init__(option_strings, dest, **kwargs)
        self.item, self.separator = item, separator

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        current = getattr(namespace, self.dest, None)
        items = [] if current is None or current is self.default else list(current)
        for value in values if isinstance(values, list) else [values]:
            for part in str(value).split(self.separator):
                if not part.strip():
                    continue
                try:
                    items.append(self.item(part.strip()))
                except (ValueError, argparse.ArgumentTypeError) as error:
                    raise argparse.ArgumentError(self, str(error)) from None
        setattr(namespace, self.dest, items)


def alias(p: argparse.ArgumentParser | Any, *flags: str, dest: str, **kwargs: Any) -> None:
    """Old spellings of a flag, accepted for one release and hidden from --help."""
    p.add_argument(*flags, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS,
                   **kwargs)


def out_entry(value: str) -> Path:
    """``REPO/NAME`` for a new repository entry: NAME a valid model name, REPO writable."""
    path = Path(value)
    try:
        validate_model_name(path.name)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, not a repository entry")
    _check_creatable(path)
    return path


def existing_entry(value: str) -> Path:
    """``REPO/NAME`` of an existing entry (a folder with config.json)."""
    path = Path(value)
    if not (path / CONFIG_FILE).is_file():
        raise argparse.ArgumentTypeError(f"{value}: not a model repository entry (no config.json)")
    return path


def checked_number(value: str, kind: type[int] | type[float], ok: Callable[[float], bool],
                   rule: str) -> Any:
    """Parse ``value`` as ``kind`` and check it; argparse shows the message as a usage error."""
    try:
        number = kind(value)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"not {what}: {value!r}") from None
    if not ok(number):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {number}")
    return number


def finite_float(value: str) -> float:
    return checked_number(value, float, math.isfinite, "a finite number")


def fraction(value: str) -> float:
    return checked_number(value, float, lambda v: 0.0 < v <= 1.0, "in (0, 1]")


def positive_int(value: str) -> int:
    return checked_number(value, int, lambda v: v >= 1, ">= 1")


def non_negative_int(value: str) -> int:
    return checked_number(value, int, lambda v: v >= 0, ">= 0")


def positive_float(value: str) -> float:
    return checked_number(value, float, lambda v: v > 0, "> 0")


# --------------------------------------------------------------------------------------------
# transform options
# --------------------------------------------------------------------------------------------


#: Flags for the options of the built-in transforms: short forms of ``--transform
#: NAME(key=value)`` (declared here, not read from the registry, so that parsing and --help
#: import no torch; a new transform's options go inline).
TRANSFORM_FLAGS: dict[str, tuple[type, str]] = {
    "sigma": (float, "CSRP scale limit, > 1"),
    "p": (int, "CSRP zero padding, integer >= 0"),
    "distort_limit": (float, "RDG distortion limit in [0, 1) (default 0.25)"),
    "num_cells": (int, "RDG cells per axis, >= 1 (default 10)"),
}


def add_transform_arguments(p: argparse.ArgumentParser, *, allow_none: bool,
                            default_help: str | None = None) -> None:
    """``--transform`` and the built-in options' flags (checked later by
    :func:`transform_spec`, so that a bad value is one error line, not argparse's usage)."""
    none = " or none" if allow_none else ""
    p.add_argument("--transform", default=None, metavar="SPEC",
                   required=not allow_none and default_help is None,
                   help="preprocessing: a registered transform (csrp, rdg, jpeg, median, "
                        f"bitdepth, noise, ...){none}, its options inline, e.g. "
                        "'csrp(sigma=1.23, p=6)'"
                        + (f" ({default_help})" if default_help else ""))
    for key, (kind, text) in TRANSFORM_FLAGS.items():
        p.add_argument("--" + key.replace("_", "-"), dest=f"transform_{key}", type=kind,
                       default=None, help=f"{text}; the same as {key}= inside --transform")
    p.add_argument("--csrp-backend", choices=("eager", "auto", "compiled"), default="eager",
                   help="CSRP kernel (default eager: no torch.compile warm-up or recompiles; "
                   "the transform is well under 1%% of a training step)")


def given_transform_options(args: argparse.Namespace) -> dict[str, Any]:
    """The transform option flags given on the command line, by option name."""
    return {key: getattr(args, f"transform_{key}") for key in TRANSFORM_FLAGS
            if getattr(args, f"transform_{key}", None) is not None}


def transform_spec(name: str | None, **options: Any) -> dict[str, Any] | None:
    """The checked preprocessing spec of :func:`cli_transform` (``None`` for none)."""
    transform = cli_transform(name, **options)
    return None if transform is None else transform.spec()


def transform_from_args(args: argparse.Namespace,
                        input_shape: Sequence[int] | None = None) -> Any:
    """The transform of the parsed ``--transform`` and option flags, built once and, given
    ``input_shape`` ``[C, H, W]``, checked to fit it (``None`` for none)."""
    transform = cli_transform(args.transform, **given_transform_options(args))
    if transform is not None and input_shape is not None:
        try:
            transform.check_fits(input_shape)
        except ValueError as error:
            raise UserError(f"bad transform: {error}") from None
    return transform


def cli_transform(name: str | None, **options: Any) -> Any:
    """The transform for ``--transform name`` and option flags, the one place a command line's
    transform is parsed and built; ``None`` for ``"none"`` / ``None``. ``name`` may carry
    options inline: ``"csrp(sigma=1.23, p=6)"``. Options are declared once, by the transform's
    class (``Option``); parsing, defaults, flags and messages all come from there.

    Raises:
        UserError: unknown name, missing or foreign option, value out of range.
    """
    from models.transforms import parse_spec_text

    given = {k: v for k, v in options.items() if v is not None}
    if name is not None and "(" in name:
        try:
            inline = parse_spec_text(name)
        except ValueError as error:
            raise UserError(str(error)) from None
        name = inline.pop("name")
        twice = sorted(set(inline) & set(given))
        if twice:
            raise UserError(f"{', '.join(twice)} given both inline and as a flag")
        given.update(inline)
    if name is None or name == "none":
        if given:
            raise UserError(_foreign_options(given, None))
        return None
    from models.transforms import TRANSFORMS

    cls = TRANSFORMS.lookup(name)
    own = {o.name: o for o in cls.options}
    if any(k not in own for k in given):
        raise UserError(_foreign_options({k: v for k, v in given.items() if k not in own}, name))
    missing = [o for o in cls.options if o.required and o.name not in given]
    if missing:
        raise UserError(f"--transform {name} needs {' and '.join(o.flag for o in missing)} ("
                        + "; ".join(f"{o.flag}: {o.help}" for o in missing) + ")")
    kwargs = {**{o.name: o.default for o in cls.options if not o.required},
              **{k: own[k].coerce(v) for k, v in given.items()}}
    try:
        return cls(**kwargs)
    except ValueError as error:
        raise UserError(f"bad transform: {error}") from None


def _foreign_options(given: dict[str, Any], name: str | None) -> str:
    """"--sigma/--p belong to --transform csrp[, not rdg]" for options ``name`` lacks."""
    from models.transforms import list_transforms, transform_class

    key = sorted(given)[0]
    for owner in list_transforms():
        flags = [o.flag for o in transform_class(owner).options]
        if any(o.name == key for o in transform_class(owner).options):
            return (f"{'/'.join(flags)} belong to --transform {owner}"
                    + (f", not {name}" if name else ""))
    return f"--{key.replace('_', '-')} is not an option of any transform"


