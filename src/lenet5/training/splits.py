"""The data of a run: the dataset preprocessed as the model expects, split into training,
validation and test sets."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import Lenet5Error
from ..zoo.models import get_spec
from .recipe import TrainConfig


@dataclass
class DataSplits:
    """Preprocessed images (N, C, H, W) float32 and int64 labels (N,) of each split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] = field(default_factory=list)
    mean: float = 0.0  # the dataset's pixel statistics, for `standardize`
    std: float = 1.0
    background: float = 0.0  # a blank pixel after preprocessing (what augmentation pads with)


def load_splits(config: TrainConfig, data_dir=None) -> DataSplits:
    """`config.dataset` preprocessed for `config.model`; the validation images are drawn from
    the training set with `config.seed`, so a resumed run holds out the same ones."""
    from ..data import load_dataset, preprocess, train_validation_split

    spec = get_spec(config.model)
    dataset = load_dataset(config.dataset, data_dir=data_dir)
    prep = dict(method=spec.preprocessing.method, pad=spec.preprocessing.pad, mean=dataset.mean, std=dataset.std)
    train_images, train_labels = dataset.train_images, dataset.train_labels
    if config.train_limit:
        train_images, train_labels = train_images[: config.train_limit], train_labels[: config.train_limit]
    test_images, test_labels = dataset.test_images, dataset.test_labels
    if config.test_limit:
        test_images, test_labels = test_images[: config.test_limit], test_labels[: config.test_limit]
    if config.validation >= len(train_images):
        raise Lenet5Error(
            f"validation set of {config.validation} leaves no training images (of {len(train_images)})"
        )
    x_train, y_train, x_val, y_val = train_validation_split(
        train_images, train_labels, config.validation, seed=config.seed
    )
    return DataSplits(
        preprocess(x_train, **prep), np.asarray(y_train, np.int64),
        preprocess(x_val, **prep), np.asarray(y_val, np.int64),
        preprocess(test_images, **prep), np.asarray(test_labels, np.int64),
        list(dataset.class_names), float(dataset.mean), float(dataset.std),
        float(preprocess(np.zeros((1, 1, 1), np.uint8), **{**prep, "pad": 0})[0, 0, 0, 0]),
    )
