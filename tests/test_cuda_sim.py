"""loopnet.cuda without a GPU: the kernels on Numba's CUDA simulator, tiny networks.

The simulator is chosen by NUMBA_ENABLE_CUDASIM=1 before numba.cuda is first
imported, so every case runs in a fresh interpreter (tests/_cuda_sim_cases.py).
Oracles: loopnet.reference (NumPy matrix form) and the CPU engine with the same
seed, within 1e-10 relative in float64 and 1e-5 in float32; and bit-identical
results for four launch configurations of the two drivers.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_python

HAVE_NUMBA_CUDA = importlib.util.find_spec("numba_cuda") is not None
needs_numba_cuda = pytest.mark.skipif(
    not HAVE_NUMBA_CUDA, reason="numba-cuda is not installed (pip install 'loopnet[cuda]')")
CASES = os.path.join(ROOT, "tests", "_cuda_sim_cases.py")


def run_case(name, simulate=True):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if simulate:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    else:
        env.pop("NUMBA_ENABLE_CUDASIM", None)
    proc = subprocess.run([sys.executable, CASES, name], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def test_import_loopnet_does_not_import_numba_cuda():
    out = run_python("import sys, loopnet, loopnet.net\n"
                     "print('numba.cuda' in sys.modules)")
    assert out.strip() == "False"


@needs_numba_cuda
def test_every_output_cost_pair_against_reference():
    out = run_case("pairs")
    assert out.count("ok ") == 24      # 12 pairs × 2 dtypes


@needs_numba_cuda
def test_fit_against_cpu_engine_and_reference_epoch():
    out = run_case("train")
    assert out.count("ok fit") == 6 and "ok reference epoch" in out
    assert "ok divergence and bad options" in out and "ok monitor" in out


@needs_numba_cuda
def test_bit_identical_for_any_launch_configuration():
    out = run_case("configs")
    assert "ok configs float64" in out and "ok configs float32" in out


@needs_numba_cuda
def test_kernels_compile_for_a_real_gpu():
    # under NumPy 2.5's namespace (no np.row_stack, which numba-cuda 0.30.4 still overloads and
    # loopnet.cuda puts back): without that mend every kernel compile fails, seen on an H200
    out = run_case("ptx_without_row_stack", simulate=False)
    if out.startswith("skip") and "row_stack" not in out:
        pytest.skip("no NVVM/NVRTC here to compile PTX (pip install nvidia-cuda-nvcc-cu12 "
                    f"nvidia-cuda-nvrtc-cu12): {out.strip()}")
    assert out.count("ok ptx") == 2


@needs_numba_cuda
def test_on_a_real_gpu_matches_the_cpu_engine():
    out = run_case("gpu", simulate=False)
    if out.startswith("skip"):
        pytest.skip(f"no CUDA GPU on this machine: {out.strip()}")
    assert out.count("ok gpu") == 2


@needs_numba_cuda
def test_gpu_profile_script_runs_on_the_simulator(tmp_path):
    out_file = tmp_path / "gpu-sim.md"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "profiles", "gpu.py"), "--simulate",
                           "--workloads", "w1", "--dtypes", "float64", "--no-phases", "--out", str(out_file)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    text = out_file.read_text()
    assert "SIMULATED" in text and "loopnet.cuda epoch" in text
    assert "FAILED" not in proc.stdout
    row = next(l for l in text.splitlines() if "| loopnet.cuda epoch |" in l)
    assert float(row.split("|")[-2]) <= 1e-10          # weights error against the reference
