"""`lenet5 report RUN_DIR`: pictures of a run and one page that holds them; given a study
directory (`lenet5 sweep`), the study's pictures instead."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="pictures and an HTML page of a run, or of a sweep's study")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR|STUDY_DIR")
    parser.add_argument("--index", type=int, default=0, help="test image shown in the feature maps (0)")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--storage", metavar="URL", help="a study's database, when it is not in STUDY_DIR")
    parser.set_defaults(handler=report_command)


def report_command(args) -> int:
    from ..sweep.study import is_study_dir

    if is_study_dir(args.run_dir) or args.storage:
        from ..sweep.plots import make_study_report

        page = make_study_report(args.run_dir, args.storage)
    else:
        from ..report import make_report

        page = make_report(args.run_dir, index=args.index, data_dir=args.data_dir)
    print(f"report written: {page}")
    return 0
