"""A PyTorch twin of med-crossvit's model, for benchmarking only.

Written from the Rust model (src/model/, the authoritative definition of what is computed)
and docs/architecture.md; module and parameter names follow the Rust types, not the Python
original's. It computes what `MedCrossViT::forward` computes for the dense gene tokenizer,
mean or CLS pooling and bags without padding:

- TileEmbedder: CLS token prepended, + positional embedding[:, :1+n], dropout.
- RnaEmbedder (dense): LayerNorm(genes) -> Linear(genes -> genes*dim) -> [b, genes, dim]
  -> LayerNorm(dim) -> CLS prepended, + positional embedding, dropout.
- depth x FusionBlock: WSI Transformer, RNA Transformer, CrossTransformer.
  - Transformer: layers of x = x + Attention(x); x = x + FeedForward(x); final LayerNorm.
  - Attention: LayerNorm on the queries only, to_q (no bias), to_kv (no bias, keys then
    values), softmax(q k^T / sqrt(dim_head)), dropout on the weights, to_out, dropout.
  - FeedForward: LayerNorm, Linear, exact GELU, dropout, Linear, dropout.
  - CrossTransformer layer: the WSI CLS token, projected to rna_dim (when the widths
    differ), attends to [itself, gene tokens] at rna_dim and is added back; then the RNA
    CLS token likewise over [itself, tiles] at wsi_dim. Other tokens pass unchanged.
- Pooling (mean over all tokens incl. CLS, or the CLS token), one head per modality
  (LayerNorm, Linear), logits summed.

`load_original` fills the twin from a state_dict saved by the Python original and
reproduces the two defects that matter for such a checkpoint (docs/architecture.md): the
cross-attention head count is read from the checkpoint (the original used its cross-attention
depth there), and the WSI head's weights fill both heads.

Not covered (not needed to benchmark or to check parity): padding masks, missing
modalities, attention export, the per_gene and pathways tokenizers.
"""

from __future__ import annotations

import dataclasses
import json

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclasses.dataclass
class TwinConfig:
    """The fields of `MedCrossViTConfig` that the twin uses (same names, same defaults)."""

    num_classes: int
    wsi_dim: int
    rna_dim: int
    depth: int = 3
    wsi_num_tiles: int = 50
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

    @classmethod
    def seed(cls) -> "TwinConfig":
        """`MedCrossViTConfig::seed()`: the original's published arguments."""
        return cls(num_classes=2, wsi_dim=768, rna_dim=768, depth=4, wsi_enc_depth=2, rna_enc_depth=2)

    @classmethod
    def small(cls, num_classes: int, wsi_dim: int, rna_dim: int) -> "TwinConfig":
        """`MedCrossViTConfig::small()`."""
        return cls(
            num_classes=num_classes, wsi_dim=wsi_dim, rna_dim=rna_dim, depth=2,
            wsi_enc_depth=1, wsi_enc_heads=4, wsi_enc_mlp_dim=256, wsi_enc_dim_head=32,
            rna_enc_depth=1, rna_enc_heads=4, rna_enc_mlp_dim=256, rna_enc_dim_head=32,
            cross_attn_depth=1, cross_attn_heads=4, cross_attn_dim_head=32,
        )

    @classmethod
    def preset(cls, name: str, genes: int = 100) -> "TwinConfig":
        """The presets of `med-crossvit bench` (768-wide tiles, 50 per bag, 2 classes)."""
        if name == "seed":
            c = cls.seed()
        elif name == "small":
            c = cls.small(2, 768, 64)  # as src/run/spec.rs resolves it
        else:
            raise ValueError(f"unknown preset {name!r} (seed, small)")
        c.rna_num_genes = genes
        return c


