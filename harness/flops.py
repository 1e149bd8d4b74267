"""Analytic FLOP count of a Keras model's convolution and dense layers.

A cross-check for the profiler's op FLOPs: published model costs (MobileNetV2
~0.3 GMAC, InceptionV3 ~5.7 GMAC per 224/299 image) count exactly these
layers. One multiply-add is two FLOPs. Works on built Keras 3 and tf_keras
models by reading layer attributes and static shapes, without importing
TensorFlow itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LayerFlops:
    name: str
    kind: str
    flops_per_image: float
    trainable: bool


def _shape(tensor: Any) -> tuple[int, ...]:
    return tuple(int(d) if d is not None else 1 for d in tuple(tensor.shape)[1:])


def _leaf_layers(model: Any) -> Iterator[Any]:
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers") and getattr(layer, "layers", None):
            yield from _leaf_layers(layer)
        else:
            yield layer


def layer_flops(layer: Any) -> LayerFlops | None:
    """FLOPs per image of one conv/dense layer (None for other layers)."""
    kind = type(layer).__name__
    if kind not in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"):
        return None
    try:
        out = _shape(layer.output)
        inp = _shape(layer.input)
    except (AttributeError, ValueError):  # a layer never called on a symbolic input
        return None
    trainable = bool(layer.trainable)
    if kind == "Dense":
        flops = 2.0 * math.prod(inp) * out[-1]
    else:
        kh, kw = layer.kernel_size
        spatial = math.prod(out[:-1])
        cin = inp[-1]
        if kind == "Conv2D":
            flops = 2.0 * spatial * out[-1] * kh * kw * cin / getattr(layer, "groups", 1)
        elif kind == "DepthwiseConv2D":
            flops = 2.0 * spatial * out[-1] * kh * kw
        else:  # SeparableConv2D: depthwise, then a 1x1 pointwise
            mult = getattr(layer, "depth_multiplier", 1)
            flops = 2.0 * spatial * (cin * mult * kh * kw + cin * mult * out[-1])
    return LayerFlops(layer.name, kind, flops, trainable)


def model_flops(model: Any) -> list[LayerFlops]:
    """Every conv/dense layer of a (possibly nested) Keras model with its FLOPs."""
    return [f for f in (layer_flops(layer) for layer in _leaf_layers(model)) if f]


def analytic_counts(model: Any, batch_size: int, mode: str) -> dict[str, float]:
    """Forward FLOPs per image and the step's estimate: ``batch × forward`` for infer;
    for train, plus ``2 × forward`` of each trainable layer (its input and weight
    gradients), an estimate that still counts the first layer's unneeded input gradient."""
    layers = model_flops(model)
    forward = sum(f.flops_per_image for f in layers)
    step = forward
    if mode == "train":
        step += 2.0 * sum(f.flops_per_image for f in layers if f.trainable)
    return {"analytic_forward_flops_per_image": forward,
            "analytic_flops_per_step": step * batch_size}
