"""Install anywhere: the dependency markers pick exactly one ONNX Runtime on every platform
(evaluated for target environments, not this machine: pip itself cannot download for another
platform when a marker names it), and the edge requirements hold no torch."""

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


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"]]


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_exactly_one_onnx_runtime_per_platform(platform: str) -> None:
    environment = {"python_version": "3.11", "python_full_version": "3.11.9",
                   "implementation_name": "cpython", "os_name": "posix",
                   "platform_system": "", **PLATFORMS[platform]}
    chosen = [r.name for r in _requirements()
              if r.name.startswith("onnxruntime")
              and (r.marker is None or r.marker.evaluate(environment))]
    assert chosen == ["onnxruntime-gpu" if platform in GPU_BUILD else "onnxruntime"], chosen


def test_every_other_dependency_is_unconditional() -> None:
    conditional = [r.name for r in _requirements()
                   if r.marker is not None and not r.name.startswith("onnxruntime")]
    assert conditional == ["uvloop"]  # no Windows build; uvicorn keeps asyncio's loop there
    windows = {**PLATFORMS["windows-amd64"], "python_version": "3.11"}
    (uvloop,) = [r for r in _requirements() if r.name == "uvloop"]
    assert uvloop.marker is not None and not uvloop.marker.evaluate(windows)


def test_edge_requirements_have_no_torch_and_cover_the_server() -> None:
    names = {Requirement(line).name for line in
             (ROOT / "docker" / "edge-requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert not names & {"torch", "torchvision", "onnxruntime-gpu"}
    assert {"onnxruntime", "numpy", "fastapi", "uvicorn", "onnx", "pydantic-settings"} <= names