def _normal_param(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape))


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

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention, or (with `context`) attention from `x` to [norm(x), context]."""
        b, q_len, _ = x.shape
        x = self.norm(x)
        kv_in = x if context is None else torch.cat((x, context), dim=1)
        q = self._split(self.to_q(x))
        k, v = self.to_kv(kv_in).chunk(2, dim=-1)
        k, v = self._split(k), self._split(v)
        if self.sdpa:
            p = self.attn_dropout.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            scores = torch.matmul(q * self.dim_head**-0.5, k.transpose(-1, -2))
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(x) + x
        return self.ff(x) + x


class Transformer(nn.Module):
    def __init__(self, dim, depth, heads, dim_head, mlp_dim, dropout, sdpa):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(dim, heads, dim_head, mlp_dim, dropout, sdpa) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            if self.checkpointing and torch.is_grad_enabled():
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
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

    def forward(self, cls: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.project_in is not None:
            cls = self.project_in(cls)
        out = self.attn(cls, context)
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

    def forward(self, wsi: torch.Tensor, rna: torch.Tensor):
        wsi_cls, wsi_tiles = wsi[:, :1], wsi[:, 1:]
        rna_cls, rna_genes = rna[:, :1], rna[:, 1:]
        for layer in self.layers:
            wsi_cls = layer.wsi_attend_rna(wsi_cls, rna_genes) + wsi_cls
            rna_cls = layer.rna_attend_wsi(rna_cls, wsi_tiles) + rna_cls
        return torch.cat((wsi_cls, wsi_tiles), dim=1), torch.cat((rna_cls, rna_genes), dim=1)


class FusionBlock(nn.Module):
    def __init__(self, c: TwinConfig, sdpa: bool):
        super().__init__()
        self.wsi_enc = Transformer(c.wsi_dim, c.wsi_enc_depth, c.wsi_enc_heads,
                                   c.wsi_enc_dim_head, c.wsi_enc_mlp_dim, c.dropout, sdpa)
        self.rna_enc = Transformer(c.rna_dim, c.rna_enc_depth, c.rna_enc_heads,
                                   c.rna_enc_dim_head, c.rna_enc_mlp_dim, c.dropout, sdpa)
        self.cross = CrossTransformer(c.wsi_dim, c.rna_dim, c.cross_attn_depth,
                                      c.cross_attn_heads, c.cross_attn_dim_head, c.dropout, sdpa)


class BiModalEncoder(nn.Module):
    def __init__(self, c: TwinConfig, sdpa: bool):
        super().__init__()
        self.blocks = nn.ModuleList(FusionBlock(c, sdpa) for _ in range(c.depth))
        self.checkpointing = False

    def forward(self, wsi: torch.Tensor, rna: torch.Tensor):
        for block in self.blocks:
            wsi = block.wsi_enc(wsi)
            rna = block.rna_enc(rna)
            if self.checkpointing and torch.is_grad_enabled():
                wsi, rna = checkpoint(block.cross, wsi, rna, use_reentrant=False)
            else:
                wsi, rna = block.cross(wsi, rna)
        return wsi, rna


class TileEmbedder(nn.Module):
    def __init__(self, dim: int, num_tiles: int, dropout: float):
        super().__init__()
        self.cls_token = _normal_param(1, 1, dim)
        self.pos_embedding = _normal_param(1, num_tiles + 1, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        b, n, _ = tiles.shape
        x = torch.cat((self.cls_token.expand(b, -1, -1), tiles), dim=1)
        return self.dropout(x + self.pos_embedding[:, : n + 1])


class RnaEmbedder(nn.Module):
    """The dense tokenizer (the original's)."""

    def __init__(self, genes: int, dim: int, dropout: float):
        super().__init__()
        self.dim = dim
        self.input_norm = nn.LayerNorm(genes)
        self.project = nn.Linear(genes, genes * dim)
        self.token_norm = nn.LayerNorm(dim)
        self.cls_token = _normal_param(1, 1, dim)
        self.pos_embedding = _normal_param(1, genes + 1, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, expression: torch.Tensor) -> torch.Tensor:
        b, g = expression.shape
        x = self.project(self.input_norm(expression)).view(b, g, self.dim)
        x = self.token_norm(x)
        x = torch.cat((self.cls_token.expand(b, -1, -1), x), dim=1)
        return self.dropout(x + self.pos_embedding)


class ClassifierHead(nn.Module):
    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


class MedCrossViTTwin(nn.Module):
    """`forward(tiles [b, n, wsi_dim], expression [b, genes])` -> logits `[b, num_classes]`."""

    def __init__(self, c: TwinConfig, sdpa: bool = False):
        super().__init__()
        if c.pool not in ("mean", "cls"):
            raise ValueError(f"pool must be mean or cls, not {c.pool!r}")
        self.config = c
        self.wsi_embedder = TileEmbedder(c.wsi_dim, c.wsi_num_tiles, c.emb_dropout)
        self.rna_embedder = RnaEmbedder(c.rna_num_genes, c.rna_dim, c.emb_dropout)
        self.encoder = BiModalEncoder(c, sdpa)
        self.wsi_head = ClassifierHead(c.wsi_dim, c.num_classes)
        self.rna_head = ClassifierHead(c.rna_dim, c.num_classes)

    def set_checkpointing(self, on: bool) -> None:
        """Recompute each encoder layer and each cross-transformer in the backward pass
        (torch.utils.checkpoint), as `--gradient-checkpointing` segments ours."""
        self.encoder.checkpointing = on
        for block in self.encoder.blocks:
            block.wsi_enc.checkpointing = on
            block.rna_enc.checkpointing = on

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1) if self.config.pool == "mean" else x[:, 0]

    def forward(self, tiles: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        if tiles.shape[1] > self.config.wsi_num_tiles:
            raise ValueError(f"{tiles.shape[1]} tiles, the positional embedding covers "
                             f"{self.config.wsi_num_tiles}")
        wsi = self.wsi_embedder(tiles)
        rna = self.rna_embedder(expression)
        wsi, rna = self.encoder(wsi, rna)
        return self.wsi_head(self._pool(wsi)) + self.rna_head(self._pool(rna))


# --- The Python original's checkpoints --------------------------------------------------


def original_key(ours: str) -> str | None:
    """The original's state_dict key of our parameter `ours` (src/interop/torch.rs's table),
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


def config_from_original(args: dict, state: dict) -> TwinConfig:
    """The twin's configuration for the original's constructor arguments, with the
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
    return TwinConfig(**a)


def load_original(checkpoint: str, args_json: str, sdpa: bool = False) -> MedCrossViTTwin:
    """A twin filled from the original's `torch.save(model.state_dict())` and its
    constructor arguments; raises on a missing, misshapen or unexpected tensor."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "state_dict" in state and not any(k.startswith("wsi_embedder.") for k in state):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    with open(args_json) as f:
        args = json.load(f)
    model = MedCrossViTTwin(config_from_original(args, state), sdpa=sdpa)
    ours = model.state_dict()
    filled, used = {}, set()
    for key, param in ours.items():
        theirs = original_key(key)
        if theirs is None:
            raise KeyError(f"no mapping for {key}")
        if theirs not in state:
            raise KeyError(f"{checkpoint}: missing tensor {theirs} (for {key})")
        value = state[theirs]
        if tuple(value.shape) != tuple(param.shape):
            raise ValueError(f"{theirs}: shape {tuple(value.shape)}, expected {tuple(param.shape)}")
        filled[key] = value.to(param.dtype)
        used.add(theirs)
    extra = sorted(k for k in state if k not in used and not k.startswith("rna_mlp_head."))
    if extra:
        raise KeyError(f"{checkpoint}: unexpected tensor {extra[0]}")
    model.load_state_dict(filled)
    return model


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

