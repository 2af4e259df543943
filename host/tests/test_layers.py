"""The package's layering (tinytrain/__init__.py): every import, also inside functions, points to the
module's own layer or a lower one, and no modules import each other in a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import tinytrain

PACKAGE = Path(tinytrain.__file__).parent


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str], root: Path = PACKAGE) -> set[str]:
    """The package modules a file imports (from X import name counts X.name when that is a module)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def layer(module: str) -> int:
    """Position in tinytrain.LAYERS; the root package and tinytrain.errors sit below every layer,
    tinytrain.__main__ above."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "errors":
        return -1
    if parts[1] == "__main__":
        return len(tinytrain.LAYERS)
    return tinytrain.LAYERS.index(parts[1])


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: imports(p, set(files)) for m, p in files.items()}


def test_every_subpackage_is_a_layer():
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(tinytrain.LAYERS)
    loose = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__", "errors"}
    assert not loose, f"modules outside every layer: {sorted(loose)}"


def test_imports_point_down():
    upward = [f"{m} ({tinytrain.LAYERS[layer(m)] if 0 <= layer(m) < len(tinytrain.LAYERS) else m}) imports {t}"
              for m, targets in graph().items() for t in targets if layer(t) > layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state and (cycle := visit(t)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            cycle = visit(m)
            assert cycle is None, " -> ".join(cycle)


def test_the_checker_sees_a_violation(tmp_path):
    """The rule itself: an upward import is found (so the tests above can fail)."""
    numerics = PACKAGE / "numerics" / "kernels.py"
    fake = tmp_path / "tinytrain" / "numerics"
    fake.mkdir(parents=True)
    (fake / "kernels.py").write_text(numerics.read_text() + "\ndef f():\n    from ..board import link\n")
    found = imports(fake / "kernels.py", {"tinytrain.board.link", "tinytrain.board"}, tmp_path / "tinytrain")
    assert "tinytrain.board.link" in found and layer("tinytrain.board.link") > layer("tinytrain.numerics.kernels")


def test_tree_prints_every_layer():
    tree = tinytrain.package_tree()
    for name in tinytrain.LAYERS:
        assert f"{name}/" in tree
