"""Keras-3-on-PyTorch MobileNetV2 batch-1 eager inference at a given thread count.

A diagnostic for ``docs/engines.md``: PyTorch's OpenMP pool degrades when the cores
are oversubscribed, which shows as slow keras-torch cells on a loaded machine.

    python benchmarks/keras_torch_threads.py --threads 1
    python benchmarks/keras_torch_threads.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calls", type=int, default=8)
    args = p.parse_args(argv)
    os.environ["KERAS_BACKEND"] = "torch"
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import keras
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    model = keras.applications.MobileNetV2(include_top=False, weights=None,
                                           input_shape=(224, 224, 3), pooling="avg")
    x = keras.ops.convert_to_tensor(np.random.default_rng(0).random((1, 224, 224, 3),
                                                                    dtype=np.float32))
    w, xi = torch.randn(96, 1, 3, 3), torch.randn(1, 96, 112, 112)
    with torch.no_grad():
        calls = []
        for _ in range(args.calls):
            start = time.perf_counter()
            model(x, training=False)
            calls.append(1e3 * (time.perf_counter() - start))
        convs = []
        for _ in range(3):
            start = time.perf_counter()
            F.conv2d(xi, w, groups=96, padding=1)
            convs.append(1e3 * (time.perf_counter() - start))
    print(f"threads {args.threads}: MobileNetV2 calls (ms) {', '.join(f'{c:.0f}' for c in calls)}")
    print(f"threads {args.threads}: depthwise conv2d 96x112x112 (ms) "
          f"{', '.join(f'{c:.1f}' for c in convs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
