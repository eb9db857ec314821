"""The architecture, stated as a test: dependencies point one way.

    graphc (front end) -> passes -> ops <- runtime

ops and runtime never import a pass or the front end; passes never import a backend or the
front end. Every .py file under ops/, runtime/ and passes/ is parsed (not imported), so a lazy
import inside a function counts as much as one at the top.
"""
import ast
from pathlib import Path

import pytest

import graphc.ops
import graphc.passes
import graphc.runtime

FRONT_END = ("graphc.gluon", "graphc.ndarray", "graphc.autograd", "graphc.symbol", "graphc.nd",
             "graphc.compiler", "graphc.kvstore", "graphc.formats", "graphc.cli")
FORBIDDEN = {
    "graphc.ops": ("graphc.passes", "graphc.runtime") + FRONT_END,
    "graphc.runtime": ("graphc.passes",) + FRONT_END,
    "graphc.passes": ("graphc.runtime",) + FRONT_END,
}
PACKAGES = {"graphc.ops": graphc.ops, "graphc.runtime": graphc.runtime, "graphc.passes": graphc.passes}


def _module_name(package: str, root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package] + parts)


def imported_modules(package: str, root: Path, path: Path):
    """(line, absolute module name) for every import in the file, relative ones resolved."""
    name = _module_name(package, root, path)
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_pkg:
                    base = base[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from graphc import gluon` names a module too
            yield node.lineno, mod
            for alias in node.names:
                yield node.lineno, f"{mod}.{alias.name}"


def _reaches(module: str, forbidden: str) -> bool:
    return module == forbidden or module.startswith(forbidden + ".")


def violations(package: str):
    root = Path(PACKAGES[package].__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for line, mod in imported_modules(package, root, path):
            for bad in FORBIDDEN[package]:
                if _reaches(mod, bad):
                    found.append(f"{path.relative_to(root.parent)}:{line} imports {mod} ({package} must not import {bad})")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package):
    assert violations(package) == []


def test_the_checker_sees_absolute_relative_and_lazy_imports(tmp_path):
    pkg = tmp_path / "runtime"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.py").write_text(
        "from ..passes.fuse import fuse_elementwise\n"
        "def f():\n"
        "    import graphc.gluon.block\n"
        "    from graphc import ndarray\n"
        "from . import kernel_ir\n"
        "from graphc.ops.fused import body_of\n")
    mods = [m for _, m in imported_modules("graphc.runtime", pkg, pkg / "bad.py")]
    bad = [m for m in mods if any(_reaches(m, b) for b in FORBIDDEN["graphc.runtime"])]
    assert "graphc.passes.fuse" in bad and "graphc.gluon.block" in bad and "graphc.ndarray" in bad
    assert "graphc.runtime.kernel_ir" in mods and not any(_reaches(m, "graphc.runtime") for m in bad)
    assert not any(_reaches(m, "graphc.ops") for m in bad)
