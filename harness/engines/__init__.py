"""Inference/training engines behind one narrow protocol.

The engine table (`ENGINES`, `EngineSpec`) is static data in `harness.engine_table`,
re-exported here, so configuration validates engines and their options without
importing any engine. Each engine's code lives in its own module, imported only
inside a worker process; adding an engine means adding a module and one
`EngineSpec` line in the table.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from harness.engine_table import ENGINES, EngineSpec, OptionSpec

if TYPE_CHECKING:
    from harness.engines.base import Engine

__all__ = ["ENGINES", "EngineSpec", "OptionSpec", "load_engine"]


def load_engine(name: str) -> type[Engine]:
    """Import an engine's module (its framework may be imported) and return its class."""
    spec = ENGINES[name]
    module = importlib.import_module(spec.module)
    cls: type[Engine] = module.engine_class(name)
    return cls
