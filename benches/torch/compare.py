#!/usr/bin/env python3
"""Ours against the PyTorch twin, alternating in one run: `make bench-compare`.

Each round runs, one process after the other (the order of ours and the twin flips every
round):

1. `med-crossvit bench --preset P --batch B --train --iters N --json --matmul`
   (forward pass, training step, the backend's 2048² matmul) and the twin's
   `bench.py --modes forward,train --matmul`;
2. `med-crossvit bench … --train --checkpointing --iters N --json` (its training step is
   the checkpointed one; its forward pass is not used) and `bench.py --modes checkpointed`;
3. `bench.py --compile` (all three modes under torch.compile; skipped with --no-compile;
   reported unavailable if it takes longer than --compile-timeout, default 30 min).

Both sides get the same thread count (RAYON_NUM_THREADS for ours, torch.set_num_threads
and OMP_NUM_THREADS for the twin; default: every CPU, as ours uses by default). Prints a
table per round (median ms of N iterations after one warm-up; ratio = ours / PyTorch, below
1 is faster than PyTorch) and a summary of all rounds. Only ratios from one run mean
anything: absolute times differ between machines and between runs on shared ones.

Normally started by benches/torch/compare.sh, which checks the interpreter and builds the
binary first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

ROWS = (("forward", "forward"), ("training step", "train_step"),
        ("checkpointed step", "checkpointed_step"))
# bf16 rows (our --precision bf16 beside our f32; PyTorch's bf16 autocast beside its f32): the
# table prints a row for each key that the two sides' results carry (`<key>_ms`, set from the
# bf16 runs), and nothing where the bf16 runs were skipped.
BF16_ROWS = (("forward, bf16", "forward_bf16"),)
# The CPU flags that decide our kernels and PyTorch's (printed when present).
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
              "amx_tile", "amx_bf16", "amx_int8")


def cpu_description() -> str:
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                k, _, v = line.partition(":")
                info[k.strip()] = v.strip()
    except OSError:
        return "unknown CPU"
    flags = set(info.get("flags", "").split())
    simd = [f for f in SIMD_FLAGS if f in flags]
    return (f"{info.get('model name', 'unknown')} (vendor {info.get('vendor_id', '?')}, "
            f"family {info.get('cpu family', '?')}, model {info.get('model', '?')}; "
            f"{os.cpu_count()} CPUs; {' '.join(simd) or 'no AVX2'})")


def product_path(binary: str, features: str) -> str:
    """Which matrix product our binary runs: the `gemm` crate, or OpenBLAS (feature
    `openblas`) with the kernel family it picks here, asked of the library the binary links."""
    if "openblas" not in features.split(","):
        return "gemm crate (its AVX-512 kernels where avx512f is listed, else AVX2)"
    lib = None
    try:
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        lib = next((line.split("=>")[1].split()[0] for line in ldd.splitlines()
                    if "libopenblas" in line and "=>" in line), None)
    except (OSError, IndexError):
        pass
    if lib is None:
        return "OpenBLAS (library not found by ldd)"
    try:
        import ctypes
        blas = ctypes.CDLL(lib)
        blas.openblas_get_corename.restype = ctypes.c_char_p
        core = blas.openblas_get_corename().decode()
    except (OSError, AttributeError) as e:
        core = f"core unknown: {e}"
    forced = os.environ.get("OPENBLAS_CORETYPE")
    return (f"OpenBLAS {lib}, {core} core" + (f" (OPENBLAS_CORETYPE={forced})" if forced else "")
            + "; one OpenBLAS thread per block, the blocks on our rayon pool")


def run_json(cmd: list[str], env: dict, label: str, log: list, timeout: float | None = None) -> dict:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        # Only the compiled runs have a limit: compiling is not what is compared.
        msg = f"did not finish in {timeout:.0f} s (COMPILE_TIMEOUT)"
        log.append({"label": label, "cmd": cmd, "wall_s": timeout, "error": msg})
        print(f"  {label}: {msg}", file=sys.stderr, flush=True)
        return {k + "_unavailable": msg for _, k in ROWS}
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"bench-compare: {label} failed (exit {p.returncode}): {' '.join(cmd)}")
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"bench-compare: {label} printed no JSON: {p.stdout!r}")
    result = json.loads(lines[-1])
    log.append({"label": label, "cmd": cmd, "wall_s": wall, "result": result})
    print(f"  {label}: {wall:.0f} s", file=sys.stderr, flush=True)
    return result


def fmt_s(ms):
    return "—" if ms is None else f"{ms / 1e3:.2f} s"


def fmt_ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.2f}"


def table(rnd: int, rounds: int, r: dict, a) -> str:
    ours, ours_ck, eager, eager_ck, comp = r["ours"], r["ours_ckpt"], r["twin"], r["twin_ckpt"], r["compiled"]
    o = {"forward": ours.get("forward_ms"), "train_step": ours.get("train_step_ms"),
         "checkpointed_step": ours_ck.get("train_step_ms")}
    e = {"forward": eager.get("forward_ms"), "train_step": eager.get("train_step_ms"),
         "checkpointed_step": eager_ck.get("checkpointed_step_ms")}
    c = {k: (comp or {}).get(k + "_ms") for _, k in ROWS}
    head = ("", "med-crossvit", "PyTorch eager", "ratio", "PyTorch compiled", "ratio")
    rows = [head]
    for name, k in ROWS:
        cc = c[k]
        if comp is None:
            cc_s = "not run"
        elif cc is None:
            cc_s = "unavailable"
        else:
            cc_s = fmt_s(cc)
        rows.append((name, fmt_s(o[k]), fmt_s(e[k]), fmt_ratio(o[k], e[k]), cc_s, fmt_ratio(o[k], cc)))
    for name, k in BF16_ROWS:
        ob, eb = ours.get(k + "_ms"), eager.get(k + "_ms")
        if ob is not None or eb is not None:
            rows.append((name, fmt_s(ob), fmt_s(eb), fmt_ratio(ob, eb), "", ""))
    rows.append(("peak RSS, training", f"{ours['peak_rss_mb'] / 1024:.2f} GB",
                 f"{eager['peak_rss_mb'] / 1024:.2f} GB", "", "", ""))
    rows.append(("peak RSS, checkpointed", f"{ours_ck['peak_rss_mb'] / 1024:.2f} GB",
                 f"{eager_ck['peak_rss_mb'] / 1024:.2f} GB", "", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [f"Round {rnd} of {rounds}"]
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [row[j].rjust(widths[j]) for j in range(1, len(row))]
        lines.append("  " + "  ".join(cells))
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    mm_ours, mm_torch = ours.get("matmul_2048_gflops"), eager.get("matmul_2048_gflops")
    flops = ours["flops"]
    fwd = [f"forward pass {flops / 1e9:.3g} GFLOP"]
    if o["forward"]:
        rate = flops / o["forward"] / 1e6
        fwd.append(f"ours {rate:.0f} GFLOP/s" + (f" ({100 * rate / mm_ours:.0f} % of our matmul)" if mm_ours else ""))
    if e["forward"]:
        rate = flops / e["forward"] / 1e6
        fwd.append(f"PyTorch {rate:.0f} GFLOP/s" + (f" ({100 * rate / mm_ours:.0f} % of our matmul)" if mm_ours else ""))
    lines.append(f"  2048² matmul: ours (flex) {mm_ours:.0f} GFLOP/s, PyTorch {mm_torch:.0f} GFLOP/s; "
                 + ", ".join(fwd))
    ob, eb = ours.get("forward_bf16_ms"), eager.get("forward_bf16_ms")
    if ob and eb and o["forward"] and e["forward"]:
        lines.append(f"  bf16 forward against f32: ours {o['forward'] / ob:.2f}× faster, PyTorch's "
                     f"autocast {e['forward'] / eb:.2f}×; ours in bf16 / PyTorch in f32: "
                     f"{ob / e['forward']:.2f}")
    po, pe = ours.get("train_phases"), eager.get("train_phases")
    if po and pe:
        parts = [f"{name} {fmt_s(po[k])} / {fmt_s(pe[k])}" for name, k in
                 (("forward", "forward_ms"), ("backward", "backward_ms"), ("AdamW update", "update_ms"))]
        lines.append("  training step, ours / PyTorch eager: " + ", ".join(parts))
    if comp is not None:
        took = [f"{name} {comp[k + '_compile_s']:.0f} s" for name, k in ROWS
                if comp.get(k + "_compile_s") is not None]
        if took:
            lines.append("  torch.compile, first call (tracing + compiling, not timed): " + "; ".join(took))
        failed = {}
        for name, k in ROWS:
            if comp.get(k + "_unavailable"):
                failed.setdefault(comp[k + "_unavailable"], []).append(name)
        for why, names in failed.items():
            lines.append(f"  torch.compile unavailable for {', '.join(names)}: {why}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description="Ours against the PyTorch twin, alternating.")
    ap.add_argument("--bin", required=True, help="the release med-crossvit binary")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 2)))
    ap.add_argument("--iters", type=int, default=int(os.environ.get("ITERS", 5)))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("THREADS") or os.cpu_count()))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--preset", default="seed", choices=("seed", "small"))
    ap.add_argument("--no-compile", action="store_true",
                    default=os.environ.get("TORCH_COMPILE", "1") == "0",
                    help="skip the torch.compile runs (TORCH_COMPILE=0)")
    ap.add_argument("--compile-timeout", type=float,
                    default=float(os.environ.get("COMPILE_TIMEOUT", 1800)),
                    help="seconds the torch.compile process may take (COMPILE_TIMEOUT)")
    ap.add_argument("--features", default="cli", help="the cargo features the binary was built with")
    ap.add_argument("--no-parity", action="store_true", help="skip check_parity.py")
    ap.add_argument("--no-bf16", action="store_true", default=os.environ.get("BF16", "1") == "0",
                    help="skip the bf16 forward runs (BF16=0; they run only where the CPU has "
                         "avx512_bf16)")
    ap.add_argument("--json-out", default=os.environ.get("BENCH_JSON"),
                    help="also write every raw result here (BENCH_JSON)")
    a = ap.parse_args()

    import torch  # checked by compare.sh; imported here only for its version

    py = sys.executable
    env = dict(os.environ)
    t = str(a.threads)
    env.update(RAYON_NUM_THREADS=t, OMP_NUM_THREADS=t, MKL_NUM_THREADS=t)

    cpu = cpu_description()
    print(f"CPU: {cpu}")
    print(f"Our matrix product: {product_path(a.bin, a.features)}")
    print(f"PyTorch {torch.__version__} ({py}); {a.threads} threads on both sides; "
          f"preset {a.preset}, batch {a.batch} × 50 tiles × 768, 100 genes; "
          f"{a.iters} timed iterations after one warm-up (median); {a.rounds} round(s)")
    print("ratio = med-crossvit / PyTorch (below 1: faster than PyTorch). Only same-run ratios "
          "mean anything.\n", flush=True)

    if not a.no_parity:
        try:
            import h5py  # noqa: F401
        except ImportError:
            print("(parity of the twin not checked: h5py is not installed)\n")
        else:
            p = subprocess.run([py, os.path.join(HERE, "check_parity.py")], cwd=ROOT,
                               capture_output=True, text=True, env=env)
            last = (p.stdout.strip().splitlines() or ["?"])[-2:]
            if p.returncode != 0:
                sys.stdout.write(p.stdout + p.stderr)
                raise SystemExit("bench-compare: the twin does not reproduce the original's logits")
            print(f"Twin parity with the original: {' — '.join(last)}\n", flush=True)

    common = ["bench", "--preset", a.preset, "--batch", str(a.batch), "--iters", str(a.iters), "--json"]
    twin = [py, os.path.join(HERE, "bench.py"), "--preset", a.preset, "--batch", str(a.batch),
            "--iters", str(a.iters), "--threads", t]
    jobs = {
        "ours": ("med-crossvit (forward, training step, matmul)", [a.bin, *common, "--train", "--matmul"]),
        "twin": ("PyTorch eager (forward, training step)", [*twin, "--modes", "forward,train", "--matmul"]),
        "ours_ckpt": ("med-crossvit --checkpointing", [a.bin, *common, "--train", "--checkpointing"]),
        "twin_ckpt": ("PyTorch eager, checkpointed", [*twin, "--modes", "checkpointed"]),
        "compiled": ("PyTorch compiled (all three)", [*twin, "--compile"]),
        "ours_bf16": ("med-crossvit --precision bf16 (forward)", [a.bin, *common, "--precision", "bf16"]),
        "twin_bf16": ("PyTorch eager, bf16 autocast (forward)",
                      [*twin, "--modes", "forward", "--autocast", "bf16"]),
    }
    # Our bf16 runs where the CPU has AVX512_BF16 (elsewhere `--precision bf16` is refused);
    # PyTorch's autocast runs on any CPU, but is only compared beside ours.
    bf16 = not a.no_bf16 and "avx512_bf16" in cpu
    log, summary = [], []
    for rnd in range(1, a.rounds + 1):
        order = ["ours", "twin", "ours_ckpt", "twin_ckpt"]
        if rnd % 2 == 0:
            order = ["twin", "ours", "twin_ckpt", "ours_ckpt"]
        if bf16:
            order += ["ours_bf16", "twin_bf16"] if rnd % 2 else ["twin_bf16", "ours_bf16"]
        if not a.no_compile:
            order.append("compiled")
        print(f"round {rnd}: running", file=sys.stderr, flush=True)
        r = {"compiled": None}
        for key in order:
            label, cmd = jobs[key]
            limit = a.compile_timeout if key == "compiled" else None
            r[key] = run_json(cmd, env, f"round {rnd}, {label}", log, limit)
        if bf16:
            r["ours"]["forward_bf16_ms"] = r["ours_bf16"]["forward_ms"]
            r["twin"]["forward_bf16_ms"] = r["twin_bf16"]["forward_ms"]
        if r["ours"]["params"] != r["twin"]["params"] or abs(r["ours"]["flops"] - r["twin"]["flops"]) > 1:
            print(f"WARNING: the models differ: params {r['ours']['params']} vs {r['twin']['params']}, "
                  f"FLOPs {r['ours']['flops']:.4g} vs {r['twin']['flops']:.4g}")
        print(table(rnd, a.rounds, r, a) + "\n", flush=True)
        summary.append(r)

    if a.rounds > 1:
        print("All rounds (ratio = ours / PyTorch eager; ours / compiled in brackets):")
        for name, k in ROWS:
            cells = []
            for r in summary:
                ours = (r["ours_ckpt"] if k == "checkpointed_step" else r["ours"]).get(
                    "train_step_ms" if k != "forward" else "forward_ms")
                eager_src = r["twin_ckpt"] if k == "checkpointed_step" else r["twin"]
                e = eager_src.get(k + "_ms")
                c = (r["compiled"] or {}).get(k + "_ms")
                cells.append(fmt_ratio(ours, e) + (f" [{fmt_ratio(ours, c)}]" if c else ""))
            print(f"  {name:<18} " + " / ".join(cells))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"cpu": cpu, "threads": a.threads, "runs": log}, f, indent=1)
        print(f"\nraw results: {a.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
