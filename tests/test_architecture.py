"""The import rules of docs/architecture.md, enforced on the source: every module sits in one
layer and imports only from its own layer or lower ones; no two modules import each other,
directly or around a loop; no module imports another's private names. Imports inside functions
count: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: where each package's files are (pyproject's package-dir)
PACKAGES = {"edgecv": ROOT / "edgecv", "edgecv.export": ROOT / "export", "edgecv.runtimes": ROOT / "runtimes"}

#: the layers, lowest first: (name, module prefixes). A module belongs to the layer of its
#: longest matching prefix. docs/architecture.md draws the same table.
LAYERS = [
    (
        "core",
        [
            "edgecv.errors",
            "edgecv.schema",
            "edgecv.targets",
            "edgecv.tasks",
            "edgecv.images",
            "edgecv.letterbox",
            "edgecv.nms",
            "edgecv.masks",
            "edgecv.detections",
            "edgecv.results",
            "edgecv.bundle",
            "edgecv.graph_references",
            "edgecv.draw",
            "edgecv.cpu",
            "edgecv.envcheck",
            "edgecv.data",
            "edgecv.assets",
            "edgecv.video",
            "edgecv.console",  # plain-text tables, counts and progress bars: every layer prints
        ],
    ),
    # the serving client is a runtime (edgecv.load of a URL); the server and the Triton writer are tools
    (
        "runtimes",
        ["edgecv.runtimes", "edgecv.tracking", "edgecv.serving", "edgecv.serving.protocol", "edgecv.serving.client"],
    ),
    (
        "evaluation",
        [
            "edgecv.metrics",
            "edgecv.datasets",
            "edgecv.comparison",
            "edgecv.harness",
            "edgecv.taskeval",
            "edgecv.classify_eval",
            "edgecv.segment_eval",
            "edgecv.track_eval",
            "edgecv.evaluation",
            "edgecv.report",
        ],
    ),
    ("export", ["edgecv.export"]),
    (
        "tools",
        [
            "edgecv.pipeline",
            "edgecv.limits",
            "edgecv.bench",
            "edgecv.latency",
            "edgecv.demo",
            "edgecv.testing",
            "edgecv.cli",
            "edgecv.serving.server",
            "edgecv.serving.triton",
            "edgecv.sharding",
        ],
    ),
]


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, folder in PACKAGES.items():
        for f in folder.rglob("*.py"):
            rel = f.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            if any(name.startswith(p + ".") or name == p for p in PACKAGES if p != pkg and p.startswith(pkg + ".")):
                continue  # a subpackage's folder mapped elsewhere (none today)
            out[name] = f
    return out


MODULES = _modules()


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str) -> list[tuple[str, str, int]]:
    """(imported module, imported name or '', line) for every edgecv import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "edgecv"]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            if target.split(".")[0] != "edgecv":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                # `from . import tasks` imports the module edgecv.tasks; `from .x import y` a name of x
                out.append((sub, "", node.lineno) if sub in MODULES else (target, a.name, node.lineno))
    return out


def layer_of(module: str) -> int | None:
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    return None if best is None else best[0]


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if m != "edgecv" and layer_of(m) is None)
    assert not missing, f"modules in no layer of docs/architecture.md: {missing}"


def test_no_import_from_a_lower_layer_to_a_higher_one():
    bad = []
    for m in MODULES:
        if m == "edgecv":  # the package's facade re-exports from every layer
            continue
        for target, _, line in imports(m):
            if target == "edgecv" or target not in MODULES:
                continue  # the root package (its __version__), or a name of a module
            lm, lt = layer_of(m), layer_of(target)
            if lt is not None and lm is not None and lt > lm:
                bad.append(f"{m}:{line} ({LAYERS[lm][0]}) imports {target} ({LAYERS[lt][0]})")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def _graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {m: set() for m in MODULES}
    for m in MODULES:
        for target, _, _ in imports(m):
            if target in MODULES and target != m and target != "edgecv" and m != "edgecv":
                # a module importing its own package's __init__ (or the reverse) is how packages work
                if m.startswith(target + ".") or target.startswith(m + "."):
                    continue
                g[m].add(target)
    return g


def test_no_circular_imports_between_modules():
    g = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
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

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, "modules that import each other (directly or around a loop): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_private_names_imported_across_modules():
    bad = [
        f"{m}:{line} imports {name} from {target}"
        for m in MODULES
        for target, name, line in imports(m)
        if name.startswith("_") and not name.startswith("__") and target != m
    ]
    assert not bad, "private names imported from other modules:\n" + "\n".join(bad)


@pytest.mark.parametrize("rule", ["lower", "cycle", "private"])
def test_the_checks_catch_what_they_look_for(rule, monkeypatch, tmp_path):
    """Each rule fails on a module written to break it (so the checks above can fail)."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        {
            "lower": "from .cli import commands\n",  # core importing the CLI
            "cycle": "from . import bench\n",  # bench is made to import the probe back, below
            "private": "from .harness import _Resampler\n",
        }[rule]
    )
    monkeypatch.setitem(MODULES, "edgecv.probe", probe)
    if rule == "cycle":
        real = imports
        monkeypatch.setitem(
            globals(), "imports", lambda m: real(m) + ([("edgecv.probe", "", 1)] if m == "edgecv.bench" else [])
        )
        check, what = test_no_circular_imports_between_modules, "import each other"
    elif rule == "lower":
        check, what = test_no_import_from_a_lower_layer_to_a_higher_one, r"edgecv.probe:1 \(core\) imports edgecv.cli"
    else:
        check, what = test_no_private_names_imported_across_modules, "edgecv.probe:1 imports _Resampler"
    LAYERS[0][1].append("edgecv.probe")
    try:
        with pytest.raises(AssertionError, match=what):
            check()
    finally:
        LAYERS[0][1].remove("edgecv.probe")
