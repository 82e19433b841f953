"""med-crossvit's model in PyTorch, for models exported by ``med-crossvit export``.

Written from the Rust model (``src/model/``, the authoritative definition of what is
computed) and ``docs/architecture.md``; module and parameter names follow the Rust types, so
``MedCrossViT.state_dict()`` has exactly the keys of an export under the native key map
(``docs/export.md``). This file needs only PyTorch, NumPy and the standard library::

    from med_crossvit.torch import MedCrossViT

    model = MedCrossViT.from_safetensors("model.safetensors")   # eval mode
    logits = model(tiles, expression)   # [b, n, wsi_dim], [b, genes] -> [b, num_classes]

What is computed:

- TileEmbedder: CLS token prepended, + positional embedding[:, :1+n] (unless
  ``wsi_pos_embedding`` is false, new runs' default), dropout.
- RnaEmbedder, by ``rna_tokenizer``:
  dense: LayerNorm(genes) -> Linear(genes -> genes*dim) -> [b, genes, dim] -> LayerNorm(dim);
  per_gene: LayerNorm(genes), token_g = x_g * E_g + b_g;
  pathways: each group's genes -> Linear -> ELU -> AlphaDropout, one token per group;
  then CLS prepended, + positional embedding, dropout.
- depth x FusionBlock: WSI Transformer, RNA Transformer, CrossTransformer.
  - Transformer: layers of x = x + Attention(x); x = x + FeedForward(x); final LayerNorm.
  - Attention: LayerNorm on the queries only, to_q (no bias), to_kv (no bias, keys then
    values), softmax(q k^T / sqrt(dim_head)), dropout on the weights, to_out, dropout.
  - FeedForward: LayerNorm, Linear, exact GELU, dropout, Linear, dropout.
  - CrossTransformer layer: the WSI CLS token, projected to rna_dim (when the widths
    differ), attends to [itself, gene tokens] at rna_dim and is added back; then the RNA
    CLS token likewise over [itself, tiles] at wsi_dim. Other tokens pass unchanged.
- Pooling (mean over all tokens incl. CLS, padded tiles left out; or the CLS token), one
  head per modality (LayerNorm, Linear), logits summed. For a survival model the logits are
  the per-bin hazard logits: hazards = sigmoid(logits).

Padding masks (``mask``: ``[b, n]``, True = padded tile) are supported; missing modalities
and attention export are not (use the ``med_crossvit`` package's ``Model`` for those). A
configuration this module cannot compute (the Nystrom RNA attention) raises
NotImplementedError naming the field.

``load_original`` fills the module from a state_dict saved by the Python original and
reproduces the two defects that matter for such a checkpoint (docs/architecture.md): the
cross-attention head count is read from the checkpoint (the original used its cross-attention
depth there), and the WSI head's weights fill both heads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

#: The newest export layout (``med_crossvit_format_version``) this module reads.
FORMAT_VERSION = 1

#: The score of a padded key (as src/model/attention.rs): softmax gives it weight 0.
PAD_SCORE = -1.0e30


@dataclasses.dataclass
class ModelConfig:
    """``MedCrossViTConfig`` (src/model/config.rs): same field names, same defaults."""

    num_classes: int
    wsi_dim: int
    rna_dim: int
    depth: int = 3
    wsi_num_tiles: int = 50
    wsi_pos_embedding: bool = True
    wsi_enc_depth: int = 4
    wsi_enc_heads: int = 8
    wsi_enc_mlp_dim: int = 2048
    wsi_enc_dim_head: int = 64
    rna_num_genes: int = 100
    rna_enc_depth: int = 4
    rna_enc_heads: int = 8
    rna_enc_mlp_dim: int = 2048
    rna_enc_dim_head: int = 64
    cross_attn_depth: int = 2
    cross_attn_heads: int = 8
    cross_attn_dim_head: int = 64
    dropout: float = 0.1
    emb_dropout: float = 0.1
    pool: str = "mean"
    rna_tokenizer: dict = dataclasses.field(default_factory=lambda: {"kind": "dense"})
    rna_attention: dict = dataclasses.field(default_factory=lambda: {"kind": "exact"})

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """A configuration from its JSON object (a run's ``config.json``, whose model config
        is under ``"model"``, is accepted too). ``cross_atnn_depth`` is read as
        ``cross_attn_depth``; an unknown field raises ValueError naming it."""
        d = dict(d.get("model", d) if isinstance(d.get("model"), dict) else d)
        if "cross_atnn_depth" in d:
            d["cross_attn_depth"] = d.pop("cross_atnn_depth")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in d if k not in known)
        if unknown:
            raise ValueError(f"unknown model config field {unknown[0]!r}")
        if isinstance(d.get("rna_tokenizer"), str):
            d["rna_tokenizer"] = {"kind": d["rna_tokenizer"]}
        if d.get("rna_attention") is None:
            d.pop("rna_attention", None)
        return cls(**d)

    def to_dict(self) -> dict:
        """The configuration as the JSON object ``MedCrossViTConfig`` reads."""
        return dataclasses.asdict(self)

    @classmethod
    def seed(cls) -> "ModelConfig":
        """``MedCrossViTConfig::seed()``: the original's published arguments."""
        return cls(num_classes=2, wsi_dim=768, rna_dim=768, depth=4, wsi_enc_depth=2, rna_enc_depth=2)

    @classmethod
    def small(cls, num_classes: int, wsi_dim: int, rna_dim: int) -> "ModelConfig":
        """``MedCrossViTConfig::small()``."""
        return cls(
            num_classes=num_classes, wsi_dim=wsi_dim, rna_dim=rna_dim, depth=2,
            wsi_enc_depth=1, wsi_enc_heads=4, wsi_enc_mlp_dim=256, wsi_enc_dim_head=32,
            rna_enc_depth=1, rna_enc_heads=4, rna_enc_mlp_dim=256, rna_enc_dim_head=32,
            cross_attn_depth=1, cross_attn_heads=4, cross_attn_dim_head=32,
        )


