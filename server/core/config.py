"""Server settings: command-line flags and ``CSRP_SERVER_*`` environment variables.

``Settings`` fails fast: a missing repository, an unknown model, a bad device or CUDA asked for
but absent raise a ``pydantic.ValidationError`` at construction, which the CLI prints as one
line (``settings_error_line``). Flags given on the command line win over environment variables.

=================== ============================ ===================================
setting             flag                         default
=================== ============================ ===================================
repository          --repository DIR             (required)
models              --models a,b                 every entry of the repository
host, port          --host, --port               127.0.0.1, 8000
device              --device auto|cpu|cuda[:N]   auto (cuda when the driver has a GPU)
backend             --backend onnx|torch|auto    auto (each config's ``backend``)
preprocess_in       --preprocess-in graph|torch  graph: CSRP inside the ONNX serving graph
max_batch_size      --max-batch-size             64 images (per batch and per request)
max_queue_delay_ms  --max-queue-delay-ms         2
max_queue_size      --max-queue-size             1024 requests per model
max_body_mb         --max-body-mb                32 MiB (binary tensors and uploads)
max_json_body_mb    --max-json-body-mb           4 MiB (JSON bodies cost ~25x their size to parse)
body_timeout_s      --body-timeout-s             30 s to receive a whole request body (else 408)
head_timeout_s      --head-timeout-s             10 s to receive a request's line and headers (408)
max_head_kb         --max-head-kb                64 KiB of headers (431); URLs at most 16 KiB (414)
max_connections     --max-connections            1024 open connections and requests (then 503)
exit_on_error       --exit-on-error / --no-...   on: a model that fails to load stops the server
allow_symlinks      --allow-symlinks             off: entry files may not lead outside the repo
seed                --seed                       from the OS
workers_threads     --workers-threads            library default
log_level           --log-level                  info
access_log          --access-log                 off
=================== ============================ ===================================

The environment variable of a setting is ``CSRP_SERVER_`` + its name in capitals, e.g.
``CSRP_SERVER_MAX_BATCH_SIZE=32``; ``CSRP_SERVER_MODELS`` is comma-separated.

Testing hooks (environment or constructor only, no flag): ``warmup_delay_s`` sleeps before each
model's warm-up (so tests can watch readiness turn true), ``batch_sleep_ms`` sleeps in the
worker before every batch (so tests can fill the queue).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.config import list_entries, validate_model_name
from models.errors import UserError
from server.core.devices import cuda_device_count

ENV_PREFIX = "CSRP_SERVER_"
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d{1,2})?)$")


class Settings(BaseSettings):
    """Everything the server needs to start; validated once, then read-only."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True,
                                      validate_default=True)

    repository: Path
    models: Annotated[tuple[str, ...] | None, NoDecode] = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    device: str = "auto"
    backend: Literal["auto", "onnx", "torch"] = "auto"
    preprocess_in: Literal["graph", "torch"] = "graph"
    max_batch_size: int = Field(64, ge=1, le=4096)
    max_queue_delay_ms: float = Field(2.0, ge=0, le=60_000)
    max_queue_size: int = Field(1024, ge=1, le=1_000_000)
    max_body_mb: float = Field(32.0, gt=0, le=4096)
    max_json_body_mb: float = Field(4.0, gt=0, le=4096)
    body_timeout_s: float = Field(30.0, gt=0, le=3600)
    head_timeout_s: float = Field(10.0, gt=0, le=3600)
    max_head_kb: int = Field(64, ge=4, le=1024)
    max_connections: int = Field(1024, ge=1, le=1_000_000)
    exit_on_error: bool = True
    allow_symlinks: bool = False
    seed: int | None = Field(None, ge=0, lt=2**63)
    workers_threads: int | None = Field(None, ge=1, le=256)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = False
    # testing hooks (no command-line flag)
    warmup_delay_s: float = Field(0.0, ge=0, le=600)
    batch_sleep_ms: float = Field(0.0, ge=0, le=60_000)

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"{value}: model repository folder not found")
        return value.resolve()

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError("empty model list")
            for name in value:
                try:
                    validate_model_name(str(name))
                except UserError as error:
                    raise ValueError(str(error)) from None
            return tuple(dict.fromkeys(str(v) for v in value))  # keep order, drop repeats
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        value = value.strip().lower()
        if not _DEVICE_RE.match(value):
            raise ValueError(f"bad device {value!r}: choose auto, cpu, cuda or cuda:N")
        return value

    @model_validator(mode="after")
    def _check_against_repository(self) -> Settings:
        try:
            available = list_entries(self.repository)
        except UserError as error:
            raise ValueError(str(error)) from None
        if not available:
            raise ValueError(f"{self.repository}: no model entries (sub-folders with config.json)")
        unknown = [m for m in (self.models or ()) if m not in available]
        if unknown:
            raise ValueError(f"unknown model(s) {', '.join(unknown)} in {self.repository}; "
                             f"available: {', '.join(available)}")
        if self.device.startswith("cuda"):
            count = cuda_device_count()
            if count == 0:
                raise ValueError(f"device {self.device!r} asked for but CUDA is not available "
                                 "(use --device cpu or auto)")
            index = int(self.device.partition(":")[2] or 0)
            if index >= count:
                raise ValueError(f"device {self.device!r}: only {count} CUDA device(s)")
        return self

    # ---- derived -----------------------------------------------------------------------------

    @property
    def model_names(self) -> list[str]:
        """The models to serve: ``models`` or every entry of the repository."""
        return list(self.models) if self.models else list_entries(self.repository)

    @property
    def resolved_device(self) -> str:
        """``auto`` made concrete: ``cuda`` when the CUDA driver reports a GPU, else ``cpu``
        (asked of the driver, not of torch, which the edge server does not have)."""
        if self.device != "auto":
            return self.device
        return "cuda" if cuda_device_count() else "cpu"

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_json_body_bytes(self) -> int:
        return int(min(self.max_json_body_mb, self.max_body_mb) * 1024 * 1024)


def settings_error_line(error: ValidationError) -> str:
    """One line for the first problem: ``field: message`` (pydantic's prefixes removed)."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "required (flag or CSRP_SERVER_" + where.upper() + ")"
    elif first["type"] == "extra_forbidden":
        message = "unknown setting"
    return f"{where}: {message}" if where else message
