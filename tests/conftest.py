"""Shared test helpers: tiny settings and a runner for real cells."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TESTS_DIR = Path(__file__).resolve().parent
DATA_DIR = TESTS_DIR / "data"


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """tfbench's cache folder (the TensorFlow probe's stored answer, bottleneck features)
    in this session's temporary folder, not the user's ~/.cache; tests that need their
    own set TFBENCH_CACHE_DIR themselves."""
    if "TFBENCH_CACHE_DIR" not in os.environ:
        os.environ["TFBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("tfbench-cache"))


@pytest.fixture
def data_dir() -> Path:
    return DATA_DIR
