"""Imports point one way.  Every ``import``/``from … import`` of every module — including those inside
function bodies, where cycles hide — is read from the source (``ast``) and checked against the layer
order below; the module graph must have no cycle."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tms_bayes"

#: what each layer may import (besides itself).  ``inference`` (sampling) and ``analysis`` (arrays in,
#: labelled xarray out) are siblings: neither imports the other; ``experiments`` join them.
#: ``tms_bayes`` itself is the public façade (it may import anything; others take only ``__version__``).
BASE = {"_validate", "_options", "_parse", "_stats", "_interrupt", "_jax", "_devices", "__version__"}
ALLOWED = {
    "_validate": set(), "_options": set(), "_parse": set(), "_stats": set(), "_interrupt": set(), "_jax": set(), "_devices": {"_validate"},
    "store": BASE,
    "theory": BASE,
    "models": BASE | {"theory"},
    "inference": BASE | {"store", "theory", "models"},
    "analysis": BASE | {"store", "theory", "models"},
    "experiments": BASE | {"store", "theory", "models", "inference", "analysis"},
    "cli": BASE | {"store", "theory", "models", "inference", "analysis", "experiments"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported tms_bayes module or attribute, line) for every import in ``path``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "tms_bayes" or target.startswith("tms_bayes."):
                if target.count(".") == 0 or node.module is None:  # "from .. import x": x may be a module or an attribute
                    out += [(f"{target}.{a.name}", node.lineno) for a in node.names]
                else:
                    out.append((target, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("tms_bayes")]
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "tms_bayes"


def _graph():
    files = sorted(PACKAGE.rglob("*.py"))
    return {_module_name(f): (f, _imports(f)) for f in files}


def test_imports_follow_the_layers():
    bad = []
    for module, (path, imports) in _graph().items():
        src = _layer(module)
        if src == "tms_bayes":
            continue  # the façade
        assert src in ALLOWED, f"{module}: layer {src!r} is not in the architecture test's ALLOWED; add it in its place"
        for target, line in imports:
            dst = _layer(target)
            if dst != src and dst not in ALLOWED[src]:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} {module} ({src}) imports {target} ({dst}: not allowed for {src})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules():
    graph = _graph()
    modules = set(graph)

    def resolve(target: str) -> str | None:
        while target and target not in modules:
            target = target.rsplit(".", 1)[0] if "." in target else ""
        return target or None

    edges = {m: {t for t in (resolve(x) for x, _ in imports) if t and t != m and t != "tms_bayes"} for m, (_, imports) in graph.items()}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(modules):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_test_sees_imports_inside_functions(tmp_path):
    """The checker reads function-level imports (where the old sweep ↔ diagnostics cycle hid)."""
    src = tmp_path / "tms_bayes" / "inference" / "probe.py"
    src.parent.mkdir(parents=True)
    src.write_text("def f():\n    from ..analysis.diagnostics import summarize_run\n    return summarize_run\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "tms_bayes"
    try:
        assert _imports(src) == [("tms_bayes.analysis.diagnostics", 2)]
    finally:
        PACKAGE = saved
