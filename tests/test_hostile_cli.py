"""Issue 14 class 6 through the command line: Ctrl-C while the command starts, one-line errors."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A Ctrl-C arriving while numba is imported, made deterministic: the import itself raises it.
INTERRUPT_NUMBA = """
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "numba":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
sys.argv = [{argv0!r}, "--help"]
{start}
"""


@pytest.mark.parametrize("argv0, start", [
    ("/usr/bin/loopnet", "from loopnet.cli import main; sys.exit(main())"),   # console script
    ("-m", "import runpy; runpy.run_module('loopnet', run_name='__main__')"),  # python -m
])
def test_ctrl_c_during_imports_prints_one_line(argv0, start):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("LOOPNET_DEBUG", None)
    p = subprocess.run([sys.executable, "-c", INTERRUPT_NUMBA.format(argv0=argv0, start=start)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 130 and p.stderr == "loopnet: error: interrupted\n", p.stderr


def test_library_import_still_raises_keyboard_interrupt():
    env = dict(os.environ, PYTHONPATH=ROOT)
    code = INTERRUPT_NUMBA.format(argv0="script.py", start="import loopnet")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode != 0 and "KeyboardInterrupt" in p.stderr


def test_resume_does_not_blame_untyped_options(tmp_path, capsys):
    import numpy as np

    from loopnet.cli import main
    X, y = np.random.default_rng(0).random((30, 4)), np.arange(30) % 3
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--epochs", "1", "-q",
                 "--save", str(tmp_path / "m.npz")]) == 0
    os.remove(tmp_path / "d.npz")
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "m.npz"), "--epochs", "2", "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "were not typed but recorded in the model file" in err, err


def test_huge_batch_size_trains(capsys):
    from loopnet.cli import main
    assert main(["train", "--batch-size", "1000000000", "--epochs", "1", "--limit", "40",
                 "--sizes", "64,4,10", "-q"]) == 0
    assert "Traceback" not in capsys.readouterr().err
