"""The `lenet5` command line: one sub-command per module of this package, registered here.

A `Lenet5Error` becomes one line on stderr and exit code 1; a bad argument exits with 2
(argparse's convention).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import Lenet5Error
from ..text import one_line
from . import data, evaluate, export, gradcheck, predict, report, serve, summary, sweep, train

# One module per sub-command, in the order `lenet5 --help` lists them. Each imports its optional
# library (Pillow, matplotlib, uvicorn, onnx) inside its handler, so one missing extra never
# breaks another command, and `lenet5 --help` needs none of them.
COMMANDS = (data, train, evaluate, predict, summary, gradcheck, report, serve, export, sweep)


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line (the usage is one --help away), as
    every other error of the command line is. Subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = OneLineParser(
        prog="lenet5", description="LeNet-5 from scratch in NumPy: train, evaluate, predict."
    )
    parser.add_argument("--version", action="version", version=f"lenet5 {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # `lenet5 sweep` passes the options it does not know to each trial's `lenet5 train`.
    args, unknown = parser.parse_known_args(argv)
    unknown = [option for option in unknown if option != "--"]
    if unknown and not sweep.main_handles_unknown(args, unknown):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.handler(args) or 0)
    except Lenet5Error as error:
        print(f"lenet5: error: {one_line(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lenet5: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