def _normal_param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape))


def _key_bias(mask: torch.Tensor) -> torch.Tensor:
    """``[b, keys]`` padding (True = padded) -> additive scores ``[b, 1, 1, keys]``."""
    return (mask.to(torch.float32) * PAD_SCORE)[:, None, None, :]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float, sdpa: bool = False):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        self.attn_dropout = nn.Dropout(dropout)
        self.out_dropout = nn.Dropout(dropout)
        self.sdpa = sdpa

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.dim_head).transpose(1, 2)  # [b, h, n, d]

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention, or (with ``context``) attention from ``x`` to [norm(x), context];
        ``bias`` ``[b, 1, 1, keys]`` is added to the scores (0, or PAD_SCORE for padding)."""
        b, q_len, _ = x.shape
        x = self.norm(x)
        kv_in = x if context is None else torch.cat((x, context), dim=1)
        q = self._split(self.to_q(x))
        k, v = self.to_kv(kv_in).chunk(2, dim=-1)
        k, v = self._split(k), self._split(v)
        if self.sdpa:
            p = self.attn_dropout.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        else:
            scores = torch.matmul(q * self.dim_head**-0.5, k.transpose(-1, -2))
            if bias is not None:
                scores = scores + bias
            out = torch.matmul(self.attn_dropout(scores.softmax(dim=-1)), v)
        out = out.transpose(1, 2).reshape(b, q_len, self.heads * self.dim_head)
        return self.out_dropout(self.to_out(out))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(F.gelu(self.fc1(self.norm(x))))
        return self.dropout(self.fc2(x))


class TransformerLayer(nn.Module):
    def __init__(self, dim, heads, dim_head, mlp_dim, dropout, sdpa):
        super().__init__()
        self.attn = Attention(dim, heads, dim_head, dropout, sdpa)
        self.ff = FeedForward(dim, mlp_dim, dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attn(x, bias=bias) + x
        return self.ff(x) + x


class Transformer(nn.Module):
    def __init__(self, dim, depth, heads, dim_head, mlp_dim, dropout, sdpa):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(dim, heads, dim_head, mlp_dim, dropout, sdpa) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.checkpointing = False

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            if self.checkpointing and torch.is_grad_enabled():
                x = checkpoint(layer, x, bias, use_reentrant=False)
            else:
                x = layer(x, bias)
        return self.norm(x)


class ProjectInOut(nn.Module):
    """Projects a CLS token from dim_in to dim_out, attends there, projects back (the
    projections are absent when the widths are equal)."""

    def __init__(self, dim_in, dim_out, heads, dim_head, dropout, sdpa):
        super().__init__()
        project = dim_in != dim_out
        self.project_in = nn.Linear(dim_in, dim_out) if project else None
        self.attn = Attention(dim_out, heads, dim_head, dropout, sdpa)
        self.project_out = nn.Linear(dim_out, dim_in) if project else None

    def forward(self, cls: torch.Tensor, context: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        if self.project_in is not None:
            cls = self.project_in(cls)
        out = self.attn(cls, context, bias)
        if self.project_out is not None:
            out = self.project_out(out)
        return out


class CrossLayer(nn.Module):
    def __init__(self, wsi_dim, rna_dim, heads, dim_head, dropout, sdpa):
        super().__init__()
        self.wsi_attend_rna = ProjectInOut(wsi_dim, rna_dim, heads, dim_head, dropout, sdpa)
        self.rna_attend_wsi = ProjectInOut(rna_dim, wsi_dim, heads, dim_head, dropout, sdpa)


class CrossTransformer(nn.Module):
    def __init__(self, wsi_dim, rna_dim, depth, heads, dim_head, dropout, sdpa):
        super().__init__()
        self.layers = nn.ModuleList(
            CrossLayer(wsi_dim, rna_dim, heads, dim_head, dropout, sdpa) for _ in range(depth)
        )

    def forward(self, wsi: torch.Tensor, rna: torch.Tensor, wsi_bias: torch.Tensor | None = None):
        """``wsi_bias`` covers [CLS, tiles], the keys of the RNA CLS token's attention."""
        wsi_cls, wsi_tiles = wsi[:, :1], wsi[:, 1:]
        rna_cls, rna_genes = rna[:, :1], rna[:, 1:]
        for layer in self.layers:
            wsi_cls = layer.wsi_attend_rna(wsi_cls, rna_genes) + wsi_cls
            rna_cls = layer.rna_attend_wsi(rna_cls, wsi_tiles, wsi_bias) + rna_cls
        return torch.cat((wsi_cls, wsi_tiles), dim=1), torch.cat((rna_cls, rna_genes), dim=1)


