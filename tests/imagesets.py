"""Generated, learnable image folders for the accuracy tests (real PNG files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (40, 50, 210)}


def colour_folder(root: Path, per_class: int = 30, size: int = 32, seed: int = 0) -> Path:
    """Three classes of 32x32 PNG images: a noisy field of one dominant colour each, so a
    tiny model can learn them in a few epochs."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, rgb in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.normal(0.0, 40.0, (size, size, 3))
            pixels = np.clip(np.asarray(rgb, float) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{i:03d}.png")
    return root
