#!/usr/bin/env python3
"""Writes a synthetic whole-slide image that looks like an H&E section (pink tissue islands
with purple, nucleus-like texture on white glass) as a tiled pyramidal TIFF that OpenSlide
reads, and a TRIDENT-style tile-feature file of tiles on its tissue.

Used for the README's heatmap picture and for timing `heatmap` on a slide of real size
(docs/heatmaps.md). Every level is drawn from the same function of level-0 position, so the
script never holds a level in memory: tiles are written one by one.

    pip install numpy tifffile h5py
    python3 scripts/make_synthetic_slide.py --width 100000 --height 80000 --tiles 20000 \\
        --out /tmp/big   # about 10 minutes and 1-2 GB on 2 cores

writes OUT/slides/{slide}.tiff and OUT/features/{slide}.h5 (8 features per tile).
"""

import argparse
import os

import h5py
import numpy as np
import tifffile

TILE = 512  # TIFF tile side
PATCH = 512  # feature tile side, level-0 pixels
MPP = 0.25


def smooth_grid(rng, shape, passes):
    """Random values on a coarse grid, smoothed by repeated 3x3 box blurs, scaled to [0, 1]."""
    g = rng.random(shape)
    for _ in range(passes):
        p = np.pad(g, 1, mode="edge")
        g = sum(p[i : i + shape[0], j : j + shape[1]] for i in range(3) for j in range(3)) / 9
    g -= g.min()
    return g / max(g.max(), 1e-9)


def sample(grid, x, y, width, height):
    """Bilinear sample of `grid` (spanning the slide) at level-0 positions x, y (arrays)."""
    gh, gw = grid.shape
    fx = np.clip(x / width * (gw - 1), 0, gw - 1.001)
    fy = np.clip(y / height * (gh - 1), 0, gh - 1.001)
    x0, y0 = fx.astype(int), fy.astype(int)
    ax, ay = fx - x0, fy - y0
    top = grid[y0, x0] * (1 - ax) + grid[y0, x0 + 1] * ax
    bottom = grid[y0 + 1, x0] * (1 - ax) + grid[y0 + 1, x0 + 1] * ax
    return top * (1 - ay) + bottom * ay


