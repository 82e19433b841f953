"""Models exported by `med-crossvit export` (docs/export.md), loaded in PyTorch.

- the Python original's reference checkpoint (tests/fixtures/parity), imported and exported
  to safetensors, gives the original's logits (expected_logits.csv) within 1e-5;
- a model trained by the CLI (position-free, the new runs' default), exported, gives the
  logits of the CLI's `predict` within 1e-5, per tokenizer;
- `--keys original --format torch` of the imported reference holds the reference's keys,
  shapes and values, so the original's class loads it with `load_state_dict(strict=True)`.

Needs PyTorch, NumPy and h5py, and the CLI: `MED_CROSSVIT_BIN` names the `med-crossvit`
binary. Without them the tests are skipped, with the reason; `MED_CROSSVIT_REQUIRE_TORCH=1`
(CI) turns each skip into a failure.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PARITY = ROOT / "tests" / "fixtures" / "parity"
REQUIRE = os.environ.get("MED_CROSSVIT_REQUIRE_TORCH") == "1"


def _unavailable(reason: str):
    if REQUIRE:
        pytest.fail(f"{reason} (MED_CROSSVIT_REQUIRE_TORCH=1 makes this an error)")
    pytest.skip(reason)


try:
    import h5py
    import numpy as np
    import torch
except ImportError as e:  # pragma: no cover - depends on the environment
    torch = None
    _MISSING = f"needs PyTorch, NumPy and h5py: {e}"
else:
    _MISSING = None


def _torch_module():
    """`med_crossvit.torch` from the installed package, or else the file in python/ (before
    the package is built; loaded by path so that nothing else of the package is needed)."""
    try:
        import med_crossvit.torch as module

        return module
    except ImportError:
        path = ROOT / "python" / "med_crossvit" / "torch.py"
        spec = importlib.util.spec_from_file_location("med_crossvit_torch_file", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


@pytest.fixture(scope="session")
def mct():
    if _MISSING:
        _unavailable(_MISSING)
    return _torch_module()


@pytest.fixture(scope="session")
def cli():
    """Runs the CLI with the given arguments, failing with its stderr."""
    binary = os.environ.get("MED_CROSSVIT_BIN")
    if not binary:
        _unavailable("MED_CROSSVIT_BIN is not set (the path of the med-crossvit binary)")
    if not os.access(binary, os.X_OK):
        _unavailable(f"MED_CROSSVIT_BIN={binary} is not an executable file")

    def run(*args, ok: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
        if ok:
            assert p.returncode == 0, f"med-crossvit {' '.join(map(str, args))}:\n{p.stderr}"
        return p

    return run


@pytest.fixture(scope="session")
def imported(cli, tmp_path_factory) -> pathlib.Path:
    """The reference checkpoint imported into a model folder."""
    out = tmp_path_factory.mktemp("imported") / "model"
    cli("import-torch", "--checkpoint", PARITY / "reference.pt",
        "--args", PARITY / "reference_args.json", "--out", out)
    return out


def _logits_csv(path: pathlib.Path) -> dict[str, list[float]]:
    """First column -> the `logit_*` columns."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    first = next(iter(rows[0]))
    logit_cols = [k for k in rows[0] if k.startswith("logit_")]
    return {r[first]: [float(r[k]) for k in logit_cols] for r in rows}


def _tiles(features: pathlib.Path, slide: str, key: str | None = None) -> np.ndarray:
    """The slide's tile features `[n, dim]`, in file order."""
    (path,) = list(features.rglob(f"{slide}.h5"))
    with h5py.File(path, "r") as h5:
        if key is None:
            key = "features" if "features" in h5 else "uni_features"
        return np.asarray(h5[key], dtype=np.float32)


def _assert_close(got: dict, want: dict, tol: float = 1e-5):
    assert set(got) == set(want)
    worst = max(abs(a - b) for s in want for a, b in zip(got[s], want[s], strict=True))
    assert worst < tol, f"max |torch - expected| = {worst:.3e}"


