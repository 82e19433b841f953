"""The package against the library's own command-line tool and against known answers."""

import json
import subprocess
import sys
import _thread
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import med_crossvit as mcv
from conftest import GENES, TINY_SETTINGS, cli_binary


def test_import_does_not_load_torch():
    # A fresh interpreter: other test modules may have imported torch into this one.
    code = "import sys, med_crossvit; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert mcv.__version__
    assert "epochs" in mcv.SETTINGS and "bag_size" in mcv.SETTINGS


def test_a_trained_run_reads_into_dicts_and_pandas(trained, cohort):
    run = mcv.Run(trained.path)
    assert run.config["training"]["epochs"] == 2
    assert run.config["model"]["rna_num_genes"] == GENES
    assert run.summary is None and trained.summary["folds"][0]["fold"] == 0
    history = run.history
    assert isinstance(history, pd.DataFrame)
    assert list(history["epoch"]) == [1, 2]
    assert {"train_loss", "val_loss", "val_auc"} <= set(history.columns)
    # metrics.json is the kept (best) epoch's validation row, with the same loss.
    best = trained.summary["folds"][0]["best_epoch"]
    row = history[history["epoch"] == best].iloc[0]
    assert run.metrics["loss"] == pytest.approx(row["val_loss"], abs=1e-5)
    assert run.predictions is None and run.cv_predictions is None and run.folds == []
    splits = run.splits
    assert isinstance(splits, pd.DataFrame) and len(splits) > 0


def test_cross_validation_folds_and_pooled_predictions(cohort, tiny_config, tmp_path):
    csv, features = cohort
    run = mcv.train(
        csv, features, tmp_path / "cv", config=tiny_config, folds=2, epochs=1,
        verbose=False, **TINY_SETTINGS,
    )
    assert run.is_cross_validation
    assert [f.path.name for f in run.folds] == ["fold_0", "fold_1"]
    pooled = run.cv_predictions
    # Every patient once, from the fold that held it out.
    patients = pd.read_csv(csv)["patient_id"].nunique()
    assert len(pooled) == patients
    assert len(run.metrics["folds"]) == 2


def _slide_rows(csv, features, model, slides):
    """Each slide's tiles (from its file, as training reads them) and raw expression (from
    the CSV, in the model's gene order), padded into one batch with its mask."""
    table = pd.read_csv(csv).set_index("wsi_file_name")
    bags = []
    for slide in slides:
        (path,) = Path(features).rglob(f"{Path(slide).stem}.h5")
        bags.append(mcv.read_tiles(path))
    longest = max(len(b) for b in bags)
    tiles = np.zeros((len(bags), longest, bags[0].shape[1]), np.float32)
    mask = np.ones((len(bags), longest), bool)
    for i, b in enumerate(bags):
        tiles[i, : len(b)] = b
        mask[i, : len(b)] = False
    expression = table.loc[slides, model.genes].to_numpy(np.float64)
    return tiles, expression, mask


def test_numpy_predictions_equal_the_command_line_tool(trained, cohort, tmp_path):
    binary = cli_binary()
    csv, features = cohort
    out = tmp_path / "cli.csv"
    subprocess.run(
        [binary, "predict", "--model", str(trained.path), "--csv", str(csv),
         "--features", str(features), "--out", str(out), "--per-slide"],
        check=True, capture_output=True,
    )
    cli = pd.read_csv(tmp_path / "cli_slides.csv")
    # The package's predict writes the same file as the tool.
    ours = mcv.predict(trained.path, csv, tmp_path / "py.csv", features, per_slide=True)
    assert (tmp_path / "py_slides.csv").read_text() == (tmp_path / "cli_slides.csv").read_text()
    assert out.read_text() == (tmp_path / "py.csv").read_text()
    assert len(ours) == len(pd.read_csv(out))

    model = mcv.Model.load(trained.path)
    assert model.task == "classification" and len(model.genes) == GENES
    slide_col = [c for c in cli.columns if c in ("slide", "wsi_file_name", "slide_id")][0]
    slides = list(cli[slide_col])
    tiles, expression, mask = _slide_rows(csv, features, model, slides)
    got = model.predict(tiles, expression, mask)
    probability = [c for c in cli.columns if c.startswith("prob")]
    assert len(probability) == 2, cli.columns
    np.testing.assert_allclose(got["probabilities"], cli[probability].to_numpy(), atol=1e-5)
    np.testing.assert_allclose(got["probabilities"].sum(axis=1), 1.0, atol=1e-6)
    assert got["logits"].shape == (len(slides), 2)
    # Attention: a distribution over each bag's real tiles; padded tiles get none.
    np.testing.assert_allclose(got["tile_attention"].sum(axis=1), 1.0, atol=1e-5)
    assert np.all(got["tile_attention"][mask] == 0)
    assert got["gene_attention"].shape[0] == len(slides)


