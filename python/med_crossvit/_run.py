"""`Run`: a run folder (from `train`) or an evaluation folder (from `evaluate`) read into
Python: its configuration and metrics as dicts, its predictions as pandas DataFrames."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import _native

FILES: Dict[str, str] = dict(_native.FILES)


class Run:
    """A run folder written by `train` (one split, a cross-validation parent or one of its
    `fold_K` folders), or an evaluation folder written by `evaluate`.

    Files are read when asked for, each time (a run still training changes them).

    Raises `med_crossvit.RunError` when `path` is not a folder holding `config.json` or
    `metrics.json`.
    """

    def __init__(self, path: "os.PathLike[str] | str") -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise _native.RunError(f"{self.path}: no such folder")
        if not (self._file("config").exists() or self._file("metrics_json").exists()):
            raise _native.RunError(
                f"{self.path} is not a med-crossvit run or evaluation folder: it holds "
                f"neither {FILES['config']} nor {FILES['metrics_json']}"
            )
        #: The summary `train`/`resume` returned, when this `Run` came from one.
        self.summary: Optional[Dict[str, Any]] = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def _file(self, name: str) -> Path:
        return self.path / FILES[name]

    def _json(self, name: str) -> Optional[Dict[str, Any]]:
        path = self._file(name)
        if not path.exists():
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def _csv(self, name: str) -> "Optional[Any]":
        import pandas as pd

        path = self._file(name)
        return pd.read_csv(path) if path.exists() else None

    @property
    def config(self) -> Dict[str, Any]:
        """`config.json` as a dict: `model` (hyperparameters), `training` (the settings),
        `columns`, `data`, `survival_bins`, `folds`. Raises `RunError` when absent (an
        evaluation folder)."""
        config = self._json("config")
        if config is None:
            raise _native.RunError(f"{self.path} holds no {FILES['config']}")
        return config

    @property
    def is_cross_validation(self) -> bool:
        """Whether this is the parent folder of a cross-validation run (`fold_K/` inside)."""
        return bool(self._file("config").exists() and self.config.get("folds"))

    @property
    def metrics(self) -> Dict[str, Any]:
        """The validation metrics of the kept checkpoint (`metrics.json`, with intervals), or
        for a cross-validation parent `cv.json` (per-fold results, mean, std, pooled). Empty
        while a run has not finished."""
        name = "cv_json" if self.is_cross_validation else "metrics_json"
        return self._json(name) or {}

    @property
    def test_metrics(self) -> Optional[Dict[str, Any]]:
        """`test_metrics.json` (runs with a test split), else None."""
        return self._json("test_metrics_json")

    @property
    def history(self) -> "Optional[Any]":
        """`metrics.csv` as a DataFrame: one row per epoch (lr, train_loss, val_*), or None."""
        return self._csv("metrics_csv")

    @property
    def predictions(self) -> "Optional[Any]":
        """`predictions.csv` (one row per patient, from `evaluate` or `predict`) as a
        DataFrame, or None when the folder has none (a training run writes none)."""
        return self._csv("predictions_csv")

    @property
    def cv_predictions(self) -> "Optional[Any]":
        """`cv_predictions.csv` of a cross-validation parent (every fold's validation
        predictions, each patient once) as a DataFrame, or None."""
        return self._csv("cv_predictions_csv")

    @property
    def splits(self) -> "Optional[Any]":
        """`splits.csv` (the patients of each side of the split) as a DataFrame, or None."""
        return self._csv("splits_csv")

    @property
    def folds(self) -> List["Run"]:
        """The `fold_K` folders of a cross-validation run, in fold order (empty otherwise)."""
        found = []
        for child in self.path.iterdir():
            name = child.name
            if child.is_dir() and name.startswith("fold_") and name[5:].isdigit():
                found.append((int(name[5:]), child))
        return [Run(p) for _, p in sorted(found)]

    def model(self, device: str = "flex") -> "Any":
        """The trained model of this run (a single split or one fold) as a `Model`."""
        from . import Model

        return Model.load(self.path, device=device)
