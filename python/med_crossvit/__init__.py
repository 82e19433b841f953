"""Med-CrossViT from Python: train, evaluate and apply models that fuse whole-slide-image
tile features with RNA-Seq expression.

The functions run the same library code as the `med-crossvit` command-line tool (a Rust
extension, `med_crossvit._native`), with the GIL released while they compute. Training
prints one line per epoch to `sys.stdout` (what a notebook shows), and Ctrl-C (or a
notebook's interrupt) stops it at the next batch, leaving the run resumable with `resume`.

- `train`, `resume`, `evaluate`, `predict`, `check`: the commands of the same names.
- `Model`: a trained model applied to NumPy arrays.
- `Run`: a run folder read into dicts and pandas DataFrames.
- `Error` and its subclasses: the library's errors, with its messages.

`med_crossvit.torch` (import it explicitly; it needs PyTorch) holds the model as a PyTorch
module.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np

from . import _native
from ._native import (
    ConfigError,
    DataError,
    Error,
    FileError,
    InputError,
    LoadError,
    RunError,
    SlideError,
)
from ._run import FILES, Run

__version__: str = _native.__version__

__all__ = [
    "train",
    "resume",
    "evaluate",
    "predict",
    "check",
    "read_tiles",
    "synth",
    "Model",
    "Run",
    "Error",
    "DataError",
    "ConfigError",
    "InputError",
    "LoadError",
    "RunError",
    "FileError",
    "SlideError",
    "SETTINGS",
    "FILES",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The training settings `train` takes as keywords, with their defaults (the `training`
#: object of a run's `config.json`).
SETTINGS: Dict[str, Any] = json.loads(_native.settings_defaults())

# Keywords that set `survival.*` and the CSV's column names (the command line's flags).
_SURVIVAL = ("time_column", "censorship_column", "bins", "alpha")
_COLUMNS = {
    "slide_column": "slide",
    "label_column": "label",
    "patient_column": "patient",
    "project_column": "project",
    "gene_prefix": "gene_prefix",
    "gene_suffix": "gene_suffix",
    "gene_regex": "gene_regex",
}


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def _split(function: str, keywords: Mapping[str, Any], allowed) -> tuple:
    """Splits `keywords` into settings and column names; an unknown one is a TypeError
    naming it and listing the valid ones."""
    settings: Dict[str, Any] = {}
    survival: Dict[str, Any] = {}
    columns: Dict[str, Any] = {}
    for key, value in keywords.items():
        if key in _COLUMNS:
            columns[_COLUMNS[key]] = value
        elif key in _SURVIVAL:
            survival[key] = value
        elif key in allowed:
            settings[key] = _path(value) if isinstance(value, os.PathLike) else value
        else:
            valid = sorted(set(allowed) | set(_SURVIVAL) | set(_COLUMNS))
            raise TypeError(
                f"{function}() got an unexpected keyword argument {key!r}; "
                f"valid settings: {', '.join(valid)}"
            )
    if survival:
        settings["survival"] = {**settings.get("survival", {}), **survival}
    if "normalize" in settings and "log2_expression" not in settings:
        settings["log2_expression"] = settings["normalize"] == "log2-zscore"
    return settings, columns


def train(
    csv: PathLike,
    features: Optional[PathLike],
    out: PathLike,
    task: str = "classification",
    *,
    preset: str = "small",
    config: Optional[PathLike] = None,
    tokenizer: Optional[str] = None,
    signatures: Optional[PathLike] = None,
    folds: Optional[int] = None,
    features_key: Optional[str] = None,
    skip_missing: bool = False,
    force: bool = False,
    device: str = "flex",
    stop_after_epoch: Optional[int] = None,
    verbose: bool = True,
    **settings: Any,
) -> Run:
    """Trains a model, as `med-crossvit train` does, into the run folder `out`.

    Args:
        csv: the cohort CSV (one row per slide).
        features: the tile-feature folder (`{dir}/{project}/{slide}.h5` or `.pt`); None
            with `modalities="rna"`.
        out: the run folder to create (absent or empty).
        task: "classification" or "survival".
        preset: model hyperparameters by name ("small", "seed"), unless `config`.
        config: a model configuration JSON file.
        tokenizer: "dense", "per_gene" or "pathways" (with `signatures`).
        folds: cross-validation folds (into `out/fold_K`).
        stop_after_epoch: stop after this many epochs as if interrupted (resume later).
        verbose: print a line per epoch to `sys.stdout`.
        **settings: the training settings by their `config.json` names (see `SETTINGS`:
            epochs, batch_size, bag_size, lr, patience, seed, normalize, ...), the survival
            columns and loss (time_column, censorship_column, bins, alpha) and the CSV
            columns (slide_column, label_column, patient_column, project_column,
            gene_prefix, gene_suffix, gene_regex).

    Returns:
        the `Run`, with the training summary (per-fold results, mean and std) in
        `run.summary`.

    Raises:
        TypeError: a keyword that names no setting.
        KeyboardInterrupt: Ctrl-C; the epoch in progress is dropped and the run folder
            keeps its last complete epoch: continue it with `resume(out)`.
        Error: a subclass naming what is wrong (`DataError`, `RunError`, ...).
    """
    settings, columns = _split("train", settings, SETTINGS)
    settings["task"] = task
    summary = _native.train(
        _path(csv),
        _path(out),
        features=_path(features),
        settings=json.dumps(settings),
        preset=preset,
        config=_path(config),
        tokenizer=tokenizer,
        signatures=_path(signatures),
        folds=folds,
        columns=json.dumps(columns),
        features_key=features_key,
        skip_missing=skip_missing,
        force=force,
        device=device,
        stop_after_epoch=stop_after_epoch,
        verbose=verbose,
    )
    run = Run(out)
    run.summary = json.loads(summary)
    return run


def resume(
    run: PathLike,
    *,
    csv: Optional[PathLike] = None,
    features: Optional[PathLike] = None,
    device: str = "flex",
    stop_after_epoch: Optional[int] = None,
    verbose: bool = True,
) -> Run:
    """Continues the run in `run` from its last complete epoch, with the settings it was
    started with (as `med-crossvit train --resume`); it ends where the uninterrupted run
    would have. `csv`/`features`: the cohort's new place, when it moved.

    Returns the `Run` with its summary; raises as `train`.
    """
    summary = _native.resume(
        _path(run),
        csv=_path(csv),
        features=_path(features),
        device=device,
        stop_after_epoch=stop_after_epoch,
        verbose=verbose,
    )
    result = Run(run)
    result.summary = json.loads(summary)
    return result


def _model_path(model: "Union[PathLike, Model]") -> str:
    return os.fspath(model.path) if isinstance(model, Model) else os.fspath(model)


def evaluate(
    model: "Union[PathLike, Model]",
    csv: PathLike,
    out: PathLike,
    features: Optional[PathLike] = None,
    *,
    features_key: Optional[str] = None,
    skip_missing: bool = False,
    per_slide: bool = False,
    force: bool = False,
    device: str = "flex",
) -> Run:
    """Applies a trained model (a run or model folder) to a labelled cohort, as
    `med-crossvit evaluate`: writes `metrics.json` and `predictions.csv` into `out` and
    returns that folder as a `Run` (`.metrics`, `.predictions`)."""
    _native.evaluate(
        _model_path(model),
        _path(csv),
        _path(out),
        features=_path(features),
        features_key=features_key,
        skip_missing=skip_missing,
        per_slide=per_slide,
        force=force,
        device=device,
    )
    return Run(out)


def predict(
    model: "Union[PathLike, Model]",
    csv: PathLike,
    out: PathLike,
    features: Optional[PathLike] = None,
    *,
    features_key: Optional[str] = None,
    skip_missing: bool = False,
    per_slide: bool = False,
    attention: Optional[PathLike] = None,
    force: bool = False,
    device: str = "flex",
) -> Any:
    """Predicts a cohort (labels optional), as `med-crossvit predict`: writes the CSV `out`
    (one row per patient; with `per_slide` also `{stem}_slides.csv`; with `attention`, each
    slide's attention files into that folder) and returns it as a pandas DataFrame."""
    import pandas as pd

    _native.predict(
        _model_path(model),
        _path(csv),
        _path(out),
        features=_path(features),
        features_key=features_key,
        skip_missing=skip_missing,
        per_slide=per_slide,
        attention=_path(attention),
        force=force,
        device=device,
    )
    return pd.read_csv(out)


def check(
    csv: PathLike,
    features: Optional[PathLike] = None,
    task: Optional[str] = None,
    *,
    features_key: Optional[str] = None,
    skip_missing: bool = False,
    **settings: Any,
) -> Dict[str, Any]:
    """Validates a cohort with the checks `train` runs (as `med-crossvit check --json`).

    `task`: "classification" or "survival"; None detects it from the columns. Keywords:
    unit, modalities, missing_modality and the survival and column names, as `train`.

    Returns a dict: `task`, the cohort summary (slides, patients, genes, classes, ...) and
    `problems` (a list; empty when the cohort is usable). Never raises for a bad cohort:
    every problem is in the list.
    """
    settings, columns = _split("check", settings, SETTINGS)
    if task is not None:
        settings["task"] = task
    text = _native.check(
        _path(csv),
        features=_path(features),
        features_key=features_key,
        settings=json.dumps(settings),
        detect_task=task is None,
        columns=json.dumps(columns),
        skip_missing=skip_missing,
    )
    return json.loads(text)


def synth(
    out: PathLike,
    *,
    slides: int = 60,
    tiles: int = 120,
    dim: int = 64,
    genes: int = 32,
    classes: int = 2,
    seed: int = 0,
    survival: bool = False,
    missing: float = 0.0,
) -> tuple:
    """Writes a synthetic cohort into `out`, as `med-crossvit synth` (class or survival
    signal in the tiles and in a quarter of the genes; `missing`: the fraction of rows
    without one modality). Returns `(csv, features)`: the cohort CSV and the features folder,
    ready for `train`."""
    return _native.synth(
        _path(out),
        slides=slides,
        tiles=tiles,
        dim=dim,
        genes=genes,
        classes=classes,
        seed=seed,
        survival=survival,
        missing=missing,
    )


def read_tiles(path: PathLike, key: Optional[str] = None) -> np.ndarray:
    """The tile features of one tile file (HDF5 or `.pt`) as a `[tiles, features]` float32
    array, read as training reads it (`key`: the HDF5 dataset; found when None)."""
    return _native.read_tiles(_path(path), key)


def _float32(name: str, value: Any, dims: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected numbers {dims}, got dtype {array.dtype}")
    if array.ndim != len(dims.split(",")):
        raise ValueError(
            f"{name}: expected a {len(dims.split(','))}-D array {dims}, "
            f"got shape {list(array.shape)}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


class Model:
    """A trained model: a run folder or a model folder, as `--model` takes.

    Load with `Model.load(path)`; apply with `predict`.
    """

    def __init__(self, native: Any) -> None:
        self._native = native

    @staticmethod
    def load(path: PathLike, device: str = "flex") -> "Model":
        """Loads the run or model folder `path` (for cross-validation, one `fold_K`)."""
        return Model(_native.Model.load(_path(path), device))

    def __repr__(self) -> str:
        return (
            f"Model({str(self.path)!r}, task={self.task!r}, genes={self.n_genes}, "
            f"features={self.n_features}, classes={self.classes!r})"
        )

    @property
    def path(self) -> str:
        """The folder it was loaded from."""
        return os.fspath(self._native.path)

    @property
    def genes(self) -> list:
        """Gene names in the order `predict` takes `expression`'s columns (empty for an
        imported model whose names are unknown)."""
        return self._native.genes

    @property
    def n_genes(self) -> int:
        """The number of genes (`expression`'s second axis)."""
        return self._native.n_genes

    @property
    def n_features(self) -> int:
        """The width of a tile feature vector (`tiles`' last axis)."""
        return self._native.n_features

    @property
    def task(self) -> str:
        """"classification" or "survival"."""
        return self._native.task

    @property
    def classes(self) -> list:
        """Class names in output order (survival: one per time bin)."""
        return self._native.classes

    @property
    def config(self) -> Dict[str, Any]:
        """The folder's `config.json` as a dict."""
        return json.loads(self._native.config_json)

    def predict(
        self,
        tiles: Any,
        expression: Any,
        mask: Any = None,
        *,
        normalized: bool = False,
    ) -> Dict[str, np.ndarray]:
        """Applies the model to one batch of bags.

        Args:
            tiles: `[batch, tiles, features]` tile features (float32; other number types are
                converted). A C-contiguous float32 array is read in place.
            expression: `[batch, genes]` raw expression in `genes` order (as in the cohort
                CSV); the model's saved normalization is applied, unless `normalized`.
            mask: `[batch, tiles]` bool, True where a bag is padded (shorter bags).
            normalized: `expression` is already normalized.

        Returns:
            a dict of NumPy arrays: `logits` `[batch, classes]`; for classification
            `probabilities` `[batch, classes]`; for survival `hazards` and `survival`
            `[batch, bins]` and `risk` `[batch]`; `tile_attention` `[batch, tiles]` and
            `gene_attention` `[batch, gene tokens]` (each row sums to 1).

        Raises:
            ValueError: an argument of the wrong shape or type, naming it with the expected
                and the given shapes.
            DataError: expression that the normalization cannot take (log2 of x ≤ -1).
        """
        tiles = _float32("tiles", tiles, "[batch, tiles, features]")
        expression = _float32("expression", expression, "[batch, genes]")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_:
                raise ValueError(f"mask: expected a bool array [batch, tiles], got dtype {mask.dtype}")
            if mask.ndim != 2:
                raise ValueError(
                    f"mask: expected a 2-D array [batch, tiles], got shape {list(mask.shape)}"
                )
        return self._native.predict(tiles, expression, mask, normalized)
