"""Shared fixtures: a small synthetic cohort and a tiny model trained on it once per session
(tiny widths, as the Rust tests use, so that a debug build also runs them in seconds)."""

import json
import os
from pathlib import Path

import pytest

import med_crossvit as mcv

#: Two genes more than the tokens of width 6 need; one fusion block, 2 heads of 4.
GENES = 4
TINY_MODEL = {
    "num_classes": 2,
    "depth": 1,
    "wsi_dim": 8,
    "rna_dim": 6,
    "wsi_num_tiles": 6,
    "wsi_enc_depth": 1,
    "wsi_enc_heads": 2,
    "wsi_enc_mlp_dim": 16,
    "wsi_enc_dim_head": 4,
    "rna_num_genes": GENES,
    "rna_enc_depth": 1,
    "rna_enc_heads": 2,
    "rna_enc_mlp_dim": 16,
    "rna_enc_dim_head": 4,
    "cross_attn_depth": 1,
    "cross_attn_heads": 2,
    "cross_attn_dim_head": 4,
}
TINY_SETTINGS = dict(
    batch_size=4,
    bag_size=4,
    max_patches_total=8,
    lr=1e-3,
    warmup_epochs=0.5,
    patience=0,
    workers=1,
    bootstrap=0,
)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """16 slides of at most 4 tiles (one bag each at bag size 4) of width 8, 4 genes."""
    out = tmp_path_factory.mktemp("cohort")
    csv, features = mcv.synth(out, slides=16, tiles=4, dim=8, genes=GENES, seed=5)
    return Path(csv), Path(features)


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "tiny.json"
    path.write_text(json.dumps(TINY_MODEL))
    return path


@pytest.fixture(scope="session")
def trained(cohort, tiny_config, tmp_path_factory):
    """A finished two-epoch run of the tiny model."""
    csv, features = cohort
    out = tmp_path_factory.mktemp("runs") / "run"
    run = mcv.train(
        csv, features, out, config=tiny_config, epochs=2, verbose=False, **TINY_SETTINGS
    )
    return run


def cli_binary():
    """The `med-crossvit` binary named by MED_CROSSVIT_BIN (`make test-python` builds it);
    skips, or with MED_CROSSVIT_REQUIRE_PYTHON_CLI=1 (CI) fails, without it."""
    path = os.environ.get("MED_CROSSVIT_BIN")
    if path and Path(path).is_file():
        return path
    why = (
        "MED_CROSSVIT_BIN is not set to the med-crossvit binary "
        "(cargo build --features cli --bin med-crossvit; `make test-python` sets it)"
    )
    if os.environ.get("MED_CROSSVIT_REQUIRE_PYTHON_CLI") == "1":
        pytest.fail(why)
    pytest.skip(why)
