"""Loading a dataset: verified files in, uint8 images and int64 labels out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .fetch import locate
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from .registry import SPLIT_FILES, get_dataset


@dataclass
class Dataset:
    name: str
    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) int64
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    mean: float
    std: float
    source_dir: Path


def load_dataset(name: str = "mnist", data_dir=None, fetch: bool = True, mirrors=None, sources=None) -> Dataset:
    """The whole dataset, from `data_dir`, the cache, or fetched (see `fetch.locate`)."""
    info = get_dataset(name)
    paths = locate(name, data_dir=data_dir, fetch=fetch, mirrors=mirrors, sources=sources)
    arrays = {}
    for split in ("train", "test"):
        image_path = paths[SPLIT_FILES[f"{split}_images"]]
        label_path = paths[SPLIT_FILES[f"{split}_labels"]]
        images = read_idx(image_path, IMAGES_MAGIC)
        labels = read_idx(label_path, LABELS_MAGIC).astype(np.int64)
        if len(images) != len(labels):
            raise DataError(f"{image_path} holds {len(images):,} images but {label_path} holds {len(labels):,} labels")
        if labels.size and labels.max() >= len(info.class_names):
            raise DataError(f"{label_path}: label {labels.max()} outside 0..{len(info.class_names) - 1}")
        arrays[split] = (images, labels)
    return Dataset(name, *arrays["train"], *arrays["test"], list(info.class_names), info.mean, info.std,
                   next(iter(paths.values())).parent)


def dataset_info(name: str, data_dir=None, fetch: bool = False) -> dict:
    """Where the files are, their checksums, shapes and class counts (for `lenet5 data info`)."""
    info = get_dataset(name)
    dataset = load_dataset(name, data_dir=data_dir, fetch=fetch)
    paths = locate(name, data_dir=data_dir, fetch=False)
    return {
        "dataset": name,
        "directory": str(dataset.source_dir),
        "files": {file_name: {"path": str(paths[file_name]), "sha256": info.sha256[file_name], "verified": True}
                  for file_name in info.sha256},
        "train": {"images": list(dataset.train_images.shape),
                  "class_counts": np.bincount(dataset.train_labels, minlength=len(info.class_names)).tolist()},
        "test": {"images": list(dataset.test_images.shape),
                 "class_counts": np.bincount(dataset.test_labels, minlength=len(info.class_names)).tolist()},
        "class_names": list(info.class_names),
    }
