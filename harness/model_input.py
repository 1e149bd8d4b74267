"""The input size of a model given as a file, read from the file itself (no TensorFlow).

A ``.keras`` file is a zip holding ``config.json``; a legacy ``.h5`` file holds the
same JSON in its ``model_config`` attribute. Both name the model's input shape,
``[null, H, W, C]``. A SavedModel directory or a TF Hub handle carries its input
signature only in a protocol buffer that takes TensorFlow to read, so for those
(and for a file whose input size is not fixed) the size must be given: never
guessed.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import UserError

GIVE_IT = ("set input_size (matrix input_sizes = [N] in a profile, or --input-sizes N on the "
           "command line)")


def file_input_size(model: str) -> int:
    """The square input size (pixels) a model file declares; `UserError` when it cannot be
    known without loading the model, naming the setting that gives it."""
    if model.startswith("hub:"):
        raise UserError(f"input_size: not known for {model!r} (a TF Hub model's input size is "
                        f"in its documentation, not readable before loading it); {GIVE_IT}")
    path = Path(model)
    if path.suffix not in (".keras", ".h5"):
        raise UserError(f"input_size: not known for {model!r} (a SavedModel's input signature "
                        f"cannot be read without TensorFlow); {GIVE_IT}")
    config = _keras_config(path) if path.suffix == ".keras" else _h5_config(path)
    shape = next(_input_shapes(config), None)
    if shape is None:
        raise UserError(f"input_size: {model!r} declares no input shape; {GIVE_IT}")
    if len(shape) != 4 or shape[3] != 3:
        raise UserError(f"input_size: {model!r} takes input shape {shape}; tfbench feeds "
                        "images of shape [batch, N, N, 3]")
    height, width = shape[1], shape[2]
    if not isinstance(height, int) or not isinstance(width, int):
        raise UserError(f"input_size: {model!r} accepts any image size (input shape {shape}); "
                        f"{GIVE_IT}")
    if height != width:
        raise UserError(f"input_size: {model!r} takes {height}x{width} images; tfbench feeds "
                        "square images (N x N)")
    return height


def _keras_config(path: Path) -> Any:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise UserError(f"model: {str(path)!r} is not a readable .keras file ({exc})") from None


def _h5_config(path: Path) -> Any:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as exc:
        raise UserError(f"model: {str(path)!r} is not a readable HDF5 file ({exc})") from None
    if raw is None:
        raise UserError(f"input_size: {str(path)!r} holds weights only (no model_config); "
                        f"{GIVE_IT}")
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _input_shapes(node: Any) -> Iterator[list[Any]]:
    """Input shapes in a Keras model config, outermost first: InputLayer ``batch_shape``
    (Keras 3) or ``batch_input_shape`` (Keras 2), then a ``build_config`` input shape."""
    if isinstance(node, dict):
        if node.get("class_name") == "InputLayer":
            cfg = node.get("config", {})
            shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
            if isinstance(shape, list):
                yield shape
        for key, value in node.items():
            if key != "build_config":
                yield from _input_shapes(value)
        build = node.get("build_config")
        if isinstance(build, dict) and isinstance(build.get("input_shape"), list):
            yield build["input_shape"]
    elif isinstance(node, list):
        for item in node:
            yield from _input_shapes(item)
