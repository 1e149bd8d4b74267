"""tfbench: per-step training and inference benchmarks for TensorFlow image models."""

__version__ = "0.1.0"