def test_a_non_contiguous_or_float64_batch_gives_the_same_outputs(trained, cohort):
    csv, features = cohort
    model = mcv.Model.load(trained.path)
    slides = list(pd.read_csv(csv)["wsi_file_name"][:3])
    tiles, expression, mask = _slide_rows(csv, features, model, slides)
    base = model.predict(tiles, expression, mask)
    # The same values in Fortran order and as float64: converted, not misread.
    other = model.predict(np.asfortranarray(tiles.astype(np.float64)), expression, mask)
    for key in base:
        np.testing.assert_allclose(base[key], other[key], atol=1e-6)
    # A bag predicted alone, unpadded, gets what it got in the padded batch.
    n = int((~mask[0]).sum())
    alone = model.predict(tiles[:1, :n], expression[:1])
    np.testing.assert_allclose(alone["logits"], base["logits"][:1], atol=1e-5)


def test_bad_shapes_raise_value_errors_naming_the_argument(trained):
    model = mcv.Model.load(trained.path)
    with pytest.raises(ValueError, match=r"expression: expected shape \[2, 4\].*\[2, 3\]"):
        model.predict(np.zeros((2, 3, 8), np.float32), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"tiles: expected shape .*8\]"):
        model.predict(np.zeros((2, 3, 5), np.float32), np.zeros((2, GENES), np.float32))
    with pytest.raises(ValueError, match="tiles: expected a 3-D array"):
        model.predict(np.zeros((3, 8), np.float32), np.zeros((1, GENES), np.float32))
    with pytest.raises(ValueError, match="mask"):
        model.predict(
            np.zeros((2, 3, 8), np.float32), np.zeros((2, GENES)), np.zeros((2, 4), bool)
        )


def test_errors_are_typed_and_carry_the_library_message(cohort, tmp_path, tiny_config):
    with pytest.raises(mcv.RunError, match="not a med-crossvit run or model folder"):
        mcv.Model.load(tmp_path)
    csv, features = cohort
    with pytest.raises(TypeError, match="'epoch'.*valid settings: .*epochs"):
        mcv.train(csv, features, tmp_path / "x", epoch=3)
    with pytest.raises(mcv.DataError, match="batch_size"):
        mcv.train(csv, features, tmp_path / "y", config=tiny_config, batch_size=0)
    bad = tmp_path / "bad.csv"
    text = csv.read_text().splitlines()
    header = text[0].split(",")
    gene = next(i for i, h in enumerate(header) if h.startswith("rna_"))
    cells = text[1].split(",")
    cells[gene] = "abc"
    bad.write_text("\n".join([text[0], ",".join(cells), *text[2:]]) + "\n")
    with pytest.raises(mcv.DataError, match="abc") as caught:
        mcv.train(bad, features, tmp_path / "z", config=tiny_config, verbose=False)
    assert isinstance(caught.value, mcv.Error)
    report = mcv.check(bad, features)
    assert report["problems"], report
    assert mcv.check(csv, features)["problems"] == []


def test_evaluate_writes_metrics_and_predictions(trained, cohort, tmp_path):
    csv, features = cohort
    result = mcv.evaluate(trained.path, csv, tmp_path / "eval", features)
    assert 0.0 <= result.metrics["auc"] <= 1.0
    assert len(result.predictions) == pd.read_csv(csv)["patient_id"].nunique()


class _InterruptAfterFirstEpoch:
    """A stdout that presses Ctrl-C (interrupt_main) when the first epoch's line is printed."""

    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines.append(text)
        if " epoch 1:" in text:
            _thread.interrupt_main()

    def flush(self):
        pass


def test_ctrl_c_stops_training_and_the_run_resumes_to_the_end(
    cohort, tiny_config, tmp_path, monkeypatch
):
    csv, features = cohort
    out = tmp_path / "run"
    stdout = _InterruptAfterFirstEpoch()
    monkeypatch.setattr(sys, "stdout", stdout)
    with pytest.raises(KeyboardInterrupt):
        mcv.train(csv, features, out, config=tiny_config, epochs=4, **TINY_SETTINGS)
    monkeypatch.undo()
    printed = "".join(stdout.lines)
    assert "epoch 1:" in printed and "epoch 2:" not in printed
    assert "stopped on request after 1 complete epoch" in printed
    assert len(mcv.Run(out).history) == 1
    resumed = mcv.resume(out, verbose=False)
    assert list(resumed.history["epoch"]) == [1, 2, 3, 4]
    assert resumed.metrics
    # The interrupted run ends where an uninterrupted one does.
    whole = mcv.train(
        csv, features, tmp_path / "whole", config=tiny_config, epochs=4, verbose=False,
        **TINY_SETTINGS,
    )
    pd.testing.assert_frame_equal(whole.history, resumed.history)
