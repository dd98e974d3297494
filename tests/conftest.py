import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every activation/cost pair loopnet accepts: (hidden activation, output, cost).
HIDDEN = ("sigmoid", "tanh", "relu", "identity")
OUTPUT_COST = (
    ("sigmoid", "quadratic"), ("sigmoid", "cross_entropy"), ("sigmoid", "log_likelihood"),
    ("sigmoid", "mse"), ("softmax", "log_likelihood"), ("softmax", "quadratic"),
    ("softmax", "cross_entropy"), ("softmax", "mse"), ("identity", "mse"),
    ("identity", "quadratic"), ("tanh", "quadratic"), ("relu", "mse"),
)


def make_targets(rng, m, n_out, output, cost):
    """Targets that make sense for the output/cost pair."""
    if output == "softmax" or cost == "log_likelihood":
        return np.eye(n_out)[rng.integers(0, n_out, m)]
    if cost == "cross_entropy":
        return rng.uniform(0.05, 0.95, (m, n_out))
    return rng.standard_normal((m, n_out))


def run_python(code, env=None, timeout=300):
    """Run ``code`` in a fresh interpreter (the same venv); return its stdout."""
    import subprocess
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
