"""The package's shape: layers import only downwards, no import cycles, a light ``import instcolor``.

Layers, lowest first (``docs/architecture.md``): the base modules (io, instances, geometry, motion,
tracking, temporal, color, devices) < models < detection < inference < training, evaluation < apps < bench < cli.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import instcolor

PACKAGE = Path(instcolor.__file__).parent

#: Rank of each layer; a module may import modules of its own rank or lower.
LAYERS = {
    "io": 0, "instances": 0, "geometry": 0, "motion": 0, "tracking": 0, "temporal": 0, "color": 0, "devices": 0, "_moved": 0,
    "models": 1, "detection": 2, "inference": 3, "training": 4, "evaluation": 4,
    "apps": 5, "bench": 6, "cli": 7,
}  # fmt: skip
#: Old module paths kept as deprecation shims: they import nothing but :mod:`instcolor._moved`.
SHIMS = {"networks", "weights", "registry", "download", "synthetic", "pipeline", "perf"}
#: ``instcolor/__init__.py`` is the public facade: its lazy ``__getattr__`` may reach any layer.
FACADE = "instcolor"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, int, list[str]]]:
    """(imported module, line, imported names) for every import, module-level or in a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, []) for alias in node.names if alias.name.startswith("instcolor")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("instcolor"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:
                    found.append((submodule, node.lineno, []))
                else:
                    found.append((node.module, node.lineno, [alias.name]))
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {target for target, _, _ in _imports(path, modules)} for name, path in modules.items()}


def test_every_module_belongs_to_a_layer():
    unknown = [m for m in _modules() if m != FACADE and _layer(m) not in LAYERS and _layer(m) not in SHIMS]
    assert not unknown, f"modules outside every layer (add them to LAYERS and docs/architecture.md): {unknown}"


def test_imports_only_go_down_the_layers():
    modules = _modules()
    upward = []
    for name, path in modules.items():
        if name == FACADE or _layer(name) in SHIMS:
            continue
        for target, line, _ in _imports(path, modules):
            if _layer(target) in SHIMS:
                upward.append(f"{name}:{line} imports the deprecated {target}")
            elif target != FACADE and LAYERS[_layer(target)] > LAYERS[_layer(name)]:
                upward.append(f"{name}:{line} imports {target} (layer {_layer(target)} is above {_layer(name)})")
    assert not upward, "\n".join(upward)


def test_no_module_imports_another_modules_private_names():
    modules = _modules()
    private = [
        f"{name}:{line} imports {target}.{imported}"
        for name, path in modules.items()
        for target, line, names in _imports(path, modules)
        for imported in names
        if imported.startswith("_") and not imported.startswith("__") and target != name
    ]
    assert not private, "\n".join(private)


def test_no_import_cycles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_no_long_module_without_a_reason():
    long = []
    for name, path in _modules().items():
        text = path.read_text()
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > 600 and "longer than 600 lines" not in docstring:
            long.append(f"{name}: {text.count(chr(10))} lines")
    assert not long, f"split these, or say why in the docstring ('longer than 600 lines because ...'): {long}"


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


@pytest.mark.parametrize("heavy", ["torch", "torchvision", "gradio"])
def test_import_instcolor_is_light(heavy):
    assert heavy not in _loaded_after("import instcolor")


def test_cli_help_imports_no_torch():
    code = (
        "import sys\nfrom instcolor.cli import app\nsys.argv = ['instcolor', '--help']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    loaded = _loaded_after(code)
    assert not {"torch", "torchvision", "numpy", "PIL", "gradio"} & loaded
