"""What DP-SGD's Gaussian noise costs to draw, next to the generators users know.

``python profiles/noise_generators.py [--calls 500] [--rounds 5] [--n 79510]``

DP-SGD adds N(0, σ²C²) to every parameter at every step (issue 17): 5,000 steps of W2
[784, 100, 10] at m = 10 draw 5,000 × 79,510 = 4·10^8 normals an epoch.  Timed here, one
thread, float64, ``n`` normals a call (default W2's parameter count), interleaved rounds,
best kept, nanoseconds per normal:

* loopnet's DP noise: ``loopnet.kernels.add_noise`` itself, the engine's draw (a counter
  hashed by splitmix64's ``mix``, the Ziggurat's fast path, its slow path for the rare
  rest), added into a gradient row;
* NumPy's ``Generator.standard_normal(out=)`` (PCG64 and NumPy's Ziggurat);
* PyTorch's ``Tensor.normal_`` on the CPU (when torch is installed).

From these and a plain epoch's time follows what the noise alone adds to a DP-SGD epoch:
normals per epoch × ns per normal ÷ cores.
"""

import argparse
import os
import time

import numpy as np

from loopnet.kernels import add_noise


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=79510, help="normals per call")
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    n = args.n
    g, out = np.zeros(n), np.empty(n)
    rng = np.random.default_rng(0)
    add_noise(g, 0, n, 1.0, 0, 0)                       # compile (or load) before timing
    draws = {"loopnet DP noise (kernels.add_noise)": lambda i: add_noise(g, 0, n, 1.0, 0, i),
             "NumPy Generator.standard_normal(out=)": lambda i: rng.standard_normal(out=out)}
    try:
        import torch
        t_out, t_gen = torch.empty(n, dtype=torch.float64), torch.Generator().manual_seed(0)
        draws["PyTorch Tensor.normal_ (CPU)"] = lambda i: t_out.normal_(0.0, 1.0, generator=t_gen)
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    best = {name: float("inf") for name in draws}
    try:
        for _ in range(args.rounds):
            for name, draw in draws.items():
                start = time.perf_counter()
                for i in range(args.calls):
                    draw(i)
                best[name] = min(best[name], (time.perf_counter() - start) / args.calls / n * 1e9)
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads)
    print("Gaussian draws, one thread, float64, %d per call, best of %d rounds of %d calls; "
          "load %.2f on %d CPUs" % (n, args.rounds, args.calls, os.getloadavg()[0],
                                    os.cpu_count()))
    for name, ns in best.items():
        print("%-46s %6.2f ns per normal" % (name, ns))


if __name__ == "__main__":
    main()
