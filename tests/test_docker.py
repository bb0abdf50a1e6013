"""The Docker images and docker-compose.yml, without a Docker engine.

- docker-compose.yml and docker-compose.gpu.yml (alone and merged) validate against the official
  Compose Specification schema (vendored: tests/data/README.md);
- they are complete: services server (the torch-free edge image) + verifier (the torch-free
  client image), healthcheck, ports bound to 127.0.0.1, read-only zoo mounts, configuration by
  environment, the CUDA image and the GPU reservation only in the override, every image built
  offline from pinned lists, the verifier waiting for the server itself and running a command
  the verifier CLI accepts, with a default model list the edge image serves;
- the images' ENTRYPOINT + CMD, read from the Dockerfiles, run here as the container would run
  them (paths, host and port substituted), and the HEALTHCHECK command passes against the server
  they started.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft7Validator

from models.local_server import free_port

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
COMPOSE = ROOT / "docker-compose.yml"
GPU_OVERRIDE = ROOT / "docker-compose.gpu.yml"
SERVER_DOCKERFILE = ROOT / "docker" / "server.Dockerfile"  # CUDA, the GPU override's
EDGE_DOCKERFILE = ROOT / "docker" / "edge.Dockerfile"  # the default stack's server
VERIFIER_DOCKERFILE = ROOT / "docker" / "verifier.Dockerfile"
READY = "/v2/health/ready"

# ---------------------------------------------------------------------------------------------
# helpers: YAML + interpolation, Dockerfile instructions
# ---------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return yaml.safe_load(handle)


def interpolate(value: Any, env: dict[str, str] | None = None) -> Any:
    """Compose's ``${VAR:-default}`` with an empty environment (defaults win) by default."""
    env = env or {}
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: env.get(m["name"]) or (m["default"] or ""), value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of an override file, for mappings (enough for our files)."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    return override


def dockerfile_stage(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile's final stage (continuations joined,
    comments dropped)."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            instructions = []
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def instruction(stage: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for key, rest in stage if key == keyword]
    assert found, f"no {keyword} in the final stage"
    return found[-1]  # the last one wins, as in Docker


def exec_form(text: str) -> list[str]:
    value = json.loads(text)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
    return value


def healthcheck_argv(stage: list[tuple[str, str]]) -> list[str]:
    text = instruction(stage, "HEALTHCHECK")
    options, _, command = text.partition("CMD ")
    assert command, "HEALTHCHECK must use CMD"
    assert "--start-period" in options and "--interval" in options
    return exec_form(command)


def as_local(argv: list[str], port: int) -> list[str]:
    """A container command run here: this interpreter for ``python``, the container's port 8000
    on 127.0.0.1 replaced by ``port``."""
    assert argv[0] == "python", argv
    return [sys.executable, *(a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in argv[1:])]


def container_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    """This process's environment plus the image's CSRP_* / PYTHON* settings (not PATH)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSRP_SERVER_")}
    for key, rest in stage:
        if key == "ENV":
            for token in shlex.split(rest):
                name, _, value = token.partition("=")
                if name.startswith(("CSRP_", "PYTHON")):
                    env[name] = value
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = Draft7Validator(json.loads(SCHEMA.read_text()))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(e.path))]


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """``(source, target, read_only)`` of a service's volumes, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            mounts.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
        else:
            mounts.append((volume["source"], volume["target"], bool(volume.get("read_only"))))
    return mounts


# ---------------------------------------------------------------------------------------------
# (a) the Compose Specification
# ---------------------------------------------------------------------------------------------


def test_vendored_schema_is_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    Draft7Validator.check_schema(schema)
    assert "compose-spec/compose-spec" in (SCHEMA.parent / "README.md").read_text()


@pytest.mark.parametrize("path", [COMPOSE, GPU_OVERRIDE], ids=lambda p: p.name)
def test_compose_files_validate_against_the_specification(path: Path) -> None:
    assert schema_errors(load_yaml(path)) == []


def test_merged_gpu_configuration_validates() -> None:
    merged = merge(load_yaml(COMPOSE), load_yaml(GPU_OVERRIDE))
    assert schema_errors(merged) == []
    assert schema_errors(interpolate(merged)) == []


def test_schema_rejects_a_broken_compose_file() -> None:
    broken = load_yaml(COMPOSE)
    broken["services"]["verifier"]["depends_on"]["server"]["condition"] = "service_ready"
    broken["services"]["server"]["healthcheck"]["intervall"] = "5s"
    errors = schema_errors(broken)
    assert any("service_ready" in e for e in errors)
    assert any("intervall" in e for e in errors)


