"""`lenet5 report RUN_DIR`: pictures of a run and one page that holds them."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="pictures and an HTML page of a run")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--index", type=int, default=0, help="test image shown in the feature maps (0)")
    parser.add_argument("--data-dir", type=Path)
    parser.set_defaults(handler=report_command)


def report_command(args) -> int:
    from ..report import make_report

    page = make_report(args.run_dir, index=args.index, data_dir=args.data_dir)
    print(f"report written: {page}")
    return 0
