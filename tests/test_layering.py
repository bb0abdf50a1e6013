"""The house's floors (docs/design.md 2): ``models`` imports neither tower, ``server`` and
``verifier_client`` never import each other, and the owner's product never imports a study."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(("package", "forbidden"), [
    ("models", ("server", "verifier_client")),
    ("server", ("verifier_client",)),
    ("verifier_client", ("server",)),
])
def test_floors_never_import_upwards_or_sideways(package: str, forbidden: tuple[str, ...]):
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for path in _files(package)
                 for name in _imports(path) if name.split(".")[0] in forbidden]
    assert offenders == []


def test_the_owners_product_never_imports_a_study():
    product = [p for p in _files("verifier_client")
               if "studies" not in p.parts and "commands" not in p.parts]
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for path in product
                 for name in _imports(path) if name.startswith("verifier_client.studies")]
    assert product and offenders == []


def test_the_checker_sees_lazy_imports(tmp_path: Path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from verifier_client.studies import demo\n")
    assert "verifier_client.studies" in _imports(module)