class FusionBlock(nn.Module):
    def __init__(self, c: ModelConfig, sdpa: bool):
        super().__init__()
        self.wsi_enc = Transformer(c.wsi_dim, c.wsi_enc_depth, c.wsi_enc_heads,
                                   c.wsi_enc_dim_head, c.wsi_enc_mlp_dim, c.dropout, sdpa)
        self.rna_enc = Transformer(c.rna_dim, c.rna_enc_depth, c.rna_enc_heads,
                                   c.rna_enc_dim_head, c.rna_enc_mlp_dim, c.dropout, sdpa)
        self.cross = CrossTransformer(c.wsi_dim, c.rna_dim, c.cross_attn_depth,
                                      c.cross_attn_heads, c.cross_attn_dim_head, c.dropout, sdpa)


class BiModalEncoder(nn.Module):
    def __init__(self, c: ModelConfig, sdpa: bool):
        super().__init__()
        self.blocks = nn.ModuleList(FusionBlock(c, sdpa) for _ in range(c.depth))
        self.checkpointing = False

    def forward(self, wsi: torch.Tensor, rna: torch.Tensor, wsi_bias: torch.Tensor | None = None):
        for block in self.blocks:
            wsi = block.wsi_enc(wsi, wsi_bias)
            rna = block.rna_enc(rna)
            if self.checkpointing and torch.is_grad_enabled():
                wsi, rna = checkpoint(block.cross, wsi, rna, wsi_bias, use_reentrant=False)
            else:
                wsi, rna = block.cross(wsi, rna, wsi_bias)
        return wsi, rna


class TileEmbedder(nn.Module):
    def __init__(self, dim: int, num_tiles: int, dropout: float, pos_embedding: bool = True):
        super().__init__()
        self.cls_token = _normal_param(1, 1, dim)
        if pos_embedding:
            self.pos_embedding = _normal_param(1, num_tiles + 1, dim)
        else:
            self.register_parameter("pos_embedding", None)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        b, n, _ = tiles.shape
        x = torch.cat((self.cls_token.expand(b, -1, -1), tiles), dim=1)
        if self.pos_embedding is not None:
            x = x + self.pos_embedding[:, : n + 1]
        return self.dropout(x)


