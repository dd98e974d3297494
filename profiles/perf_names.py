"""Linux ``perf`` with the engine's function names: a training run whose compiled code perf can name.

    perf record -o perf.data python profiles/perf_names.py w1 --epochs 50
    perf report -i perf.data --sort sym

perf shows Numba's machine code as anonymous ``[JIT]`` addresses.  It reads names for such code
from ``/tmp/perf-<pid>.map`` (one "START SIZE name" line per function).  This script compiles the
engine in its own process (an empty ``NUMBA_CACHE_DIR``: code loaded from Numba's cache keeps no
function list), writes that file from the compiled library (each function's address from
``get_pointer_to_function``; its size taken as the distance to the next one, so a few bytes of
padding go to the function before them), then trains the scenario's network for ``--epochs``
epochs, the part perf should be recording.  What it showed on the Xeon VM of profiles/README's
eighteenth round (W1, one thread): ``forward_layer5`` 7.7 %, ``accumulate_gradient5`` 5.5 %,
``update_rows`` 2.0 %, ``output_delta`` 0.8 %, ``NRT_incref``/``NRT_decref`` 0.3 % of all samples,
and Numba's reshape helper, since removed from the engine's views.

The map names the engine's functions as LLVM does (mangled: ``_ZN7loopnet5tiles14forward_layer5
…``); the functions LLVM inlined are part of their caller's samples.  The file stays in /tmp:
``perf report`` reads it, after the process has gone.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def compiled_functions(dispatchers):
    """[(address, name)] of every function defined in the libraries of ``dispatchers``'
    compiled overloads, sorted by address (each address once)."""
    seen, rows = set(), []
    for dispatcher in dispatchers:
        for cres in getattr(dispatcher, "overloads", {}).values():
            library = cres.library
            for fn in library._final_module.functions:     # Numba internals (0.6x)
                if fn.is_declaration:
                    continue
                try:
                    address = library.get_pointer_to_function(fn.name)
                except Exception:       # noqa: BLE001 - a name the JIT did not keep
                    continue
                if address and address not in seen:
                    seen.add(address)
                    rows.append((address, fn.name))
    return sorted(rows)


def perf_map_lines(rows, last_size=4096):
    """perf's map lines "START SIZE name" (hex) for sorted (address, name) rows."""
    lines = []
    for i, (address, name) in enumerate(rows):
        size = rows[i + 1][0] - address if i + 1 < len(rows) else last_size
        lines.append(f"{address:x} {size:x} {name}")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", nargs="?", default="w1")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--examples", "-n", type=int, default=10_000)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--sizes", help="comma list instead of the scenario's")
    p.add_argument("--map", default=None, help="write the map here instead of /tmp/perf-<pid>.map")
    args = p.parse_args(argv)

    cache = tempfile.mkdtemp(prefix="loopnet-perf-cache-")
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
    os.environ["NUMBA_CACHE_DIR"] = cache       # before Numba is imported (run as a script):
    #                                             the engine is compiled here, not loaded

    import _harness as H
    from loopnet import Net, engine

    sc = H.SCENARIOS[args.scenario]
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else sc.sizes
    X, Y, _, source = H.load_data(args.examples, sizes[0], sizes[-1], args.dtype)
    net = Net(sizes, activation=sc.activation, output=sc.output, cost=sc.cost, dtype=args.dtype,
              seed=0)
    fit = dict(batch_size=sc.m, eta=sc.eta, threads=args.threads)
    t0 = time.perf_counter()
    net.fit(X[:4 * sc.m], Y[:4 * sc.m], epochs=1, **fit)       # compiles the engine, here
    compiled = time.perf_counter() - t0
    rows = compiled_functions(vars(engine).values())
    path = args.map or f"/tmp/perf-{os.getpid()}.map"
    Path(path).write_text("\n".join(perf_map_lines(rows)) + "\n")
    print(f"compiled in {compiled:.1f} s; {len(rows)} functions named in {path}", file=sys.stderr)
    t0 = time.perf_counter()
    net.fit(X, Y, epochs=args.epochs, **fit)
    took = time.perf_counter() - t0
    print(f"{sizes}, m = {sc.m}, {args.dtype}, {source}: {args.epochs} epochs of "
          f"{len(X):,} examples in {took:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