class Tissue:
    """The slide as a function of level-0 position."""

    def __init__(self, width, height, seed):
        rng = np.random.default_rng(seed)
        self.width, self.height = width, height
        self.shape = smooth_grid(rng, (40, 50), 6)
        self.stain = smooth_grid(rng, (160, 200), 3)
        self.cells = rng.random((997, 991))

    def mask(self, x, y):
        return sample(self.shape, x, y, self.width, self.height) > 0.38

    def pixels(self, x, y):
        """RGB uint8 at level-0 positions x, y (same-shape arrays)."""
        tissue = self.mask(x, y)
        stain = sample(self.stain, x, y, self.width, self.height)
        # Nucleus-like spots: a hashed cell grid of about 24 level-0 pixels.
        cx, cy = (x // 24).astype(np.int64), (y // 24).astype(np.int64)
        spot = self.cells[cy % 997, cx % 991] > 0.8
        pink = np.array([236, 168, 200])
        purple = np.array([110, 60, 150])
        t = (0.25 + 0.5 * stain)[..., None] * np.ones(3)
        colour = pink * (1 - t) + purple * t
        colour = np.where(spot[..., None], purple * 0.85, colour)
        glass = np.array([246, 244, 247])
        return np.where(tissue[..., None], colour, glass).astype(np.uint8)


def level_tiles(tissue, factor, width, height):
    """The tiles of the level with this downsample, row by row, for tifffile. Level-0 tiles
    are drawn at a quarter of their resolution and enlarged (the nuclei stay 24 pixels
    wide), and tiles with no tissue on a 17 x 17 grid of samples are plain glass: that keeps a
    100,000 x 80,000 slide to minutes."""
    step = max(1, 4 // factor)
    glass = np.broadcast_to(np.array([246, 244, 247], np.uint8), (TILE, TILE, 3))
    for ty in range(0, height, TILE):
        for tx in range(0, width, TILE):
            gy, gx = np.mgrid[0:17, 0:17] * (TILE / 16)
            if not tissue.mask((tx + gx) * factor, (ty + gy) * factor).any():
                yield glass
                continue
            ys, xs = np.mgrid[ty : ty + TILE : step, tx : tx + TILE : step]
            small = tissue.pixels(xs * factor + factor / 2, ys * factor + factor / 2)
            yield np.repeat(np.repeat(small, step, axis=0), step, axis=1)


def write_slide(path, tissue, levels):
    ppcm = 10_000 / MPP
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for i, factor in enumerate(levels):
            w, h = -(-tissue.width // factor), -(-tissue.height // factor)
            tif.write(
                level_tiles(tissue, factor, w, h),
                shape=(h, w, 3),
                dtype=np.uint8,
                photometric="rgb",
                tile=(TILE, TILE),
                compression="zlib",
                compressionargs={"level": 1},
                resolution=(ppcm / factor, ppcm / factor),
                resolutionunit="CENTIMETER",
                subfiletype=0 if i == 0 else 1,
                metadata=None,
            )


def write_features(path, tissue, count, seed):
    """TRIDENT-style features of up to `count` tiles on tissue (coords in level-0 pixels)."""
    ys, xs = np.mgrid[0 : tissue.height - PATCH + 1 : PATCH, 0 : tissue.width - PATCH + 1 : PATCH]
    xs, ys = xs.ravel(), ys.ravel()
    on = tissue.mask(xs + PATCH / 2, ys + PATCH / 2)
    coords = np.stack([xs[on], ys[on]], axis=1)[:count].astype(np.int64)
    # Features that change smoothly over the slide (its stain and position) plus noise, so a
    # model's attention forms regions as on real tissue.
    rng = np.random.default_rng(seed)
    centre_x, centre_y = coords[:, 0] + PATCH / 2, coords[:, 1] + PATCH / 2
    stain = sample(tissue.stain, centre_x, centre_y, tissue.width, tissue.height)
    smooth = np.stack(
        [
            4 * stain - 2,
            np.sin(centre_x / tissue.width * 6.3),
            np.cos(centre_y / tissue.height * 6.3),
            2 * sample(tissue.shape, centre_x, centre_y, tissue.width, tissue.height) - 1,
        ],
        axis=1,
    )
    feats = np.concatenate([smooth, smooth * 0.5], axis=1)
    feats = (feats + 0.05 * rng.standard_normal(feats.shape)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=feats)
        ds = f.create_dataset("coords", data=coords)
        ds.attrs["patch_size"] = np.int64(PATCH)
        ds.attrs["patch_size_level0"] = np.int64(PATCH)
        ds.attrs["level0_magnification"] = np.int64(40)
        ds.attrs["target_magnification"] = np.int64(40)
    return len(coords)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=20000)
    p.add_argument("--height", type=int, default=16000)
    p.add_argument("--tiles", type=int, default=2000)
    p.add_argument("--slide", default="SYN-SLIDE-01Z-00-DX1")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    tissue = Tissue(a.width, a.height, a.seed)
    levels = [1]
    while max(a.width, a.height) // (levels[-1] * 4) >= 1024:
        levels.append(levels[-1] * 4)
    os.makedirs(os.path.join(a.out, "slides"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "features"), exist_ok=True)
    n = write_features(os.path.join(a.out, "features", a.slide + ".h5"), tissue, a.tiles, a.seed)
    write_slide(os.path.join(a.out, "slides", a.slide + ".tiff"), tissue, levels)
    print(f"{a.width} x {a.height} slide, levels {levels}, {n} tiles on tissue")


if __name__ == "__main__":
    main()
