"""`lenet5 data fetch` and `lenet5 data info`."""

from __future__ import annotations

from pathlib import Path

from .registry import DATASETS


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="fetch and inspect datasets")
    commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    for action, handler, help_text in (("fetch", fetch_command, "fetch a dataset into the cache, verified"),
                                       ("info", info_command, "where a dataset's files are, checksums, counts")):
        parser = commands.add_parser(action, help=help_text)
        parser.add_argument("--dataset", default="mnist", help=f"one of: {', '.join(DATASETS)} (mnist)")
        parser.add_argument("--data-dir", type=Path, help="a directory holding the four IDX files")
        parser.set_defaults(handler=handler)


def fetch_command(args) -> int:
    from .fetch import locate

    paths = locate(args.dataset, data_dir=args.data_dir, fetch=True)
    directory = next(iter(paths.values())).parent
    print(f"{args.dataset}: {len(paths)} files verified (SHA-256) in {directory}")
    return 0


def info_command(args) -> int:
    from .dataset import dataset_info

    info = dataset_info(args.dataset, data_dir=args.data_dir, fetch=False)
    print(f"{info['dataset']}: {info['directory']}")
    for file_name, entry in info["files"].items():
        print(f"  {file_name:<26} sha256 {entry['sha256']}  verified")
    names = info["class_names"]
    width = max(len(n) for n in names)
    for split in ("train", "test"):
        shape = " x ".join(map(str, info[split]["images"]))
        print(f"{split}: {shape} images")
        for name, count in zip(names, info[split]["class_counts"]):
            print(f"  {name:<{width}}  {count:>6,}")
    return 0
