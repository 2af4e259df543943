"""tinytrain: on-device training of real-quantized int8 networks on microcontrollers.

The package is layered; a module imports only from its own layer and the layers below it
(host/tests/test_layers.py enforces it):

    commands    the CLI: parses, calls one layer below, prints
    board       link, protocol, boards, builds, streaming a board
    learn       datasets, schedules, contribution analysis, scheme search
    reference   the NumPy executor of a compiled program (the truth the C must equal)
    compile     schemes, autodiff walker, staging, arena plan, SRAM budget, codegen, build config
    model       model files and importers (.ttm, the authors' .pkl), heads
    ops         one module per op: its node, its compile rules, its NumPy execution, its C emission
    ir          the graph (tensors, nodes) and the program types (steps, buffers, step kinds)
    numerics    fixed point and the reference kernels: the specification, NumPy only

`python -c "import tinytrain; print(tinytrain.package_tree())"` prints the tree by layer.
"""

from __future__ import annotations

__version__ = "0.1.0"

LAYERS = ("numerics", "ir", "ops", "model", "compile", "reference", "learn", "board", "commands")


def package_tree() -> str:
    """Every subpackage from the top layer down, with its modules and the first line of their
    docstrings (read from the files; nothing is imported)."""
    import ast
    from pathlib import Path

    root = Path(__file__).parent
    lines = []
    for layer in reversed(LAYERS):
        lines.append(f"{layer}/")
        for path in sorted((root / layer).glob("*.py")):
            if path.name == "__init__.py":
                continue
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            lines.append(f"    {path.stem:16s} {doc.splitlines()[0] if doc else ''}".rstrip())
    return "\n".join(lines)
