"""Real image folders for tests: one sub-folder of small PNG files per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def image_folder(root: Path, seed: int, classes: tuple[str, ...] = ("daisy", "tulips"),
                 per_class: int = 3) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    return root
