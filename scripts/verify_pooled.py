"""Recompute a survival cross-validation's pooled metrics with scikit-survival and lifelines
from the run's own files, and print them next to med-crossvit's (cv.json `pooled`).

    python scripts/verify_pooled.py RUN_DIR

Needs numpy, pandas, scikit-survival and lifelines (`pip install scikit-survival lifelines`).
It reads RUN_DIR/cv_predictions.csv (one row per patient: fold, risk, time, censorship,
S_1..S_B), each RUN_DIR/fold_k/config.json (the fold's time-bin edges and column names) and
RUN_DIR/cv.json. The model's survival function at time t is S_b of the bin b holding t. The
censoring distribution is estimated on all pooled patients, as med-crossvit does for pooled
predictions. Where scikit-survival refuses an input (a zero censoring survival at an event)
the line says so.
"""

import json
import os
import sys

import numpy as np
import pandas as pd
from lifelines.statistics import logrank_test, multivariate_logrank_test
from lifelines.utils import concordance_index as lifelines_cindex
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.util import Surv


def main(run):
    cv = json.load(open(os.path.join(run, "cv.json")))
    ours = cv["pooled"]
    rows = pd.read_csv(os.path.join(run, "cv_predictions.csv"))
    config = json.load(open(os.path.join(run, "fold_0", "config.json")))
    survival = config["training"]["survival"]
    time = rows[survival["time_column"]].to_numpy(float)
    event = rows[survival["censorship_column"]].to_numpy(int) == 0
    risk = rows["risk"].to_numpy(float)
    edges = {}
    for fold in sorted(rows["fold"].unique()):
        c = json.load(open(os.path.join(run, f"fold_{fold}", "config.json")))
        edges[fold] = np.array(c["survival_bins"]["edges"], float)

    q = np.percentile(time[event], [25, 50, 75])
    times = np.unique(q[(q >= time.min()) & (q < time.max())])

    def survival_at(t):
        out = []
        for _, r in rows.iterrows():
            e = edges[r["fold"]]
            b = int(np.sum(e[1:-1] <= t))
            out.append(r[f"S_{b + 1}"])
        return np.array(out, float)

    surv = np.stack([survival_at(t) for t in times], axis=1)
    y = Surv.from_arrays(event=event, time=time)
    theirs = {}
    theirs["c_index"] = concordance_index_censored(event, time, risk)[0]
    theirs["c_index (lifelines)"] = lifelines_cindex(time, -risk, event)
    try:
        theirs["c_index_ipcw"] = concordance_index_ipcw(y, y, risk)[0]
    except ValueError as err:
        theirs["c_index_ipcw"] = f"refused: {err}"
    try:
        auc, mean = cumulative_dynamic_auc(y, y, 1.0 - surv, times)
        theirs["td_auc"] = [float(a) for a in auc]
        theirs["td_auc_mean"] = float(mean)
    except ValueError as err:
        theirs["td_auc"] = theirs["td_auc_mean"] = f"refused: {err}"
    theirs["ibs"] = float(integrated_brier_score(y, y, surv, times))

    groups = config["training"].get("risk_groups", 2)
    cuts = np.percentile(risk, [100 * g / groups for g in range(1, groups)])
    group = np.array([int(np.sum(r > cuts)) for r in risk])
    if groups == 2:
        lr = logrank_test(time[group == 0], time[group == 1], event[group == 0], event[group == 1])
    else:
        lr = multivariate_logrank_test(time, group, event)
    theirs["logrank_p"] = float(lr.p_value)

    print(f"{len(rows)} patients, {int(event.sum())} events, times {[float(t) for t in times]}")
    print(f"{'metric':<20} {'med-crossvit':>24} {'reference':>24} {'|diff|':>8}  (reference by)")
    by = {
        "c_index": "sksurv concordance_index_censored",
        "c_index (lifelines)": "lifelines concordance_index of -risk",
        "c_index_ipcw": "sksurv concordance_index_ipcw",
        "td_auc": "sksurv cumulative_dynamic_auc",
        "td_auc_mean": "sksurv cumulative_dynamic_auc",
        "ibs": "sksurv integrated_brier_score",
        "logrank_p": f"lifelines {'logrank_test' if groups == 2 else 'multivariate_logrank_test'}",
    }
    for name, ref in theirs.items():
        mine = ours.get(name.split(" ")[0])
        fmt = lambda v: (
            ", ".join(f"{x:.6f}" for x in v) if isinstance(v, list) and all(isinstance(x, float) for x in v)
            else f"{v:.6g}" if isinstance(v, float) else str(v)
        )
        try:
            diff = float(np.max(np.abs(np.array(mine, float) - np.array(ref, float))))
            diff = f"{diff:.1e}"
        except (TypeError, ValueError):
            diff = "-"
        print(f"{name:<20} {fmt(mine):>24} {fmt(ref):>24} {diff:>8}  ({by[name]})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
