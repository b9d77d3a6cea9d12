"""The house plan, checked: the import graph between packages, and the DAW scripts' freedom from model code.

Imports are read from the source with ``ast`` (every ``import``/``from`` statement, at module level or inside
a function), so a lazy import counts as much as a top-level one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "bridge", "jukebox_bridge")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports (resolved to modules, not packages, where the name is a module)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # "engine.io.audio.read_region" -> "engine.io.audio"
                t = t.rpartition(".")[0]
            if t and t != name and t.split(".")[0] in PACKAGES:
                out.add(t)
    # importing engine.x.y runs engine/x/__init__.py too, but those are empty by rule (checked below)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def test_no_import_cycles(graph):
    """Tarjan's strongly connected components: any component with two or more modules is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_package_cycles_between_engine_subpackages(graph):
    """engine's sub-packages form layers: no sub-package imports one that imports it back."""
    def sub(m: str) -> str | None:
        parts = m.split(".")
        return parts[1] if parts[0] == "engine" and len(parts) > 2 else None

    edges = {(sub(a), sub(b)) for a, deps in graph.items() for b in deps
             if sub(a) and sub(b) and sub(a) != sub(b)}
    back = sorted((a, b) for a, b in edges if (b, a) in edges)
    assert not back, f"engine sub-packages importing each other: {back}"


def test_engine_never_imports_bridge_or_cli(graph):
    bad = sorted((a, b) for a, deps in graph.items() if a.startswith("engine")
                 for b in deps if b.startswith(("bridge", "jukebox_bridge")))
    assert not bad, f"engine imports the layer above it: {bad}"


def test_model_imports_nothing_from_the_product_layers(graph):
    """The paper's modules stand alone: no jobs, I/O, generation, batch or training in engine.model."""
    layers = ("engine.jobs", "engine.io", "engine.generate", "engine.batch", "engine.train", "engine.dev",
              "engine.weights")
    bad = sorted((a, b) for a, deps in graph.items() if a.startswith("engine.model")
                 for b in deps if b.startswith(layers))
    assert not bad, bad


def test_bridge_uses_no_model_code(graph):
    """The bridge translates DAW messages into engine calls; it never reaches into the model itself."""
    bad = sorted((a, b) for a, deps in graph.items() if a.startswith("bridge")
                 for b in deps if b.startswith(("engine.model", "engine.train", "engine.dev")))
    assert not bad, bad


def test_subpackage_inits_import_nothing():
    """Empty ``__init__`` files keep ``import engine.request`` from loading torch through a sibling."""
    for init in (ROOT / "engine").rglob("__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))], init


MODEL_WORDS = re.compile(r"\b(torch|numpy|tensor|softmax|logits|transformer|vqvae|codebook)\b", re.I)


@pytest.mark.parametrize("folder,suffix", [("reaper_scripts", "*.lua"), ("max_for_live/src", "*.js")])
def test_daw_scripts_hold_no_model_logic(folder, suffix):
    """The DAW side knows the protocol, not the model: no tensors, logits or codebooks in its code."""
    hits = []
    for path in (ROOT / folder).rglob(suffix):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("--", 1)[0] if suffix == "*.lua" else line.split("//", 1)[0]
            if MODEL_WORDS.search(code):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_the_graph_reader_sees_a_cycle(tmp_path):
    """The checker itself can fail: a planted lazy import loop is found."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    from engine.io import b\n")
    b.write_text("from engine.io.a import f\n")
    known = {"engine.io.a", "engine.io.b", "engine.io"}
    assert imports_of("engine.io.a", a, known) == {"engine.io.b"}
    assert imports_of("engine.io.b", b, known) == {"engine.io.a"}