class PathwayNet(nn.Module):
    """One gene group's network: Linear(genes in the group -> dim), then ELU."""

    def __init__(self, genes: int, dim: int):
        super().__init__()
        self.linear = nn.Linear(genes, dim)


class RnaEmbedder(nn.Module):
    """Gene tokens by the configured tokenizer (dense, per_gene or pathways), CLS token,
    positional embedding, dropout."""

    def __init__(self, genes: int, dim: int, dropout: float, tokenizer: dict | None = None):
        super().__init__()
        tokenizer = tokenizer or {"kind": "dense"}
        self.kind = tokenizer.get("kind")
        self.dim = dim
        self.groups: list[list[int]] = []
        if self.kind == "dense":
            self.input_norm = nn.LayerNorm(genes)
            self.project = nn.Linear(genes, genes * dim)
            self.token_norm = nn.LayerNorm(dim)
            tokens = genes
        elif self.kind == "per_gene":
            self.input_norm = nn.LayerNorm(genes)
            self.gene_weight = _normal_param(genes, dim)
            self.gene_bias = _normal_param(genes, dim)
            tokens = genes
        elif self.kind == "pathways":
            self.groups = [list(g["genes"]) for g in tokenizer["groups"]]
            bad = [g for grp in self.groups for g in grp if not 0 <= g < genes]
            if not self.groups or any(not g for g in self.groups) or bad:
                raise ValueError("rna_tokenizer: every pathway group needs genes in "
                                 f"0..{genes - 1}")
            self.pathways = nn.ModuleList(PathwayNet(len(g), dim) for g in self.groups)
            self.alpha_dropout = nn.AlphaDropout(dropout)
            tokens = len(self.groups)
        else:
            raise NotImplementedError(f"rna_tokenizer: kind {self.kind!r} is not supported "
                                      "(dense, per_gene, pathways)")
        self.cls_token = _normal_param(1, 1, dim)
        self.pos_embedding = _normal_param(1, tokens + 1, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, expression: torch.Tensor) -> torch.Tensor:
        b, g = expression.shape
        if self.kind == "dense":
            x = self.project(self.input_norm(expression)).view(b, g, self.dim)
            x = self.token_norm(x)
        elif self.kind == "per_gene":
            x = self.input_norm(expression)[:, :, None] * self.gene_weight + self.gene_bias
        else:
            x = torch.stack([
                self.alpha_dropout(F.elu(net.linear(expression[:, genes])))
                for net, genes in zip(self.pathways, self.groups)
            ], dim=1)  # [b, groups, dim]
        x = torch.cat((self.cls_token.expand(b, -1, -1), x), dim=1)
        return self.dropout(x + self.pos_embedding)


class ClassifierHead(nn.Module):
    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


