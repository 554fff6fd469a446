"""Loading a dataset: verified files in, uint8 images and int64 labels out."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ChecksumError, DataError
from .fetch import cache_dir, find_in_dir, locate, sha256_file, verify
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from .registry import SPLIT_FILES, DatasetInfo, get_dataset


@dataclass
class Dataset:
    """One dataset in memory. Shape: images (N, 28, 28) uint8, labels (N,) int64."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    mean: float  # of the training pixels scaled to [0, 1], for preprocess(method="standardize")
    std: float
    source_dir: Path


def load_dataset(name: str = "mnist", data_dir=None, fetch: bool = True, mirrors=None, sources=None) -> Dataset:
    """The whole dataset, verified, from `data_dir`, the cache, or fetched (see `fetch.locate`)."""
    info = get_dataset(name)
    paths = locate(name, data_dir=data_dir, fetch=fetch, mirrors=mirrors, sources=sources)
    splits = {split: _load_split(info, paths, split) for split in ("train", "test")}
    return Dataset(name, *splits["train"], *splits["test"], list(info.class_names), info.mean, info.std,
                   paths[SPLIT_FILES["train_images"]].parent)


def _load_split(info: DatasetInfo, paths: dict[str, Path], split: str,
                mmap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    image_path, label_path = paths[SPLIT_FILES[f"{split}_images"]], paths[SPLIT_FILES[f"{split}_labels"]]
    images = read_idx(image_path, IMAGES_MAGIC, mmap=mmap)
    labels = read_idx(label_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(f"{image_path} holds {len(images):,} images but {label_path} holds {len(labels):,} labels")
    expected = (info.count(SPLIT_FILES[f"{split}_images"]), *info.image_shape)
    if images.shape != expected:
        raise DataError(f"{image_path}: expected images of shape {expected}, found {images.shape}")
    if labels.size and labels.max() >= len(info.class_names):
        raise DataError(f"{label_path}: label {labels.max()} outside 0..{len(info.class_names) - 1}")
    return images, labels.astype(np.int64)


def dataset_info(name: str, data_dir=None) -> dict:
    """What `lenet5 data info` shows; never fetches and never changes the cache.

    Returns a dict: dataset, directory, whether it is the cache, and per file its path (None
    if absent), SHA-256 found and expected, and `verified`. When every file verifies it also
    has, per split, the images shape and class counts; `complete` says whether it does.
    """
    info = get_dataset(name)
    explicit = data_dir if data_dir not in (None, "") else os.environ.get("LENET5_DATA_DIR")
    directory = Path(explicit) if explicit else cache_dir(name)
    files = {}
    for file_name, expected in info.sha256.items():
        path = find_in_dir(directory, file_name) if directory.is_dir() else None
        entry = {"path": str(path) if path else None, "expected": expected, "sha256": None, "verified": False}
        if path is not None:
            try:
                verify(path, info, file_name)
                entry.update(sha256=expected, verified=True)
            except ChecksumError as error:
                entry["problem"] = str(error)
                try:
                    entry["sha256"] = sha256_file(path, limit=info.file_size(file_name) + 1)
                except (OSError, EOFError, zlib.error):
                    pass
        files[file_name] = entry
    result = {"dataset": name, "directory": str(directory), "cache": not explicit, "files": files,
              "class_names": list(info.class_names), "mean": info.mean, "std": info.std,
              "complete": all(entry["verified"] for entry in files.values())}
    if result["complete"]:
        paths = {file_name: Path(entry["path"]) for file_name, entry in files.items()}
        for split in ("train", "test"):
            images, labels = _load_split(info, paths, split, mmap=True)
            result[split] = {"images": list(images.shape),
                             "class_counts": np.bincount(labels, minlength=len(info.class_names)).tolist()}
    return result
