"""Installs sized to the job: the base install is the torch-free owner's client, extras add the
edge server (CPU ONNX Runtime), the GPU runtime, training; every install resolves exactly one
ONNX Runtime per platform (evaluated for target environments, not this machine: pip itself
cannot download for another platform when a marker names it); the images' pinned lists hold
no torch. (That the client commands run where torch cannot be imported:
tests/verifier_client/test_torch_free.py.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = {
    "linux-x86_64": {"sys_platform": "linux", "platform_machine": "x86_64"},
    "linux-aarch64": {"sys_platform": "linux", "platform_machine": "aarch64"},
    "macos-arm64": {"sys_platform": "darwin", "platform_machine": "arm64"},
    "macos-x86_64": {"sys_platform": "darwin", "platform_machine": "x86_64"},
    "windows-amd64": {"sys_platform": "win32", "platform_machine": "AMD64"},
    "windows-arm64": {"sys_platform": "win32", "platform_machine": "ARM64"},
}
GPU_BUILD = {"linux-x86_64", "windows-amd64"}  # where NVIDIA publishes onnxruntime-gpu wheels
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def resolve(extras: list[str], platform: str) -> set[str]:
    """The project's direct requirements for ``extras`` on ``platform`` (self-references
    expanded, markers evaluated)."""
    environment = {"python_version": "3.11", "python_full_version": "3.11.9",
                   "implementation_name": "cpython", "os_name": "posix",
                   "platform_system": "", "extra": "", **PLATFORMS[platform]}
    found = {Requirement(r).name for r in PROJECT["dependencies"]}
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in PROJECT["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if requirement.name == "csrp-testbed":
                todo.extend(requirement.extras)
            elif requirement.marker is None or requirement.marker.evaluate(environment):
                found.add(requirement.name)
    return found


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_each_install_has_the_runtime_it_needs_and_no_more(platform: str) -> None:
    base = resolve([], platform)
    assert not base & {"torch", "torchvision", "fastapi", "onnxruntime", "onnxruntime-gpu"}
    assert {"httpx", "numpy", "pydantic", "safetensors", "scipy"} <= base
    edge = resolve(["edge"], platform)
    assert {"fastapi", "uvicorn", "onnxruntime"} <= edge and "torch" not in edge
    assert "onnxruntime-gpu" not in edge
    gpu = resolve(["gpu"], platform)
    runtimes = sorted(n for n in gpu if n.startswith("onnxruntime"))
    assert runtimes == ["onnxruntime-gpu" if platform in GPU_BUILD else "onnxruntime"]
    dev = resolve(["dev"], platform)
    assert {"torch", "torchvision", "fastapi", "pytest"} <= dev
    assert len([n for n in dev if n.startswith("onnxruntime")]) == 1


def test_the_pinned_image_lists_hold_no_torch() -> None:
    for name in ("requirements-client.txt", "requirements-edge.txt"):
        lines = [line for line in (ROOT / "docker" / name).read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        pins = {Requirement(line).name for line in lines}
        assert all("==" in line for line in lines), name  # pinned, the tested versions
        assert not pins & {"torch", "torchvision", "onnxruntime-gpu"}, name
    edge = (ROOT / "docker" / "requirements-edge.txt").read_text()
    assert "onnxruntime==" in edge and "fastapi==" in edge
    assert "onnxruntime" not in (ROOT / "docker" / "requirements-client.txt").read_text()