class MedCrossViT(nn.Module):
    """``forward(tiles [b, n, wsi_dim], expression [b, genes], mask=None)`` -> logits
    ``[b, num_classes]``; ``mask`` ``[b, n]``, True = padded tile.

    Build with ``MedCrossViT(config)`` (a ``ModelConfig`` or its dict), or load an export
    with ``from_safetensors`` / ``from_torch``. A loaded model is in eval mode and carries
    the export's ``classes``, ``genes``, ``task`` and ``normalization`` (None when built)."""

    def __init__(self, config: ModelConfig | dict, sdpa: bool = False):
        super().__init__()
        c = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
        if c.pool not in ("mean", "cls"):
            raise ValueError(f"pool must be mean or cls, not {c.pool!r}")
        attention = (c.rna_attention or {}).get("kind", "exact")
        if attention != "exact":
            raise NotImplementedError(
                f"rna_attention: {attention!r} attention is not implemented in PyTorch "
                "(exact only); apply the model with med-crossvit or the med_crossvit package")
        self.config = c
        self.wsi_embedder = TileEmbedder(c.wsi_dim, c.wsi_num_tiles, c.emb_dropout,
                                         c.wsi_pos_embedding)
        self.rna_embedder = RnaEmbedder(c.rna_num_genes, c.rna_dim, c.emb_dropout, c.rna_tokenizer)
        self.encoder = BiModalEncoder(c, sdpa)
        self.wsi_head = ClassifierHead(c.wsi_dim, c.num_classes)
        self.rna_head = ClassifierHead(c.rna_dim, c.num_classes)
        self.classes: list[str] | None = None
        self.genes: list[str] | None = None
        self.task: str | None = None
        self.normalization: dict | None = None

    @classmethod
    def from_config(cls, config: dict | ModelConfig, sdpa: bool = False) -> "MedCrossViT":
        """A freshly initialized model of ``config`` (``MedCrossViTConfig``'s JSON object)."""
        return cls(config, sdpa=sdpa)

    @classmethod
    def from_safetensors(cls, path: str | os.PathLike, sdpa: bool = False) -> "MedCrossViT":
        """The model of a ``med-crossvit export --format safetensors`` file (either key map),
        its configuration read from the file's metadata; in eval mode."""
        tensors, metadata = read_safetensors(path)
        return cls._from_export(tensors, metadata, str(path), sdpa)

    @classmethod
    def from_torch(cls, path: str | os.PathLike, config: dict | str | os.PathLike | None = None,
                   sdpa: bool = False) -> "MedCrossViT":
        """The model of a ``med-crossvit export --format torch`` file (either key map),
        loaded with ``torch.load(weights_only=True)``; in eval mode. The configuration is the
        one the export carries in the state dict's ``_metadata``, or ``config`` (a dict, or
        the path of a JSON file such as a run's ``config.json``) for a state dict without it."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        metadata = dict((getattr(state, "_metadata", None) or {}).get("med_crossvit", {}))
        if config is not None:
            if not isinstance(config, dict):
                with open(config) as f:
                    config = json.load(f)
            metadata["med_crossvit_config"] = json.dumps(ModelConfig.from_dict(config).to_dict())
        return cls._from_export(OrderedDict(state), metadata, str(path), sdpa)

    @classmethod
    def _from_export(cls, tensors: dict, metadata: dict, path: str,
                     sdpa: bool) -> "MedCrossViT":
        version = int(metadata.get("med_crossvit_format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise ValueError(f"{path}: export format version {version}, this module reads "
                             f"up to {FORMAT_VERSION} (update med_crossvit)")
        if "med_crossvit_config" not in metadata:
            raise ValueError(f"{path}: no med_crossvit_config in the metadata; pass config=")
        model = cls(json.loads(metadata["med_crossvit_config"]), sdpa=sdpa)
        if metadata.get("med_crossvit_keys") == "original" or any(
                k.startswith("bimodal_encoder.") for k in tensors):
            tensors = _from_original_keys(model, tensors, path)
        model.load_state_dict(tensors, strict=True)
        for attr, key in (("classes", "med_crossvit_classes"), ("genes", "med_crossvit_genes"),
                          ("normalization", "med_crossvit_normalization")):
            if key in metadata:
                setattr(model, attr, json.loads(metadata[key]))
        model.task = metadata.get("med_crossvit_task")
        return model.eval()

    def set_checkpointing(self, on: bool) -> None:
        """Recompute each encoder layer and each cross-transformer in the backward pass
        (torch.utils.checkpoint), as ``--gradient-checkpointing`` segments ours."""
        self.encoder.checkpointing = on
        for block in self.encoder.blocks:
            block.wsi_enc.checkpointing = on
            block.rna_enc.checkpointing = on

    def normalize_expression(self, expression) -> torch.Tensor:
        """Raw expression ``[b, genes]`` (in ``self.genes`` order) normalized as ``predict``
        normalizes it: ``log2(x + 1)`` when the model's normalization says so, then
        ``(x - mean) / std`` per gene, clipped when it was trained clipped."""
        if self.normalization is None:
            raise ValueError("the model carries no normalization (it was not loaded from an export)")
        n = self.normalization
        x = torch.as_tensor(np.asarray(expression, dtype=np.float32))
        if n.get("log2"):
            x = torch.log2(x + 1.0)
        x = (x - torch.tensor(n["mean"])) / torch.tensor(n["std"])
        if n.get("clip") is not None:
            x = x.clamp(-n["clip"], n["clip"])
        return x

    def _pool(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        if self.config.pool == "cls":
            return x[:, 0]
        if keep is None:
            return x.mean(dim=1)
        return (x * keep[:, :, None]).sum(dim=1) / keep.sum(dim=1, keepdim=True)

    def forward(self, tiles: torch.Tensor, expression: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        if tiles.dim() != 3 or tiles.shape[2] != c.wsi_dim:
            raise ValueError(f"tiles must be [batch, tiles, {c.wsi_dim}], not {list(tiles.shape)}")
        if expression.dim() != 2 or tuple(expression.shape) != (tiles.shape[0], c.rna_num_genes):
            raise ValueError(f"expression must be [{tiles.shape[0]}, {c.rna_num_genes}], "
                             f"not {list(expression.shape)}")
        if tiles.shape[1] == 0:
            raise ValueError("a bag needs at least one tile")
        if c.wsi_pos_embedding and tiles.shape[1] > c.wsi_num_tiles:
            raise ValueError(f"{tiles.shape[1]} tiles, the positional embedding covers "
                             f"{c.wsi_num_tiles}")
        bias = keep = None
        if mask is not None:
            if tuple(mask.shape) != tuple(tiles.shape[:2]):
                raise ValueError(f"mask must be {list(tiles.shape[:2])}, not {list(mask.shape)}")
            padded = torch.cat((torch.zeros_like(mask[:, :1], dtype=torch.bool),
                                mask.to(torch.bool)), dim=1)  # [b, 1 + n]
            bias, keep = _key_bias(padded), (~padded).to(tiles.dtype)
        wsi = self.wsi_embedder(tiles)
        rna = self.rna_embedder(expression)
        wsi, rna = self.encoder(wsi, rna, bias)
        return self.wsi_head(self._pool(wsi, keep)) + self.rna_head(self._pool(rna))


# --- Reading exports ------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2"}


def read_safetensors(path: str | os.PathLike) -> tuple[OrderedDict, dict]:
    """The tensors (in file order) and the ``__metadata__`` of a safetensors file, read
    with the standard library and NumPy (F32, F64, F16 and BF16 tensors)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (n,) = struct.unpack("<Q", raw)
        size = os.fstat(f.fileno()).st_size
        if n > size - 8:
            raise ValueError(f"{path}: header of {n} bytes in a file of {size}")
        header = json.loads(f.read(n))
        data = f.read()
    metadata = header.pop("__metadata__", None) or {}
    tensors = OrderedDict()
    for key, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, end = info["data_offsets"]
        if not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: tensor {key!r} lies outside the data")
        dtype, shape = info["dtype"], info["shape"]
        if dtype == "BF16":
            u16 = np.frombuffer(data[begin:end], dtype="<u2").astype(np.uint32) << 16
            array = u16.view(np.float32)
        elif dtype in _SAFETENSORS_DTYPES:
            array = np.frombuffer(data[begin:end], dtype=_SAFETENSORS_DTYPES[dtype])
        else:
            raise ValueError(f"{path}: tensor {key!r} has dtype {dtype}, not a float")
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: tensor {key!r} holds {array.size} values, shape {shape}")
        tensors[key] = torch.from_numpy(array.astype(np.float32).reshape(shape))
    return tensors, metadata


