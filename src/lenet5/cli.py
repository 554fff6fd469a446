"""The `lenet5` command line: one sub-command per module, each registering itself here.

A `Lenet5Error` becomes one line on stderr and exit code 1; a bad argument exits with 2
(argparse's convention).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .errors import Lenet5Error
from .text import one_line

Registrar = Callable[[argparse._SubParsersAction], None]


def _registrars() -> list[Registrar]:
    # Imported lazily so `lenet5 --help` stays fast and one command's optional
    # dependency (Pillow, matplotlib) never breaks another command.
    from .data import commands as data_commands

    registrars: list[Registrar] = [data_commands.register]
    for module_name in ("lenet5.commands", "lenet5.report", "lenet5.serve.commands", "lenet5.export.commands"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as error:
            # Only a command module that is absent is skipped; one that fails to import
            # something else is a bug to see. Each imports its optional library lazily.
            if not module_name.startswith(str(error.name)):
                raise
            continue
        registrars.append(module.register)
    return registrars


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line (the usage is one --help away), as
    every other error of the command line is. Subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = OneLineParser(
        prog="lenet5", description="LeNet-5 from scratch in NumPy: train, evaluate, predict."
    )
    parser.add_argument("--version", action="version", version=f"lenet5 {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _registrars():
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