# ---------------------------------------------------------------------------------------------
# (b) completeness
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"server", "verifier"}
    for name, dockerfile in (("server", EDGE_DOCKERFILE), ("verifier", VERIFIER_DOCKERFILE)):
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == dockerfile
        assert interpolate(build["args"])["PIP_NO_INDEX"] == "1"  # offline by default


def test_server_port_healthcheck_and_environment(compose: dict[str, Any]) -> None:
    server = interpolate(compose["services"]["server"])
    stage = dockerfile_stage(EDGE_DOCKERFILE)
    assert "127.0.0.1:8000:8000" in server["ports"]  # published on loopback unless asked
    assert instruction(stage, "EXPOSE").split() == ["8000"]
    test = server["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1:] == healthcheck_argv(stage)  # one check, two places
    assert any(READY in part for part in test)
    for key in ("interval", "timeout", "retries", "start_period"):
        assert key in server["healthcheck"]
    # configuration by environment: every key is CSRP_SERVER_<setting>, overridable as itself
    raw_env = compose["services"]["server"]["environment"]
    assert raw_env and all(key.startswith("CSRP_SERVER_") for key in raw_env)
    for key, value in raw_env.items():
        match = _VARIABLE.fullmatch(str(value))
        assert match and match["name"] == key and match["default"], (key, value)


def test_the_default_models_are_ones_the_edge_image_serves(compose: dict[str, Any]) -> None:
    """Every default model exists in the shipped zoo and needs no torch (ONNX with CSRP in the
    graph or no preprocessing): the edge image refuses the others at start-up."""
    from models.repository import load_config

    names = interpolate(compose["services"]["server"]["environment"])["CSRP_SERVER_MODELS"]
    for name in names.split(","):
        config = load_config(ROOT / "zoo" / name)
        assert config.backend == "onnx" and (config.preprocessing is None
                                             or config.preprocessing["name"] == "csrp"), name


def test_server_environment_defaults_are_valid_settings(
        compose: dict[str, Any], tiny_repo: Path) -> None:
    from models.repository import validate_model_name
    from server.core.config import Settings

    env = interpolate(compose["services"]["server"]["environment"])
    values = {key.removeprefix("CSRP_SERVER_").lower(): value for key, value in env.items()}
    assert set(values) <= set(Settings.model_fields)
    for name in values.pop("models").split(","):
        validate_model_name(name)
    settings = Settings(repository=tiny_repo, **values)
    assert settings.device == "auto"  # a plain `docker compose up` must not need a GPU


def test_zoo_mounted_read_only_not_baked(compose: dict[str, Any]) -> None:
    assert bind_mounts(compose["services"]["server"]) == [("./zoo", "/models", True)]
    assert bind_mounts(compose["services"]["verifier"]) == [("./zoo", "/zoo", True)]
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", "build", "logs", "zoo", ".pytest_cache"):
        assert entry in ignored
    for dockerfile in (SERVER_DOCKERFILE, EDGE_DOCKERFILE, VERIFIER_DOCKERFILE):
        copied = [rest for key, rest in dockerfile_stage_all(dockerfile) if key == "COPY"]
        assert not any("zoo" in rest for rest in copied)


def dockerfile_stage_all(path: Path) -> list[tuple[str, str]]:
    """Every instruction of every stage."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [(line.split(" ", 1)[0].upper(), line.partition(" ")[2].strip())
            for line in (raw.strip() for raw in text.splitlines())
            if line and not line.startswith("#")]


def test_gpu_reservation_only_in_the_override(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert "deploy" not in service and "gpus" not in service, name
        assert service.get("runtime") != "nvidia", name
        assert "profiles" not in service, name  # `docker compose up` starts both
    override = load_yaml(GPU_OVERRIDE)
    assert set(override["services"]) == {"server"}
    assert override["services"]["server"]["build"]["dockerfile"] == "docker/server.Dockerfile"
    devices = override["services"]["server"]["deploy"]["resources"]["reservations"]["devices"]
    assert [d["driver"] for d in devices] == ["nvidia"]
    assert "gpu" in devices[0]["capabilities"]
    assert interpolate(override["services"]["server"]["environment"])["CSRP_SERVER_DEVICE"] == \
        "cuda"


def test_verifier_waits_for_the_server_itself_and_runs_verify(compose: dict[str, Any]) -> None:
    """The health condition stays for engines that honour it; the verifier also waits by
    itself (podman-compose 1.x ignores service_healthy), then verifies adaptively."""
    import verifier_client.commands
    from models.cli_support import build_parser

    verifier = compose["services"]["verifier"]
    assert verifier["depends_on"] == {"server": {"condition": "service_healthy"}}
    assert "VERIFY_MODEL" in json.dumps(verifier["command"])
    assert "VERIFY_REPEATS" in json.dumps(verifier["command"])
    command = interpolate(verifier["command"])
    assert command[:3] == ["verify", "--url", "http://server:8000"]
    parser = build_parser("python -m verifier_client", "", verifier_client.commands)
    args = parser.parse_args(command)
    assert (args.model, args.repeats, args.adaptive) == ("csrp", 20, True)
    assert 0 < args.wait_ready <= 600
    assert args.fingerprints == ["/zoo/fingerprints"]
    assert args.calibration == "/zoo/calibration.json"
    assert str(args.eot_calibration) == "/zoo/calibration-eot.json"
    custom = interpolate(verifier["command"], {"VERIFY_MODEL": "copy", "VERIFY_REPEATS": "5"})
    assert parser.parse_args(custom).model == "copy"
    assert parser.parse_args(custom).repeats == 5


@pytest.mark.parametrize("dockerfile", [SERVER_DOCKERFILE, EDGE_DOCKERFILE, VERIFIER_DOCKERFILE],
                         ids=lambda p: p.name)
def test_images_run_as_non_root_and_build_offline(dockerfile: Path) -> None:
    stage = dockerfile_stage(dockerfile)
    assert instruction(stage, "USER") not in ("root", "0", "0:0")
    text = dockerfile.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-" in text
    assert "PIP_NO_INDEX" in text and "COPY docker/wheels/ /wheels/" in text


@pytest.mark.parametrize(("dockerfile", "pins"), [(EDGE_DOCKERFILE, "requirements-edge.txt"),
                                                  (VERIFIER_DOCKERFILE,
                                                   "requirements-client.txt")],
                         ids=["edge", "verifier"])
def test_torch_free_images_install_the_tested_pins(dockerfile: Path, pins: str) -> None:
    text = dockerfile.read_text()
    assert f"COPY docker/{pins}" in text and "pip install --no-deps" in text
    assert "torch" not in (ROOT / "docker" / pins).read_text()
    assert "assert u.find_spec('torch') is None" in text  # the build itself checks


def test_server_image_versions_and_command() -> None:
    text = SERVER_DOCKERFILE.read_text()
    assert "torch==2.14.1" in text and "onnxruntime-gpu==1.31.1" in text
    stage = dockerfile_stage(SERVER_DOCKERFILE)
    assert exec_form(instruction(stage, "ENTRYPOINT")) == ["python", "-m", "server"]
    assert exec_form(instruction(stage, "CMD")) == [
        "--repository", "/models", "--host", "0.0.0.0", "--port", "8000"]


# ---------------------------------------------------------------------------------------------
# (c) the images' commands, run here
# ---------------------------------------------------------------------------------------------


def _substitute(argv: list[str], values: dict[str, str]) -> list[str]:
    out = list(argv)
    for flag, value in values.items():
        out[out.index(flag) + 1] = value
    return out


def test_server_entrypoint_serves_and_passes_its_healthcheck(tiny_repo: Path) -> None:
    stage = dockerfile_stage(EDGE_DOCKERFILE)
    port = free_port()
    argv = (exec_form(instruction(stage, "ENTRYPOINT"))
            + exec_form(instruction(stage, "CMD")))
    argv = _substitute(argv, {"--repository": str(tiny_repo), "--host": "127.0.0.1",
                              "--port": str(port)})
    env = container_env(stage)
    assert env["CSRP_SERVER_DEVICE"] == "cpu"
    health = as_local(healthcheck_argv(stage), port)
    # nothing listening yet: the healthcheck fails
    assert subprocess.run(health, env=env, capture_output=True, timeout=30).returncode != 0
    process = subprocess.Popen(as_local(argv, port), cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}{READY}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server not ready in 120 s"
            time.sleep(0.2)
        result = subprocess.run(health, env=env, capture_output=True, timeout=30)
        assert result.returncode == 0, result.stderr.decode()
        compose_test = load_yaml(COMPOSE)["services"]["server"]["healthcheck"]["test"]
        result = subprocess.run(as_local(compose_test[1:], port), env=env, capture_output=True,
                                timeout=30)
        assert result.returncode == 0, result.stderr.decode()
        models = httpx.get(f"http://127.0.0.1:{port}/v2/models/target", timeout=5).json()
        assert models["name"] == "target"
    finally:
        process.terminate()
        code = process.wait(timeout=30)
        process.stderr.close()
    assert code == 0  # SIGTERM (docker stop) is a graceful exit


def test_verifier_entrypoint_help() -> None:
    stage = dockerfile_stage(VERIFIER_DOCKERFILE)
    argv = exec_form(instruction(stage, "ENTRYPOINT")) + exec_form(instruction(stage, "CMD"))
    assert argv == ["python", "-m", "verifier_client", "--help"]
    result = subprocess.run(as_local(argv, 0), cwd=ROOT, env=container_env(stage),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("verify", "loadtest", "calibrate"):
        assert command in result.stdout
