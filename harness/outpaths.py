"""Checks on output paths given by the user (``plot --out``, ``report --out``): before any
work, a `UserError` naming the path when it cannot be written."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import UserError


def check_out_dir(path: Path, field: str = "--out") -> None:
    """A directory that exists and is writable, or can be created."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{field}: {str(path)!r} is a file; allowed: a directory path")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{field}: {str(existing)!r} is a file, so {str(path)!r} cannot be "
                        "created; allowed: a directory path")
    if not os.access(existing, os.W_OK | os.X_OK) or _read_only_mount(existing):
        raise UserError(f"{field}: {str(existing)!r} is not writable; allowed: a writable "
                        "directory")


def check_out_file(path: Path, field: str = "--out") -> None:
    """A file path whose directory can be written (the file itself may exist)."""
    if path.is_dir():
        raise UserError(f"{field}: {str(path)!r} is a directory; allowed: a file path")
    if path.exists() and (not os.access(path, os.W_OK) or _read_only_mount(path.parent)):
        raise UserError(f"{field}: {str(path)!r} is not writable; allowed: a writable file")
    check_out_dir(path.parent, field)


def _read_only_mount(path: Path) -> bool:
    """True on a read-only file system (root ignores permission bits, not this)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
