"""`lenet5 predict RUN_DIR IMAGE...`: classify people's images of digits."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..errors import Lenet5Error
from ..text import one_line, shown_name
from .arguments import positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="classify images of handwritten digits")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE",
                        help="PNG, JPEG, ... files, or directories (their image files, sorted)")
    parser.add_argument("--top", type=positive_int, default=3, help="how many classes to show (3)")
    parser.add_argument("--json", action="store_true", help="print one JSON document with an entry per image")
    parser.set_defaults(handler=predict_command)


def predict_command(args) -> int:
    """Classify each image (a directory: its image files); one batched forward pass for all.

    An image that cannot be read is reported in one line and the others are still classified;
    the exit status is then 1.
    """
    from ..image import prepare_digit
    from ..run.classifier import CONFIDENCE_DIGITS, load, ranked

    classifier = load(args.run_dir)
    names = classifier.class_names
    paths, skipped, failures = _image_paths(args.images)
    digits, errors = {}, {}
    for path in paths:
        try:
            digits[path] = prepare_digit(path)
        except Lenet5Error as error:
            errors[path] = str(error)
            print(f"lenet5: error: {_naming(path, str(error))}", file=sys.stderr)
    read = list(digits)
    rows = classifier.probabilities(np.stack([digits[path].pixels for path in read])) if read else []
    probabilities = dict(zip(read, rows))
    top = min(args.top, len(names))
    entries = []
    for path in paths:
        if path in errors:
            entries.append({"file": str(path), "error": errors[path]})
            continue
        digit, row = digits[path], probabilities[path]
        best = ranked(row, top)
        entries.append({"file": str(path), "label": int(best[0]), "name": names[best[0]],
                        "probabilities": [float(p) for p in row],
                        "top": [{"label": int(i), "name": names[i], "probability": float(row[i])} for i in best],
                        "preprocessing": {"verdict": digit.verdict, "confidence": round(digit.confidence, CONFIDENCE_DIGITS)}})
    if args.json:
        print(json.dumps({"run": str(args.run_dir), "model": classifier.name, "images": entries,
                          "skipped": [str(path) for path in skipped]}, indent=2))
    else:
        for entry in entries:
            if "error" in entry:
                continue
            ranked = "  ".join(f"{item['name']} {item['probability'] * 100:5.1f}%" for item in entry["top"])
            verdict = entry["preprocessing"]
            doubt = "" if verdict["verdict"] == "one digit" else \
                f"   [preprocessing: {verdict['verdict']}, confidence {verdict['confidence']:.2f}]"
            print(f"{shown_name(entry['file'])}: {entry['name']}   ({ranked}){doubt}")
    return 1 if errors or failures else 0


def _naming(path: Path, message: str) -> str:
    """An image's error on one line, its file named as the result lines name it."""
    if message.startswith(str(path)):
        message = shown_name(path) + message[len(str(path)):]
    return one_line(message)


def _image_paths(arguments: list[Path]) -> tuple[list[Path], list[Path], int]:
    """(images to classify, files skipped, directories without images): a file argument as
    given (a wrong one is reported when read); a directory's image files, sorted, with a note
    on stderr for each other file."""
    from ..image import image_extensions

    extensions = image_extensions()
    paths, skipped, failures = [], [], 0
    for argument in arguments:
        if not argument.is_dir():
            paths.append(argument)
            continue
        found = 0
        for entry in sorted(argument.iterdir()):
            if entry.is_file() and entry.suffix.lower() in extensions:
                paths.append(entry)
                found += 1
            else:
                skipped.append(entry)
                kind = "a directory" if entry.is_dir() else "not an image file"
                print(f"lenet5: note: skipped {shown_name(entry)} ({kind})", file=sys.stderr)
        if not found:
            print(f"lenet5: error: {shown_name(argument)}: no image files in this directory", file=sys.stderr)
            failures += 1
    return paths, skipped, failures