# --- The Python original's checkpoints ------------------------------------------------------


def original_key(ours: str) -> str | None:
    """The original's state_dict key of our parameter ``ours`` (src/interop/torch.rs's table),
    or None for a parameter outside the mapping."""
    p = ours.split(".")

    def attention(rest: list[str]) -> str | None:
        if len(rest) == 2 and rest[0] in ("norm", "to_q", "to_kv"):
            return f"{rest[0]}.{rest[1]}"
        if len(rest) == 2 and rest[0] == "to_out":
            return f"to_out.0.{rest[1]}"
        return None

    if p[0] in ("wsi_embedder", "rna_embedder") and p[1] in ("cls_token", "pos_embedding"):
        return ours
    if p[0] == "rna_embedder" and len(p) == 3:
        i = {"input_norm": 0, "project": 1, "token_norm": 3}.get(p[1])
        return None if i is None else f"rna_embedder.to_rna_embedding.{i}.{p[2]}"
    if p[:2] == ["encoder", "blocks"] and p[3] in ("wsi_enc", "rna_enc"):
        base = f"bimodal_encoder.layers.{p[2]}.{0 if p[3] == 'wsi_enc' else 1}"
        rest = p[4:]
        if rest[0] == "norm":
            return f"{base}.norm.{rest[1]}"
        if rest[0] == "layers" and rest[2] == "attn":
            inner = attention(rest[3:])
            return None if inner is None else f"{base}.layers.{rest[1]}.0.{inner}"
        if rest[0] == "layers" and rest[2] == "ff" and len(rest) == 5:
            i = {"norm": 0, "fc1": 1, "fc2": 4}.get(rest[3])
            return None if i is None else f"{base}.layers.{rest[1]}.1.net.{i}.{rest[4]}"
        return None
    if p[:2] == ["encoder", "blocks"] and p[3] == "cross" and p[4] == "layers":
        side = {"wsi_attend_rna": 0, "rna_attend_wsi": 1}.get(p[6])
        if side is None:
            return None
        base = f"bimodal_encoder.layers.{p[2]}.2.layers.{p[5]}.{side}"
        rest = p[7:]
        if rest[0] in ("project_in", "project_out") and len(rest) == 2:
            return f"{base}.{rest[0]}.{rest[1]}"
        if rest[0] == "attn":
            inner = attention(rest[1:])
            return None if inner is None else f"{base}.fn.{inner}"
        return None
    if p[0] in ("wsi_head", "rna_head") and len(p) == 3:
        # The original computed both modalities' logits with its WSI head.
        i = {"norm": 0, "linear": 1}.get(p[1])
        return None if i is None else f"wsi_mlp_head.{i}.{p[2]}"
    return None


