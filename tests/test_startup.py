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


def test_first_fit_leaves_scipy_linalg_unimported_and_numba_as_it_was():
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-c", CHECK_SCIPY], capture_output=True, text=True, env=env,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", "True", "True", "ensure_blas"], p.stdout