def _parity_logits(model) -> dict[str, list[float]]:
    """The model's logits on the parity cohort: one bag per slide, its tiles in file order,
    the expression as cohort.csv holds it (the reference was imported without
    normalization)."""
    with open(PARITY / "cohort.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    genes = model.config.rna_num_genes
    out = {}
    with torch.no_grad():
        for row in rows:
            slide = row["wsi_file_name"]
            tiles = torch.from_numpy(_tiles(PARITY / "features", slide, "uni_features"))[None]
            expression = torch.tensor([[float(row[f"rna_{g}"]) for g in range(genes)]])
            out[slide] = model(tiles, expression)[0].tolist()
    return out


def test_the_imported_reference_exported_to_safetensors_gives_the_originals_logits(
        mct, cli, imported, tmp_path):
    path = tmp_path / "reference.safetensors"
    cli("export", imported, "--out", path)
    model = mct.MedCrossViT.from_safetensors(path)
    assert not model.training
    # The original's defect travels in the config: 1 cross-attention head.
    assert model.config.cross_attn_heads == 1
    assert model.classes == ["0", "1"] and model.task == "classification"
    _assert_close(_parity_logits(model), _logits_csv(PARITY / "expected_logits.csv"))

    # The file is a safetensors file as Hugging Face's library reads it, and our reader
    # reads the same tensors and metadata.
    st = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    theirs = st.load_file(str(path))
    ours, metadata = mct.read_safetensors(path)
    assert set(theirs) == set(ours) == set(model.state_dict())
    for key, value in theirs.items():
        assert np.array_equal(value, ours[key].numpy()), key
    with safe_open(str(path), "np") as f:
        assert f.metadata() == metadata
    assert json.loads(metadata["med_crossvit_config"])["cross_attn_heads"] == 1
    assert metadata["med_crossvit_keys"] == "native"


def _train(cli, tmp: pathlib.Path, extra: list[str]) -> tuple[pathlib.Path, pathlib.Path]:
    """A tiny synthetic cohort (slides of 3 to 6 tiles) and a model trained on it with the
    defaults of a new run (no positional embedding); returns (run, cohort folder)."""
    cohort = tmp / "cohort"
    cli("synth", "--out", cohort, "--slides", 12, "--tiles", 6, "--dim", 8, "--genes", 5,
        "--seed", 3)
    config = tmp / "tiny.json"
    config.write_text(json.dumps({
        "num_classes": 2, "wsi_dim": 8, "rna_dim": 6, "rna_num_genes": 5, "depth": 1,
        "wsi_num_tiles": 6, "wsi_enc_depth": 1, "wsi_enc_heads": 2, "wsi_enc_mlp_dim": 16,
        "wsi_enc_dim_head": 4, "rna_enc_depth": 1, "rna_enc_heads": 2, "rna_enc_mlp_dim": 16,
        "rna_enc_dim_head": 4, "cross_attn_depth": 1, "cross_attn_heads": 2,
        "cross_attn_dim_head": 4,
    }))
    run = tmp / "run"
    cli("train", "--csv", cohort / "cohort.csv", "--features", cohort / "features",
        "--config", config, "--out", run, "--epochs", 2, "--batch-size", 4, "--bag-size", 6,
        "--lr", "1e-3", "--workers", 1, "--bootstrap", 20, *extra)
    return run, cohort


@pytest.mark.parametrize("tokenizer", ["dense", "per_gene", "pathways"])
def test_a_trained_model_gives_the_clis_logits_in_pytorch(mct, cli, tmp_path, tokenizer):
    extra = ["--tokenizer", tokenizer]
    if tokenizer == "pathways":
        # Two groups of the synthetic cohort's genes rna_0 … rna_4 (MCAT's layout: one
        # column per group, its genes below, the cohort's `rna_` prefix left out).
        signatures = tmp_path / "signatures.csv"
        signatures.write_text("immune,stroma\n0,1\n3,2\n,4\n")
        extra += ["--signatures", str(signatures)]
    run, cohort = _train(cli, tmp_path, extra)
    predictions = tmp_path / "predictions.csv"
    cli("predict", "--model", run, "--csv", cohort / "cohort.csv", "--features",
        cohort / "features", "--out", predictions, "--per-slide")
    expected = _logits_csv(tmp_path / "predictions_slides.csv")

    path = tmp_path / "model.safetensors"
    cli("export", run, "--out", path)
    model = mct.MedCrossViT.from_safetensors(path)
    assert model.config.wsi_pos_embedding is False
    assert model.config.rna_tokenizer["kind"] == tokenizer
    assert model.wsi_embedder.pos_embedding is None

    with open(cohort / "cohort.csv", newline="") as f:
        rows = {r["wsi_file_name"]: r for r in csv.DictReader(f)}
    bags, got = {}, {}
    with torch.no_grad():
        for slide in expected:
            # Every slide fits one bag of 6: predict sees all its tiles, in file order.
            tiles = torch.from_numpy(_tiles(cohort / "features", slide))
            raw = [[float(rows[slide][g]) for g in model.genes]]
            expression = model.normalize_expression(raw)
            bags[slide] = (tiles, expression)
            got[slide] = model(tiles[None], expression)[0].tolist()
    _assert_close(got, expected)

    # Bags of different lengths padded into one batch, with a mask, give the same logits.
    slides = list(bags)
    longest = max(bags[s][0].shape[0] for s in slides)
    tiles = torch.zeros(len(slides), longest, 8)
    mask = torch.ones(len(slides), longest, dtype=torch.bool)
    for i, s in enumerate(slides):
        n = bags[s][0].shape[0]
        tiles[i, :n], mask[i, :n] = bags[s][0], False
    expression = torch.cat([bags[s][1] for s in slides])
    with torch.no_grad():
        batched = model(tiles, expression, mask)
    _assert_close({s: batched[i].tolist() for i, s in enumerate(slides)}, expected)

    # The torch format carries the same model.
    pt = tmp_path / "model.pt"
    cli("export", run, "--format", "torch", "--out", pt)
    again = mct.MedCrossViT.from_torch(pt)
    with torch.no_grad():
        for slide, (t, e) in bags.items():
            assert again(t[None], e)[0].tolist() == got[slide]


def test_original_keys_in_torch_format_load_into_the_originals_class(mct, cli, imported,
                                                                     tmp_path):
    path = tmp_path / "original.pt"
    cli("export", imported, "--keys", "original", "--format", "torch", "--out", path)
    exported = torch.load(path, map_location="cpu", weights_only=True)
    reference = torch.load(PARITY / "reference.pt", map_location="cpu", weights_only=True)
    assert set(exported) == set(reference)
    for key, value in reference.items():
        assert exported[key].shape == value.shape, key
        assert exported[key].dtype == torch.float32, key
        # The original's rna_mlp_head was never used, and import-torch does not keep it:
        # the export fills it with the head the original used for both modalities.
        if not key.startswith("rna_mlp_head."):
            assert torch.equal(exported[key], value), key
    for leaf in ("0.weight", "0.bias", "1.weight", "1.bias"):
        assert torch.equal(exported[f"rna_mlp_head.{leaf}"], reference[f"wsi_mlp_head.{leaf}"])
    metadata = exported._metadata["med_crossvit"]
    args = json.loads(metadata["med_crossvit_original_args"])
    with open(PARITY / "reference_args.json") as f:
        want = json.load(f)
    assert {k: args[k] for k in want if k != "cross_attn_heads"} == {
        k: v for k, v in want.items() if k != "cross_attn_heads"}

    # Loaded back through the original's keys, the module gives the original's logits.
    model = mct.MedCrossViT.from_torch(path)
    _assert_close(_parity_logits(model), _logits_csv(PARITY / "expected_logits.csv"))


def test_a_model_the_original_cannot_express_is_refused_by_field(cli, tmp_path):
    run, _ = _train(cli, tmp_path, [])
    p = cli("export", run, "--keys", "original", "--out", tmp_path / "x.pt", ok=False)
    assert p.returncode != 0
    assert "wsi_pos_embedding" in p.stderr
    assert not (tmp_path / "x.pt").exists()


def test_modules_report_what_they_cannot_compute(mct):
    config = mct.ModelConfig.small(2, 8, 8).to_dict()
    config["rna_attention"] = {"kind": "nystrom", "landmarks": 4}
    with pytest.raises(NotImplementedError, match="rna_attention"):
        mct.MedCrossViT.from_config(config)
    config = mct.ModelConfig.small(2, 8, 8).to_dict()
    config["rna_tokenizer"] = {"kind": "sparse"}
    with pytest.raises(NotImplementedError, match="rna_tokenizer"):
        mct.MedCrossViT.from_config(config)
    with pytest.raises(ValueError, match="colour"):
        mct.MedCrossViT.from_config({**mct.ModelConfig.small(2, 8, 8).to_dict(), "colour": 1})


def test_the_example_of_docs_export_md_runs(mct, cli, tmp_path, monkeypatch, capsys):
    run, _ = _train(cli, tmp_path, [])
    monkeypatch.chdir(tmp_path)
    cli("export", run, "--out", tmp_path / "model.safetensors")
    text = (ROOT / "docs" / "export.md").read_text()
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    try:
        import med_crossvit.torch  # noqa: F401
    except ImportError:
        # Before the package is installed: the module from its file, under its name.
        import types

        package = types.ModuleType("med_crossvit")
        package.torch = mct
        monkeypatch.setitem(sys.modules, "med_crossvit", package)
        monkeypatch.setitem(sys.modules, "med_crossvit.torch", mct)
    exec(compile(example, "docs/export.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("tensor([["), printed
