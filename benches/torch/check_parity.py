#!/usr/bin/env python3
"""Checks that the PyTorch twin computes what the Python original computes.

Loads the original's checkpoint (tests/fixtures/parity/reference.pt, built with
reference_args.json) into the twin, runs it in eval mode on the parity cohort (cohort.csv:
expression from the rna_* columns as given, the original's identity normalization; tiles
from features/<project>/<slide>.h5, dataset `uni_features`, all 8 tiles in file order, one
bag per slide, as tests/it/interop.rs feeds them to ours) and compares the logits with
expected_logits.csv, which the original computed. Exits 1 when any logit differs by 1e-4
or more.

    .venv-torch/bin/python benches/torch/check_parity.py [--fixtures DIR] [--tolerance 1e-4]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from twin import load_original  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "tests/fixtures/parity"))
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--attention", default="explicit", choices=("explicit", "sdpa"),
                    help="the twin's attention (as bench.py --attention)")
    a = ap.parse_args()
    fx = a.fixtures

    model = load_original(os.path.join(fx, "reference.pt"), os.path.join(fx, "reference_args.json"),
                          sdpa=a.attention == "sdpa")
    model.eval()
    c = model.config

    with open(os.path.join(fx, "expected_logits.csv"), newline="") as f:
        expected = {r["wsi_file_name"]: [float(r[f"logit_{k}"]) for k in range(c.num_classes)]
                    for r in csv.DictReader(f)}
    with open(os.path.join(fx, "cohort.csv"), newline="") as f:
        rows = list(csv.DictReader(f))

    worst, failed = 0.0, False
    for row in rows:
        slide = row["wsi_file_name"]
        genes = [float(row[f"rna_{g}"]) for g in range(c.rna_num_genes)]
        path = os.path.join(fx, "features", row["project"], slide + ".h5")
        with h5py.File(path, "r") as h5:
            tiles = np.asarray(h5["uni_features"], dtype=np.float32)  # [n, wsi_dim]
        with torch.no_grad():
            logits = model(torch.from_numpy(tiles)[None], torch.tensor([genes], dtype=torch.float32))[0]
        want = expected[slide]
        diff = max(abs(float(g) - w) for g, w in zip(logits, want))
        worst = max(worst, diff)
        ok = diff < a.tolerance
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {slide}: twin {[round(float(x), 8) for x in logits]} "
              f"original {want} (max |diff| {diff:.2e})")
    if len(rows) != len(expected):
        print(f"FAIL: {len(rows)} slides in cohort.csv, {len(expected)} in expected_logits.csv")
        failed = True
    print(f"max |twin - original| = {worst:.3e} over {len(rows)} slides "
          f"(cross-attention heads {c.cross_attn_heads}, {a.attention} attention; "
          f"tolerance {a.tolerance:g})")
    if failed:
        print("parity FAILED", file=sys.stderr)
        return 1
    print("parity ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
