"""`lenet5 data fetch` and `lenet5 data info`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.registry import DATASETS
from ..errors import DataError


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="fetch and inspect datasets",
                                 description="Fetch datasets into the cache, verified, and inspect them.")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    for action, handler, help_text in (
        ("fetch", fetch_command, "fetch a dataset into the cache (or verify --data-dir), checking SHA-256"),
        ("info", info_command, "where a dataset's files are, their SHA-256, shapes and class counts"),
    ):
        parser = actions.add_parser(action, help=help_text, description=help_text)
        parser.add_argument("--dataset", default="mnist", metavar="NAME",
                            help=f"one of: {', '.join(DATASETS)} (default: mnist)")
        parser.add_argument("--data-dir", type=Path, metavar="DIR",
                            help="a directory holding the four IDX files, raw or .gz (default: "
                                 "$LENET5_DATA_DIR, else the cache)")
        parser.set_defaults(handler=handler)


def fetch_command(args: argparse.Namespace) -> int:
    from ..data.fetch import locate

    paths = locate(args.dataset, data_dir=args.data_dir, fetch=True)
    directory = next(iter(paths.values())).parent
    print(f"{args.dataset}: {len(paths)} files verified (SHA-256) in {directory}")
    return 0


def info_command(args: argparse.Namespace) -> int:
    from ..data.dataset import dataset_info

    info = dataset_info(args.dataset, data_dir=args.data_dir)
    where = "the cache" if info["cache"] else "data directory"
    print(f"{info['dataset']}: {info['directory']} ({where})")
    width = max(map(len, info["files"]))
    for file_name, entry in info["files"].items():
        if entry["path"] is None:
            status = "missing"
        elif entry["verified"]:
            status = f"sha256 {entry['sha256']}  verified"
        else:
            status = f"sha256 {entry['sha256'] or '?'}  MISMATCH (expected {entry['expected']})"
        shown = Path(entry["path"]).name if entry["path"] else file_name
        print(f"  {shown:<{width + 3}}  {status}")
    if not info["complete"]:
        missing = sum(entry["path"] is None for entry in info["files"].values())
        failing = sum(entry["path"] is not None and not entry["verified"] for entry in info["files"].values())
        remedy = f"run `lenet5 data fetch --dataset {info['dataset']}`" if info["cache"] else \
            "put the original IDX files there (raw or .gz)"
        raise DataError(f"{info['dataset']} is incomplete in {info['directory']}: {missing} file(s) missing, "
                        f"{failing} failing their checksum; {remedy}")
    names, train, test = info["class_names"], info["train"], info["test"]
    for split, entry in (("train", train), ("test", test)):
        count, *image = entry["images"]
        print(f"{split}: {count:,} images of {' x '.join(map(str, image))}")
    width = max(len("class"), *map(len, names))
    print(f"  {'class':<{width}}  {'train':>7}  {'test':>7}")
    for name, n_train, n_test in zip(names, train["class_counts"], test["class_counts"]):
        print(f"  {name:<{width}}  {n_train:>7,}  {n_test:>7,}")
    print(f"  {'total':<{width}}  {sum(train['class_counts']):>7,}  {sum(test['class_counts']):>7,}")
    return 0
