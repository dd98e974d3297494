"""The import graph of loopnet, read from the source with ``ast``: imports go only downward.

* no import circle among loopnet's modules;
* no library module imports ``loopnet.cli`` or ``loopnet.commands`` (the top floor);
* every module sits on a floor of :data:`LAYERS` (README "How it is built") and imports
  only modules on its own floor or below;
* a library module imports inside a function only optional dependencies (mpi4py,
  scikit-learn, matplotlib, tqdm, torch, numba.cuda) or the standard library: a lazy import
  of a loopnet module would hide a circle.  The command line (``cli``, ``commands``) loads
  its commands lazily to start fast; nothing imports it, so that hides no circle.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "loopnet"

#: floor -> modules (relative to loopnet; "" is the package itself).  A module may
#: import modules on its own floor or below, never above.
LAYERS = {
    0: ["_linking", "_jit", "checks", "limits", "idx", "reference", "_cli_start", "random", "privacy",
        "pyrandom", "layout", "cpuload", "simd", "fpenv"],  # numba/numpy only (privacy: optional accountants)
    1: ["activations", "costs"],                           # σ, C_x by code
    2: ["kernels", "optim"],                               # the textbook kernels; updates
    3: ["tiles"],                                          # the fast twins of kernels
    4: ["engine"],                                         # compiled driver over mini-batches
    5: ["training", "reporting"],                          # the one epoch loop; its display
    6: ["distributed"],                                    # MPI steps for training.run
    7: ["net"],                                            # the API: Net
    8: ["gradcheck", "trace", "trace_html", "trace_plot", "examples", "idx", "datafiles", "data", "io",
        "cuda", "pairs"],                                  # teaching, data, files, GPU twin
    9: ["network", "network2", "mnist_loader", "sklearn", ""],   # drop-ins, the package
    10: ["cli", "__main__", "commands"],                   # the top floor
}

OPTIONAL = {"mpi4py", "sklearn", "matplotlib", "tqdm", "torch", "numba.cuda", "cupy", "scipy",
            "dp_accounting", "opacus"}
TOP_FLOOR = ("cli", "__main__", "commands")

#: Lazy imports of loopnet modules still found in files whose owners are changing them
#: now (each is harmless: the package is already loaded by then, and no circle hides
#: behind it).  Hoist them to the top of the file and delete the entry.
KNOWN_LAZY = set()

#: Parts of Numba imported only where they are needed, because importing them costs start-up
#: time that a cached start never needs: ``numba.np.linalg`` (50 ms) only before a compile
#: (``_jit._prepare_target``).
START_UP_LAZY = {("_jit", "numba.np.linalg")}


def _name(path):
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _floor(module):
    """The floor of a module: that of the longest declared prefix (``commands.train`` -> ``commands``)."""
    best = None
    for floor, names in LAYERS.items():
        for name in names:
            if module == name or (name and module.startswith(name + ".")):
                if best is None or len(name) > len(best[1]):
                    best = (floor, name)
    return None if best is None else best[0]


def _resolve(module, node):
    """loopnet modules (relative names) an import statement in ``module`` names."""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    targets = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == "loopnet" or alias.name.startswith("loopnet."):
                targets.append(alias.name[len("loopnet."):] if "." in alias.name else "")
        return targets
    if node.level:
        base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
        base = ".".join(base)
    elif node.module == "loopnet" or (node.module or "").startswith("loopnet."):
        base = ""
    else:
        return []
    mod = node.module or ""
    if not node.level:
        mod = mod[len("loopnet"):].lstrip(".")
    base = ".".join(x for x in (base, mod) if x)
    for alias in node.names:
        sub = ".".join(x for x in (base, alias.name) if x)
        targets.append(sub if sub in MODULES else base)
    return targets


def _imports(module):
    """(target, lazy, line, top-level name of a non-loopnet lazy import) for every import."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = []

    def visit(node, lazy):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in _resolve(module, child):
                    found.append((target, lazy, child.lineno, None))
                if lazy and not _resolve(module, child) and not getattr(child, "level", 0):
                    names = [child.module] if isinstance(child, ast.ImportFrom) else \
                        [a.name for a in child.names]
                    for name in names:
                        found.append((None, True, child.lineno, name))
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inner)

    visit(tree, False)
    return found


GRAPH = {m: sorted({t for t, _, _, _ in _imports(m) if t is not None and t != m}) for m in MODULES}


def test_every_module_has_a_floor():
    missing = [m for m in MODULES if _floor(m) is None]
    assert not missing, f"add these modules to LAYERS in tests/test_imports.py: {missing}"


def test_no_import_circle():
    state, stack = {}, []

    def walk(m):
        state[m] = "open"
        stack.append(m)
        for t in GRAPH[m]:
            if state.get(t) == "open":
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if t not in state:
                walk(t)
        stack.pop()
        state[m] = "done"

    for m in MODULES:
        if m not in state:
            walk(m)


def test_the_library_never_imports_the_command_line():
    bad = [(m, t) for m in MODULES if not m.startswith(TOP_FLOOR) for t in GRAPH[m]
           if t.startswith(TOP_FLOOR)]
    assert not bad, f"library modules importing loopnet.cli/commands: {bad}"


def test_imports_go_only_downward():
    bad = [f"{m} (floor {_floor(m)}) imports {t} (floor {_floor(t)})"
           for m in MODULES for t in GRAPH[m] if _floor(t) is not None and _floor(t) > _floor(m)]
    assert not bad, "\n".join(bad)


def test_lazy_imports_only_for_optional_dependencies():
    bad = []
    for m in MODULES:
        if m.startswith(TOP_FLOOR):
            continue
        for target, lazy, line, name in _imports(m):
            if not lazy:
                continue
            if target is not None and (m, target) not in KNOWN_LAZY:
                bad.append(f"{m}:{line} imports loopnet.{target or ''} inside a function")
            elif name and name.split(".")[0] not in sys.stdlib_module_names \
                    and not any(name == o or name.startswith(o + ".") for o in OPTIONAL) \
                    and (m, name) not in START_UP_LAZY:
                bad.append(f"{m}:{line} imports {name} inside a function (not an optional dependency)")
    assert not bad, "\n".join(bad)


def test_the_graph_is_read_correctly():
    """The parser sees imports that are there (so the tests above can fail)."""
    assert "engine" in GRAPH["training"]
    assert "checks" in GRAPH["net"] and "training" in GRAPH["net"]
    assert "idx" in GRAPH["datafiles"]
    assert "commands._common" in GRAPH["commands.train"]
    assert _floor("commands.train") == 10 and _floor("engine") == 4


def test_the_vocabularies_agree_with_the_code_tables():
    """checks.py's name lists are the ones the compiled code numbers."""
    from loopnet import activations, checks, costs, optim

    assert checks.OUTPUTS == activations.NAMES
    assert checks.ACTIVATIONS == tuple(activations.HIDDEN_NAMES)
    assert checks.COSTS == costs.NAMES
    assert checks.OPTIMIZERS == optim.NAMES
