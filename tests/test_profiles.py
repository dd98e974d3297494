"""Smoke tests for profiles/: the scenarios validate and the harness runs (tiny sizes, --quick).

No timing is asserted anywhere: the machine is shared and timings are noise here.
"""

import importlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
sys.path.insert(0, str(PROFILES))

H = importlib.import_module("_harness")

TINY = {"w1": "12,6,4", "w2": "12,8,4", "w3": "12,8,4", "w4": "12,5,5,5,5,4", "w5": "12,40,4"}


def test_flop_count_matches_the_documented_w1_numbers():
    f = H.flops_per_example([784, 30, 10], 10)
    assert f["forward"] == 47_640 and f["gradient"] == 47_640
    assert f["hidden"] == 600
    assert f["update"] == pytest.approx(2 * (784 * 30 + 30 + 30 * 10 + 10) / 10)
    assert H.flops_per_epoch([784, 30, 10], 10, 50_000) == pytest.approx(5.03e9, rel=1e-3)


def test_every_scenario_is_defined_and_has_an_entry_point():
    assert set(H.SCENARIOS) == {"w1", "w2", "w3", "w4", "w5"}
    assert H.SCENARIOS["w4"].sizes == [784, 64, 64, 64, 64, 10]
    for key in H.SCENARIOS:
        assert (PROFILES / f"{key}.py").is_file()


def test_peaks_and_header_quick():
    peaks = H.measure_peaks(quick=True)
    cores = peaks["cores"]
    for dt in ("float64", "float32"):
        assert peaks[dt][1] > 0 and peaks[dt][cores] > 0
    assert peaks["bandwidth"][1] > 0
    head = H.machine_header(peaks)
    for word in ("CPU", "Python", "NumPy", "Numba", "GFLOP/s", "GB/s", "UTC"):
        assert word in head


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_numpy_and_nielsen_baselines_match_the_reference(dtype):
    sc = replace(H.SCENARIOS["w1"], sizes=[12, 6, 4])
    X, Y, _, _ = H.load_data(60, 12, 4, dtype)
    ws, bs = H.init_params(sc.sizes, dtype)
    for impl in (H.NumpyMatrix(sc, dtype), H.NielsenStyle(sc, dtype), H.Loopnet(sc, dtype, 1)):
        g_err, w_err = H.validate(impl, sc, X, Y, ws, bs)
        assert g_err <= H.TOL[dtype] and w_err <= H.TOL[dtype], impl.label


def test_validation_catches_a_missing_one_over_m():
    sc = replace(H.SCENARIOS["w1"], sizes=[12, 6, 4])
    X, Y, _, _ = H.load_data(60, 12, 4)
    ws, bs = H.init_params(sc.sizes, "float64")

    class Broken(H.NumpyMatrix):
        def gradient(self, X, Y):
            return self._grad_sum(X, Y)  # forgot to divide by m

    g_err, _ = H.validate(Broken(sc, "float64"), sc, X, Y, ws, bs)
    assert g_err > 1.0


