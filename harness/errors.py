"""The one exception type for bad user input.

A `UserError` is raised wherever input is validated and caught only in
`harness.cli.main`, which prints its message and exits with code 2. Anything
else that escapes is a bug and should crash loudly.
"""

from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """Bad input from the user: a message that names the field, the value and what is allowed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @classmethod
    def invalid(cls, field: str, value: object, allowed: str | Iterable[object]) -> UserError:
        """Build the standard message: ``field: 'value' is not valid; allowed: ...``."""
        if not isinstance(allowed, str):
            allowed = ", ".join(str(a) for a in allowed)
        return cls(f"{field}: {value!r} is not valid; allowed: {allowed}")


class NoSpace(Exception):
    """A write failed because the disk (or quota) is full: the run stops, exit code 1.

    Raised by the records writers, which leave no partial row or temp file behind."""

    def __init__(self, directory: object, file: object) -> None:
        self.message = (f"no space left on {directory} while writing {file}; "
                        "finished cells are kept")
        super().__init__(self.message)