def _from_original_keys(model: MedCrossViT, state: dict, source: str) -> OrderedDict:
    """``state`` (the original's keys) under ``model``'s keys; raises on a missing,
    misshapen or unexpected tensor (the original's unused ``rna_mlp_head`` is ignored)."""
    filled, used = OrderedDict(), set()
    for key, param in model.state_dict().items():
        theirs = original_key(key)
        if theirs is None:
            raise KeyError(f"no mapping for {key}")
        if theirs not in state:
            raise KeyError(f"{source}: missing tensor {theirs} (for {key})")
        value = state[theirs]
        if tuple(value.shape) != tuple(param.shape):
            raise ValueError(f"{theirs}: shape {tuple(value.shape)}, expected {tuple(param.shape)}")
        filled[key] = value.to(param.dtype)
        used.add(theirs)
    extra = sorted(k for k in state if k not in used and not k.startswith("rna_mlp_head."))
    if extra:
        raise KeyError(f"{source}: unexpected tensor {extra[0]}")
    return filled


def config_from_original(args: dict, state: dict) -> ModelConfig:
    """The configuration for the original's constructor arguments, with the
    cross-attention head count the checkpoint was built with (the original passed its
    cross-attention depth where the head count belongs)."""
    a = dict(args)
    a.pop("return_attn", None)
    if "cross_atnn_depth" in a:
        a["cross_attn_depth"] = a.pop("cross_atnn_depth")
    inner = state["bimodal_encoder.layers.0.2.layers.0.0.fn.to_q.weight"].shape[0]
    dim_head = a.get("cross_attn_dim_head", 64)
    if inner % dim_head:
        raise ValueError(f"cross-attention query width {inner} is not a multiple of {dim_head}")
    a["cross_attn_heads"] = inner // dim_head
    # The original's defaults (depth 3, encoder depth 4, ...) are the dataclass's.
    return ModelConfig(**a)


def load_original(checkpoint: str, args_json: str, sdpa: bool = False) -> MedCrossViT:
    """A model filled from the original's ``torch.save(model.state_dict())`` and its
    constructor arguments (a JSON file); raises on a missing, misshapen or unexpected tensor."""
    state: Any = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "state_dict" in state and not any(k.startswith("wsi_embedder.") for k in state):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    with open(args_json) as f:
        args = json.load(f)
    model = MedCrossViT(config_from_original(args, state), sdpa=sdpa)
    model.load_state_dict(_from_original_keys(model, state, checkpoint))
    return model
