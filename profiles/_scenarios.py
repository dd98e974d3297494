"""Shared by every part of the profiler: paths, validation tolerances, the scenarios W1-W5 and
their FLOP counts (see _harness's docstring for how FLOPs are counted).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent
REPO_DIR = PROFILES_DIR.parent
RESULTS_DIR = PROFILES_DIR / "results"
FASHION_DIR = Path(os.environ.get("LOOPNET_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))

if importlib.util.find_spec("loopnet") is None:  # `python profiles/w1.py` from an uninstalled checkout
    sys.path.insert(0, str(REPO_DIR))

TOL = {"float64": 1e-10, "float32": 1e-5}  # max relative error allowed in validation


def _optional(name):
    try:
        return __import__(name)
    except Exception:  # noqa: BLE001 - any import failure means "not installed"
        return None



# ---------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------


@dataclass
class Scenario:
    key: str
    sizes: list
    m: int
    eta: float = 3.0
    activation: str = "sigmoid"
    output: str = "sigmoid"
    cost: str = "quadratic"
    note: str = ""

    @property
    def title(self):
        return f"{self.key.upper()} {self.sizes}, m = {self.m}"


SCENARIOS = {
    "w1": Scenario("w1", [784, 30, 10], 10, note="Nielsen chapter 1"),
    "w2": Scenario("w2", [784, 100, 10], 10),
    "w3": Scenario("w3", [784, 100, 10], 100),
    "w4": Scenario("w4", [784, 64, 64, 64, 64, 10], 10, note="deep and narrow"),
    "w5": Scenario("w5", [784, 1000, 10], 100, note="wide"),
}


def flops_per_example(sizes, m):
    """FLOPs per example by phase, counted as in the module docstring."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    mac = sum(a * b for a, b in pairs)
    params = sum(a * b + b for a, b in pairs)
    return {
        "forward": 2 * mac,
        "hidden": 2 * sum(a * b for a, b in pairs[1:]),
        "gradient": 2 * mac,
        "update": 2 * params / m,
    }


def flops_per_epoch(sizes, m, n):
    return n * sum(flops_per_example(sizes, m).values())
