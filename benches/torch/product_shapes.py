"""PyTorch's matrix-product rate on the shapes of examples/product_shapes.rs (GFLOP/s).

Usage: PYTHON benches/torch/product_shapes.py [THREADS]  (default 2 threads, two rounds).
"""
import sys
import time

import torch

SHAPES = [
    (2048, 2048, 2048),
    (816, 768, 512), (816, 768, 1024), (816, 512, 768), (816, 768, 2048), (816, 2048, 768),
    (1616, 768, 512), (1616, 768, 1024), (1616, 512, 768), (1616, 768, 2048), (1616, 2048, 768),
    (768, 816, 2048), (2048, 816, 768),
]


def rate(m, k, n, iters=8):
    a, b = torch.rand(m, k), torch.rand(k, n)
    times = []
    for i in range(iters + 1):
        start = time.perf_counter()
        a @ b
        if i:
            times.append(time.perf_counter() - start)
    times.sort()
    return 2 * m * k * n / times[len(times) // 2] / 1e9


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    for rnd in (1, 2):
        for m, k, n in SHAPES:
            print(f"round {rnd}  {m:>4} × {k:>4} · {k:>4} × {n:>4}  {rate(m, k, n):6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