@pytest.mark.parametrize("key", sorted(TINY))
def test_scenario_quick_validates_and_times(key, capsys):
    impls = "numpy,nielsen,loopnet1,loopnet" + (",sklearn,torch1,torch" if key == "w1" else "")
    rc = H.main_for(key, ["--quick", "--sizes", TINY[key], "--impls", impls, "--examples", "200"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "| loopnet, 1 thread | 1 |" in out
    assert "not timed" not in out
    assert "hardware bound" in out


def test_loopnet_profile_command(capsys):
    from loopnet.cli import main

    rc = main(["profile", "w2", "--quick", "--sizes", "12,6,4", "--impls", "numpy,loopnet1", "--dtype", "both"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "float32" in out and "float64" in out
    assert main(["profile", "nope"]) == 2
    assert main(["profile", "--list"]) == 0


def test_phase_profile_quick(capsys):
    phases = importlib.import_module("phases")
    rc = phases.main(["w1", "--quick", "--sizes", "12,6,4", "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    for name in phases.STAGES + ["Python / dispatch overhead", "net.fit epoch"]:
        assert name in out


@pytest.mark.parametrize("dtype, share", [("float32", 0.5), ("float64", 0.0)])
def test_subnormal_census_counts_what_was_worked_by_hand(dtype, share):
    """One sigmoid neuron, w = −88, b = 0, y = 1: for x = 1, a = 1/(1 + e^88) ≈ 6.1e-39 and
    δ = (a − 1) a (1 − a) ≈ −6.1e-39, subnormal in float32 (below 1.18e-38), normal in
    float64; for x = 0, a = 0.5 and δ = −0.125.  Half of each a and δ is subnormal in float32."""
    phases = importlib.import_module("phases")
    sc = replace(H.SCENARIOS["w1"], sizes=[1, 1])
    w, b = np.array([[-88.0]], dtype), np.zeros(1, dtype)
    X, Y = np.array([[1.0], [0.0]], dtype), np.ones((2, 1), dtype)
    assert phases.subnormal_shares([w], [b], X, Y, sc) == {"a1": share, "δ1": share}
    line = phases.subnormal_line({"a1": share, "δ1": share})
    assert ("microcode assist" in line) == (share > 0)
    assert ("flushed them" in phases.subnormal_line({"a1": share}, flushed=True)) == (share > 0)


def test_perf_names_writes_a_map_perf_can_read(tmp_path):
    """perf's JIT map format: "START SIZE name" in hex, one function per line; addresses rising
    and each range ending where the next begins; the engine's driver and kernels named."""
    path = tmp_path / "perf.map"
    run = subprocess.run([sys.executable, str(PROFILES / "perf_names.py"), "w1", "--sizes", "12,6,4",
                          "--examples", "200", "--epochs", "1", "--map", str(path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line.split(" ", 2) for line in path.read_text().splitlines()]
    starts = [int(start, 16) for start, _, _ in rows]
    sizes = [int(size, 16) for _, size, _ in rows]
    names = [name for _, _, name in rows]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(a + s == b for a, s, b in zip(starts, sizes, starts[1:]))
    assert any("drive_batches" in n for n in names) and any("tiles" in n for n in names)


def test_sweep_tables_quick(capsys, monkeypatch):
    sweep = importlib.import_module("sweep")
    base = H.SCENARIOS["w1"]
    monkeypatch.setattr(sweep, "sweep_points", lambda kind, cores: [
        ("a", replace(base, sizes=[784, 4, 10], m=5)), ("b", replace(base, sizes=[784, 6, 10], m=10))])
    assert sweep.main(["--quick", "--kinds", "batch,width"]) == 0
    out = capsys.readouterr().out
    assert "Sweep over mini-batch size" in out and "Sweep over hidden width" in out


def test_results_file_sections_are_replaced_in_place(tmp_path):
    path = tmp_path / "m.md"
    H.update_results(path, "- header 1", {"w1-float64": "### W1\nfirst"})
    H.update_results(path, "- header 2", {"w2-float64": "### W2\nx", "summary": "## Summary\ns"})
    H.update_results(path, None, {"w1-float64": "### W1\nsecond"})
    text = path.read_text()
    assert "first" not in text and "second" in text and "### W2" in text
    assert "header 2" in text and "header 1" not in text
    assert text.index("## Summary") < text.index("### W1") < text.index("### W2")


def test_readme_performance_section_replaced_in_place(tmp_path):
    suite = importlib.import_module("suite")
    readme = tmp_path / "README.md"
    assert suite.update_readme(readme, "x") is False and not readme.exists()
    readme.write_text("# loopnet\n\nintro\n\n## Install\n\npip\n")
    assert suite.update_readme(readme, "table 1")
    assert readme.read_text().endswith("## Performance\n\ntable 1\n")
    readme.write_text(readme.read_text() + "\n## Later\n\nkept\n")
    suite.update_readme(readme, "table 2")
    text = readme.read_text()
    assert "table 1" not in text and "table 2" in text
    assert text.index("## Install") < text.index("## Performance") < text.index("## Later")
    assert "kept" in text and "pip" in text


def test_busy_table_slowdowns_worked_by_hand_and_competitor_lives_only_inside_its_block():
    busy = importlib.import_module("busy")
    res = {"scenario": H.SCENARIOS["w1"], "source": "test", "n": 100, "loads": [1.0, 2.0],
           "labels": {"fit": "loopnet fit() defaults", "numpy": "NumPy matrix form"},
           "fractions": {"fit": 1.0, "numpy": 1.0},
           "all": {"fit": {"alone": [2.0], "blas": [3.0]}, "numpy": {"alone": [1.0], "blas": [3.0]}},
           "best": {"fit": {"alone": 2.0, "blas": 3.0}, "numpy": {"alone": 1.0, "blas": 3.0}}}
    table = busy.workload_table(res, ["alone", "blas"])
    assert "| loopnet fit() defaults | 2.000 | 3.000 | 1.50× |" in table
    assert "| NumPy matrix form | 1.000 | 3.000 | 3.00× |" in table
    assert "(≤ 1: no worse) | 0.50 |" in table              # 1.5 / 3.0
    assert "both busy (NumPy s / loopnet s) | 1.00× |" in table    # 3.0 / 3.0
    with busy.Competitor("blas") as c:
        assert c.proc.poll() is None                            # running, warm
    assert c.proc.poll() is not None                            # killed on exit


def test_noise_generators_quick(capsys, monkeypatch):
    import noise_generators
    monkeypatch.setattr(sys, "argv", ["noise_generators.py", "--n", "500", "--calls", "2",
                                      "--rounds", "1"])
    noise_generators.main()
    out = capsys.readouterr().out
    assert "500 per call" in out
    assert "loopnet DP noise (kernels.add_noise)" in out and "NumPy Generator" in out


def test_tile_shapes_quick(capsys, monkeypatch):
    import tile_shapes
    monkeypatch.setattr(sys, "argv", ["tile_shapes.py", "--rows", "8", "--panel", "4",
                                      "--inputs", "300", "--m", "60", "--reps", "2",
                                      "--rounds", "1"])
    tile_shapes.main()
    out = capsys.readouterr().out
    assert "the 4 × 3 tile gives the same bits as two 2 × 4 passes:" in out   # True on AVX2
    assert "tiles.forward_layer3 (4 × 3)" in out and "k-blocked by 128 columns" in out
    assert "tiles.forward_layer5 (4 × 5)" in out and "engine order (5 examples" in out


def test_simd_tiles_quick_run(capsys, monkeypatch):
    """profiles/simd_tiles.py times the engine's outer-product tiles (tested against the naive
    loop in tests/test_engine.py) and its dot tiles: a smoke run, the gradient bits checked by
    the script before timing."""
    import simd_tiles as S
    monkeypatch.setattr(sys, "argv", ["simd_tiles.py", "--quick"])
    S.main()
    out = capsys.readouterr().out
    assert "register blocks give the engine's bits: True" in out
    assert "forward, outer product 6 × 4 vectors" in out and "gradient, register blocks" in out


def test_machine_slug_carries_llvm_host_cpu_name(monkeypatch):
    import _machine
    monkeypatch.setattr(_machine, "cpu_model", lambda: "AMD EPYC Processor")
    monkeypatch.setattr(_machine, "n_cores", lambda: 2)
    monkeypatch.setattr(_machine, "host_cpu_name", lambda: "znver5")
    assert _machine.machine_slug() == "amd-epyc-znver5-2c"
    monkeypatch.setattr(_machine, "host_cpu_name", lambda: "generic")   # LLVM could not tell
    assert _machine.machine_slug() == "amd-epyc-2c"


def test_header_names_numpys_own_blas_when_scipys_is_listed_first(monkeypatch):
    import threadpoolctl
    import _machine
    libs = [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.30",
             "architecture": "Haswell", "filepath": "/x/site-packages/scipy.libs/libscipy_openblas.so"},
            {"user_api": "openmp", "internal_api": "openmp", "filepath": "/x/libgomp.so"},
            {"user_api": "blas", "internal_api": "openblas", "version": "0.3.31",
             "architecture": "SkylakeX", "filepath": "/x/site-packages/numpy.libs/libscipy_openblas64_.so"}]
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: libs)
    assert _machine.versions()["blas"] == "openblas 0.3.31, SkylakeX kernels"


def test_compile_time_counts_nested_timers_exclusive_and_once_inclusive():
    CT = importlib.import_module("compile_time")
    now = [0.0]
    timers = CT.ExclusiveTimes(clock=lambda: now[0])

    def advance(dt):
        now[0] += dt

    timers.start("caller")          # caller 1 s, callee 2 s inside, caller 0.5 s more,
    advance(1.0)                    # then the caller again inside itself for 0.25 s
    timers.timed("callee", advance, 2.0)
    advance(0.5)
    timers.start("caller")
    advance(0.25)
    timers.stop()
    timers.stop()
    assert timers.exclusive == {"caller": 1.75, "callee": 2.0}
    assert timers.inclusive == {"caller": 3.75, "callee": 2.0}   # the nested entry not again
    assert timers.calls == {"caller": 2, "callee": 1}


def test_compile_time_table_sums_every_row_and_folds_the_rest():
    CT = importlib.import_module("compile_time")
    text = CT.table("pass", {"a": 3.0, "b": 1.0, "c": 0.5}, total=10.0, top=2, unit_total="passes")
    assert "| a | 3.000 | 30 % |" in text and "| b | 1.000 | 10 % |" in text
    assert "| 1 others | 0.500 | 5 % |" in text
    assert "| **all passes** | **4.500** | **45 %** |" in text


def test_cached_start_sums_the_stages_from_import_numpy_to_the_first_fit(monkeypatch):
    CS = importlib.import_module("cached_start")
    # A fake child: 0.10 s from spawn to its first line, 1.5 s timed, 1.8 s of process wall time.
    stages = [["import numpy", 0.1, 0.0, 0], ["import numba", 0.3, 0.02, 0],
              ["import loopnet", 0.2, 0.05, 1], ["import numpy.ma (Numba's typeof)", 0.02, 0, 0],
              ["Net([784, 30, 10])", 0.01, 0, 0],
              ["first fit (loads the cached engine)", 0.1, 0.0, 0],
              ["second fit (all loaded)", 0.7, 0.0, 0]]
    out = json.dumps({"started": 0.1, "timed": 1.5, "stages": stages})
    monkeypatch.setattr(CS.startup, "child", lambda pkg, cache, argv: ("noise\n" + out, 1.8, 2.0))
    rows = CS.run(None, None, "float64")
    assert rows[0] == ["interpreter start (spawn to first line)", 0.1, 0.0, 0]
    assert rows[-1][0].startswith("interpreter exit") and rows[-1][1] == pytest.approx(0.2)
    slower = [[name, 2 * s, g, n] for name, s, g, n in rows]
    text = CS.table([rows, slower, rows])
    assert "| import numba | 0.300 (0.300-0.600) | 0.020 | 0 |" in text
    assert "| import loopnet | 0.200 (0.200-0.400) | 0.050 | 1 |" in text
    # 0.73 s: neither the interpreter's start and exit nor the second fit
    assert "| **cached start** (from `import numpy` to the first fit) | **0.730 (0.730-1.460)** " \
           "| 0.070 | |" in text
