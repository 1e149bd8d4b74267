"""The ``tfbench`` command: run, plot, report, compare, env.

Each sub-command lives in its own module, which exposes
``configure_parser(parser)`` and ``run_command(args) -> int``. Modules are
imported only when their command runs, so ``tfbench plot`` never imports
TensorFlow. A `UserError` from anywhere becomes one message and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from harness import __version__
from harness.errors import NoSpace, UserError

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("harness.commands.run", "run the benchmark matrix of a profile"),
    "plot": ("harness.plots", "draw comparison charts from results directories"),
    "report": ("harness.report", "write a Markdown (or HTML) writeup from results directories"),
    "compare": ("harness.compare", "regression verdicts: baseline run(s) vs a candidate run"),
    "classify": ("harness.classify", "label images with a saved .keras classifier, timed"),
    "ab": ("harness.commands.ab",
           "interleaved A/B of a baseline and a candidate environment: regression verdicts"),
    "env": ("harness.environment",
            "what this machine offers: devices, TF build, engines, samplers"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that raises UserError instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


def build_parser(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, str | None]:
    parser = _Parser(prog="tfbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tfbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module_name).configure_parser(p)
    return parser, chosen


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, chosen = build_parser(argv)
        if chosen is None:
            if any(a in ("-h", "--help", "--version") for a in argv) or not argv:
                parser.parse_args(argv or ["--help"])
                return 0
            parser.parse_args(argv)  # reports the unknown command
            return 2
        args = parser.parse_args(argv)
        module = importlib.import_module(COMMANDS[chosen][0])
        code: int = module.run_command(args)
        return code
    except UserError as exc:
        print(f"tfbench: error: {exc.message}", file=sys.stderr)
        return 2
    except NoSpace as exc:
        print(f"tfbench: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        # Ctrl-C, or SIGTERM/SIGHUP turned into `lifecycle.Interrupted`: 128 + the signal.
        print("tfbench: interrupted; finished cells are kept", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
