"""Start-up (issue 13 item 5): what the first fit compiles or imports, checked by type, not by time."""

import os
import subprocess
import sys

import numpy as np

import loopnet
from loopnet import engine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_step_reuses_the_update_types_of_fit():
    """net.step hands apply_step a Step and a float m, the types of fit's phase B (one
    compiled update_rows, not a second one for Hyper and int m)."""
    net = loopnet.Net([3, 2, 2], seed=0)
    X, y = np.random.default_rng(0).random((4, 3)), np.array([0, 1, 0, 1])
    net.step(net.gradient_sum(X, y), eta=0.1, m=4)
    sigs = [str(sig) for sig in engine.apply_step.signatures]
    assert sigs and all("Step(int64, float64" in s and ", float64, Arch(" in s for s in sigs), sigs


CHECK_SCIPY = """
import sys, numpy as np, loopnet
import numba.np.linalg as linalg
net = loopnet.Net([3, 2, 2], seed=0)
net.fit(np.zeros((4, 3)), np.array([0, 1, 0, 1]), epochs=1, batch_size=2, monitor=False)
import numba.np.arraymath as arraymath
import importlib.util
print("scipy.linalg" in sys.modules, arraymath._HAVE_BLAS == (importlib.util.find_spec("scipy") is not None),
      arraymath.ensure_blas is linalg.ensure_blas, linalg.ensure_blas.__name__)
"""


def test_first_fit_leaves_scipy_linalg_unimported_and_numba_as_it_was(tmp_path):
    """A first fit that compiles (empty cache) loads Numba's whole target without SciPy."""
    env = dict(os.environ, PYTHONPATH=ROOT, NUMBA_CACHE_DIR=str(tmp_path))
    p = subprocess.run([sys.executable, "-c", CHECK_SCIPY], capture_output=True, text=True, env=env,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", "True", "True", "ensure_blas"], p.stdout


TRAIN_AND_HASH = """
import hashlib, numpy as np, loopnet
from numba.core import event
compiled = []
class Count(event.Listener):
    def on_start(self, e):
        compiled.append(e.data["dispatcher"].py_func.__name__)
    def on_end(self, e):
        pass
event.register("numba:compile", Count())
rng = np.random.default_rng(1)
X, y = rng.random((40, 6)), rng.integers(0, 3, 40)
net = loopnet.Net([6, 5, 3], seed=2)
net.fit(X, y, epochs=2, batch_size=4, eta=0.5)
digest = hashlib.sha256(np.concatenate([w.ravel() for w in net.weights + net.biases]).tobytes())
from loopnet import _linking, engine, kernels, tiles
def libraries(d):
    return [cres.library for cres in getattr(d, "overloads", {}).values()]
# the register tiles this target runs; the other pair's branch is never compiled
ran, skipped = ((engine.forward_layer5, engine.accumulate_gradient5) if tiles.WIDE_TILES
                else (engine.forward_layer3, engine.accumulate_gradient4)), \
               ((engine.forward_layer3, engine.accumulate_gradient4) if tiles.WIDE_TILES
                else (engine.forward_layer5, engine.accumulate_gradient5))
helpers = (engine.run_tasks, engine.gradient_block, engine.first_layer_panel,
           engine.backpropagate_errors, engine.hidden_delta) + ran
linked = (_linking.AVAILABLE and ran[0] is not tiles.forward_layer3 and ran[0] is not tiles.forward_layer5
          and not any(libraries(d) for d in skipped)
          and engine.hidden_delta is not kernels.hidden_delta
          and all(libraries(h) and all(isinstance(lib, _linking.LinkedLibrary) for lib in libraries(h))
                  for h in helpers)
          and not any(isinstance(lib, _linking.LinkedLibrary) for lib in libraries(engine.drive_batches)))
reached = {}
def reach(lib):
    if id(lib) not in reached:
        reached[id(lib)] = lib
        for callee in getattr(lib, "_linking_libraries", ()):
            reach(callee)
for lib in libraries(engine.run_tasks):
    reach(lib)
# the prange loop's gufunc kernel, its gufunc-loop wrapper and its thread-pool wrapper
parts = [lib for lib in reached.values() if "gufunc" in lib.name.lower()]
linked = linked and len(parts) == 3 and all(isinstance(lib, _linking.LinkedLibrary) for lib in parts)
import sys
refreshed = "numba.np.linalg" in sys.modules       # Numba's whole target loaded (it imports this)
refreshed = refreshed or "scipy.linalg" in sys.modules
import numba
twice = numba.njit(lambda a: (a * 2.0).sum())       # a compile after a cache load without refresh
print(digest.hexdigest(), len(compiled), linked, refreshed, twice(np.arange(4.0)) == 12.0)
"""


def test_a_second_process_loads_the_compiled_engine_and_trains_the_same_bits(tmp_path):
    """The engine's helpers, the kernels' twins it calls and the three libraries of its prange
    loop are compiled as linked libraries (no machine code of their own; their IR is linked
    into drive_batches, which is not), so the cache holds the driver's
    whole code: a second process compiles nothing and its first fit gives the first process's
    weights bit for bit.  Loading from the cache skips Numba's refresh of its whole target
    (only compiling needs it), and a compile later in that process still works."""
    env = dict(os.environ, PYTHONPATH=ROOT, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = []
    for _ in range(2):
        p = subprocess.run([sys.executable, "-c", TRAIN_AND_HASH], capture_output=True, text=True,
                           env=env, timeout=900)
        assert p.returncode == 0, p.stderr[-2000:]
        runs.append(p.stdout.split())
    (first, n_first, linked, _, compiles), (second, n_second, _, refreshed, compiles_again) = runs
    assert compiles == compiles_again == "True", runs
    if os.environ.get("NUMBA_DISABLE_JIT") != "1":
        assert int(n_first) > 0 and int(n_second) == 0, runs
        assert refreshed == "False", runs
        if os.environ.get("LOOPNET_LINKED", "1") != "0":
            assert linked == "True", runs
    assert first == second
