"""Whether a device, engine or sampler can run here, and why not.

One small value shared by engines and samplers: a missing piece is reported
as ``Availability(False, reason)`` and becomes a skipped cell or a skipped
sampler with that reason, never a crash and never a fake number.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Availability:
    """``ok`` and, when not ok, the reason shown to the user."""

    ok: bool
    reason: str = ""
