"""The PyTorch twin of med-crossvit's model, for the benchmarks: a thin shim over the
package's module, python/med_crossvit/torch.py (loaded by path, so that the benchmarks need
only PyTorch, not the installed package).

Names the benchmarks use: `MedCrossViTTwin` (= `MedCrossViT`), `TwinConfig` (`ModelConfig`
with the bench presets), `load_original`, `count_params`, `forward_flops`.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from torch import nn

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python",
                     "med_crossvit", "torch.py")
_spec = importlib.util.spec_from_file_location("med_crossvit_torch_twin", _PATH)
_module = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _module  # dataclasses look their module up by name
_spec.loader.exec_module(_module)

MedCrossViTTwin = _module.MedCrossViT
load_original = _module.load_original
original_key = _module.original_key
config_from_original = _module.config_from_original


class TwinConfig(_module.ModelConfig):
    """`ModelConfig` with the presets of `med-crossvit bench`."""

    @classmethod
    def preset(cls, name: str, genes: int = 100) -> "TwinConfig":
        """The presets of `med-crossvit bench` (768-wide tiles, 50 per bag, 2 classes; no
        positional embedding over the tiles, as the bench's models, like every new run's,
        have none)."""
        if name == "seed":
            c = cls.seed()
        elif name == "small":
            c = cls.small(2, 768, 64)  # as src/run/spec.rs resolves it
        else:
            raise ValueError(f"unknown preset {name!r} (seed, small)")
        c.rna_num_genes = genes
        c.wsi_pos_embedding = False
        return c


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(c: TwinConfig, batch: int, tiles: int) -> float:
    """Every matrix product of one forward pass (as src/bench.rs's `forward_flops`)."""
    mm = lambda m, k, n: 2.0 * m * k * n  # noqa: E731

    def attention(tokens, queries, dim, heads, dim_head):
        inner = heads * dim_head
        return (mm(queries, dim, inner) + mm(tokens, dim, 2 * inner)
                + 2 * heads * mm(queries, dim_head, tokens) + mm(queries, inner, dim))

    def encoder(tokens, dim, depth, heads, dim_head, mlp):
        return depth * (attention(tokens, tokens, dim, heads, dim_head) + 2 * mm(tokens, dim, mlp))

    tw, tr = tiles + 1, c.rna_num_genes + 1
    dw, dr = c.wsi_dim, c.rna_dim
    project = 2 * mm(1, dw, dr) if dw != dr else 0.0
    cross = c.cross_attn_depth * (
        attention(tr, 1, dr, c.cross_attn_heads, c.cross_attn_dim_head)
        + attention(tw, 1, dw, c.cross_attn_heads, c.cross_attn_dim_head) + 2 * project)
    block = (encoder(tw, dw, c.wsi_enc_depth, c.wsi_enc_heads, c.wsi_enc_dim_head, c.wsi_enc_mlp_dim)
             + encoder(tr, dr, c.rna_enc_depth, c.rna_enc_heads, c.rna_enc_dim_head, c.rna_enc_mlp_dim)
             + cross)
    g = c.rna_num_genes
    embed = mm(1, g, g * dr)
    heads = mm(1, dw, c.num_classes) + mm(1, dr, c.num_classes)
    return batch * (embed + c.depth * block + heads)
