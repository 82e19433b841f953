#!/usr/bin/env python3
"""Times the PyTorch twin as `med-crossvit bench` times ours; prints one JSON object.

What is timed, as src/bench.rs does it (one warm-up call, then --iters timed calls; the
median and the minimum are reported, in milliseconds):

- forward: eval mode, under torch.no_grad(), on one random batch (uniform [0, 1) tiles
  [batch, 50, 768] and expression [batch, genes]); ours: a model on a device without
  autodiff (no dropout).
- train: training mode (dropout on), forward, loss = mean cross-entropy of the logits
  against labels i % num_classes, backward, AdamW step (lr 1e-4 and Burn's AdamWConfig
  defaults: betas 0.9/0.999, eps 1e-5, weight decay 1e-4), on a freshly initialized model.
- checkpointed: the same step with torch.utils.checkpoint around each encoder layer and
  each cross-transformer (non-reentrant), the segments ours recomputes with
  `bench --train --checkpointing`. Ours also applies AdamW segment by segment; here the
  optimizer runs once after the backward pass.

With --compile the model is wrapped in torch.compile (default backend, inductor) and the
same modes are timed; the first warm-up call's time (tracing and compiling) is reported as
compile_s, and one more warm-up call is made. A mode that fails to compile is reported as
{"available": false, "error": ...} rather than failing the run.

    .venv-torch/bin/python benches/torch/bench.py --preset seed --batch 16 --iters 5 \
        --threads "$(nproc)" [--modes forward,train,checkpointed] [--compile] [--matmul]

With --autocast bf16 the modes run under torch.autocast("cpu", dtype=torch.bfloat16), as a
PyTorch user gets bf16 on a CPU (`make bench-compare` times the forward pass so, beside ours
at `--precision bf16`).

peak_rss_mb is the process's peak resident memory (VmHWM) at the end of the run: with
several modes in one process it is the largest of them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from twin import MedCrossViTTwin, TwinConfig, count_params, forward_flops  # noqa: E402

TILES, WSI_DIM = 50, 768  # what `med-crossvit bench` uses
MODES = ("forward", "train", "checkpointed")


def peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed(fn, iters: int, warmups: int = 1):
    """Calls fn warmups + iters times; returns (median ms, min ms, first call's s)."""
    first = None
    for i in range(warmups):
        t0 = time.perf_counter()
        fn()
        if i == 0:
            first = time.perf_counter() - t0
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    # The median as src/bench.rs takes it: the upper middle element.
    return times[len(times) // 2], times[0], first


def batch_inputs(c: TwinConfig, batch: int):
    tiles = torch.rand(batch, TILES, c.wsi_dim)
    expression = torch.rand(batch, c.rna_num_genes)
    labels = torch.arange(batch) % c.num_classes
    return tiles, expression, labels


def make_optimizer(model, kind: str):
    extra = {}
    if kind == "foreach":
        extra["foreach"] = True
    elif kind == "fused":
        extra["fused"] = True
    return torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-5,
                             weight_decay=1e-4, **extra)


def run_mode(mode: str, c: TwinConfig, a) -> dict:
    torch.manual_seed(a.seed)
    model = MedCrossViTTwin(c, sdpa=a.attention == "sdpa")
    tiles, expression, labels = batch_inputs(c, a.batch)
    warmups = 2 if a.compile else 1
    if mode == "forward":
        model.eval()
        fn_model = torch.compile(model) if a.compile else model

        def step():
            with torch.no_grad():
                fn_model(tiles, expression)
    else:
        model.train()
        model.set_checkpointing(mode == "checkpointed")
        optimizer = make_optimizer(model, a.adamw)
        fn_model = torch.compile(model) if a.compile else model

        phases = ([], [], [])  # forward, backward, update: ms per call, as ours reports them

        def step():
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(fn_model(tiles, expression), labels)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            optimizer.step()
            t3 = time.perf_counter()
            for part, (u, v) in zip(phases, ((t0, t1), (t1, t2), (t2, t3))):
                part.append((v - u) * 1e3)

    median, fastest, first = timed(step, a.iters, warmups)
    out = {"ms": median, "min_ms": fastest}
    if mode == "train" and not a.compile:
        # Medians of the timed calls (the warm-up calls come first and are dropped).
        out["phases"] = {name: sorted(p[warmups:])[len(p[warmups:]) // 2]
                         for name, p in zip(("forward_ms", "backward_ms", "update_ms"), phases)}
    if a.compile:
        out["compile_s"] = first
    return out


def matmul_gflops(n: int, iters: int) -> float:
    x, y = torch.rand(n, n), torch.rand(n, n)
    median, _, _ = timed(lambda: torch.matmul(x, y), max(iters, 1))
    return 2.0 * n**3 / (median / 1e3) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description="Time the PyTorch twin (prints JSON).")
    ap.add_argument("--preset", default="seed", choices=("seed", "small"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--genes", type=int, default=100)
    ap.add_argument("--iters", type=int, default=5, help="timed iterations after the warm-up")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated: " + ", ".join(MODES))
    ap.add_argument("--compile", action="store_true", help="time the model under torch.compile")
    ap.add_argument("--attention", default="explicit", choices=("explicit", "sdpa"),
                    help="explicit matmul + softmax (as ours and the original) or "
                         "F.scaled_dot_product_attention")
    ap.add_argument("--adamw", default="default", choices=("default", "foreach", "fused"),
                    help="torch.optim.AdamW implementation (default: PyTorch's choice)")
    ap.add_argument("--matmul", action="store_true", help="also time a 2048² matmul")
    ap.add_argument("--autocast", default="off", choices=("off", "bf16"),
                    help="run the modes under torch.autocast('cpu', dtype=torch.bfloat16)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    modes = [m for m in a.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        ap.error(f"unknown mode {bad[0]!r} ({', '.join(MODES)})")
    torch.set_num_threads(a.threads)
    c = TwinConfig.preset(a.preset, a.genes)
    flops = forward_flops(c, a.batch, TILES)
    report = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "preset": a.preset,
        "batch": a.batch,
        "tiles": TILES,
        "genes": c.rna_num_genes,
        "iters": a.iters,
        "attention": a.attention,
        "adamw": a.adamw,
        "compiled": a.compile,
        "autocast": a.autocast,
        "params": count_params(MedCrossViTTwin(c)),
        "flops": flops,
    }
    keys = {"forward": "forward", "train": "train_step", "checkpointed": "checkpointed_step"}
    for mode in modes:
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast == "bf16"):
                r = run_mode(mode, c, a)
        except Exception as e:  # noqa: BLE001 - a compile failure is a result, not a crash
            if not a.compile:
                raise
            msg = f"{type(e).__name__}: {e}".strip().splitlines()
            report[keys[mode] + "_unavailable"] = msg[0][:500] if msg else type(e).__name__
            if os.environ.get("TWIN_TRACEBACK"):
                traceback.print_exc()
            continue
        k = keys[mode]
        report[k + "_ms"] = r["ms"]
        report[k + "_min_ms"] = r["min_ms"]
        if "phases" in r:
            report["train_phases"] = r["phases"]
        if "compile_s" in r:
            report[k + "_compile_s"] = r["compile_s"]
        if mode == "forward":
            report["gflops"] = flops / r["ms"] / 1e6
    if a.matmul:
        report["matmul_2048_gflops"] = matmul_gflops(2048, a.iters)
    report["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
