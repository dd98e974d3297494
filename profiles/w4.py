"""W4: profile loopnet against NumPy, per-example NumPy, PyTorch and scikit-learn.

Run python profiles/w4.py [--dtype float32|both] [--quick] or loopnet profile w4;
the scenario itself (sizes, mini-batch, eta) is defined in _harness.SCENARIOS["w4"].
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import main_for  # noqa: E402

if __name__ == "__main__":
    sys.exit(main_for("w4"))
