"""The `tinytrain` command line: one subcommand per module in tinytrain.commands."""

from __future__ import annotations

import argparse
import importlib
import sys

from tinytrain.errors import TinytrainError

# Each module in tinytrain/commands defines `register(subparsers)`; the parser it
# adds sets `func` to a callable taking the parsed arguments and returning an exit code.
COMMAND_MODULES: list[str] = [
    "import_model",
    "compile",
    "predict",
    "train",
    "info",
    "emulate",
    "stream",
    "eval",
    "check",
    "pull",
    "export",
    "checkpoint",
    "profile",
    "demo",
    "bench",
    "contrib",
    "tune_lr",
    "fleet",
]


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one `tinytrain: error:` sentence, like every other error (exit status 2)."""

    def error(self, message: str):  # type: ignore[override]
        message = message.rstrip(".")
        self.exit(2, f"tinytrain: error: {message} (see {self.prog} --help).\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="tinytrain", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"tinytrain.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TinytrainError as exc:
        print(f"tinytrain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
