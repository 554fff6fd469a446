"""What the export tests share: digit-like synthetic images, zoo models with random weights
(BatchNorm statistics included, so folding is really exercised) and runs built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lenet5.files.weights import save_model
from lenet5.run.preprocessing import preprocessing_metadata
from lenet5.zoo.models import build_model

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def synthetic_digits(count: int, seed: int = 0) -> np.ndarray:
    """(count, 28, 28) uint8: dark background, a few bright strokes of random length and
    thickness in the central 20×20 box, edges softened: MNIST's value statistics, roughly."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), np.float64)
    for image in images:
        for _ in range(rng.integers(2, 5)):
            row, column = rng.integers(4, 24, size=2)
            length, thickness = rng.integers(4, 14), rng.integers(1, 4)
            if rng.random() < 0.5:
                image[row: row + thickness, column: column + length] = 255
            else:
                image[row: row + length, column: column + thickness] = 255
    softened = images.copy()
    softened[:, 1:-1, 1:-1] = (2 * images[:, 1:-1, 1:-1] + images[:, :-2, 1:-1] + images[:, 2:, 1:-1]
                               + images[:, 1:-1, :-2] + images[:, 1:-1, 2:]) / 6
    return np.clip(softened, 0, 255).astype(np.uint8)


def random_model(name: str, seed: int = 0):
    """`build_model(name, seed)` in eval mode, each BatchNorm's running statistics, scale
    and shift drawn at random (fresh ones are 0, 1, 1, 0: folding them would change nothing)."""
    model = build_model(name, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    for _, layer in model.named_modules():
        if type(layer).__name__ in ("BatchNorm1D", "BatchNorm2D"):
            channels = layer.num_features
            layer.running_mean = rng.normal(0, 0.5, channels).astype(np.float32)
            layer.running_var = rng.uniform(0.3, 3.0, channels).astype(np.float32)
            layer.weight.value = rng.uniform(0.5, 1.5, channels).astype(np.float32)
            layer.bias.value = rng.normal(0, 0.3, channels).astype(np.float32)
    return model.eval()


def metadata_for(name: str) -> dict:
    return {"architecture": name, "dataset": "mnist",
            "preprocessing": preprocessing_metadata(name, MNIST_MEAN, MNIST_STD),
            "metrics": {"test_accuracy": 0.5}, "class_names": [str(digit) for digit in range(10)]}


def write_run(run_dir: Path, name: str, seed: int = 0) -> Path:
    """A finished run directory (model.npz and model.json) holding `random_model(name)`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    metadata = metadata_for(name)
    del metadata["architecture"]  # save_model records the model's own name
    save_model(run_dir / "model.npz", random_model(name, seed), metadata)
    return run_dir


def hand_built(kind: str):
    """Layers and settings the zoo does not use: strides, padded pools, an unfoldable
    BatchNorm (nothing linear before it), Softmax."""
    from lenet5.nn import (
        AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid, Softmax
    )

    if kind == "strided and padded":
        layers = [Conv2D(1, 4, 3, stride=2, padding=1, rng=5), MaxPool2D(3, stride=2, padding=1), ReLU(),
                  Conv2D(4, 6, 3, padding=1, rng=6), AvgPool2D(3, stride=2, padding=1), Sigmoid(),
                  Flatten(), Dense(6 * 4 * 4, 10, rng=7)]
    else:
        layers = [BatchNorm2D(1), Flatten(), BatchNorm1D(784), Dense(784, 10, rng=8), Softmax()]
    model = Sequential(*layers, name=kind, input_shape=(1, 28, 28))
    rng = np.random.default_rng(9)
    for _, layer in model.named_modules():
        if type(layer).__name__.startswith("BatchNorm"):
            layer.running_mean = rng.normal(0, 0.5, layer.num_features).astype(np.float32)
            layer.running_var = rng.uniform(0.3, 3.0, layer.num_features).astype(np.float32)
    return model.eval()


HAND_BUILT = ["strided and padded", "unfolded batchnorm and softmax"]


@pytest.fixture
def relu_run(tmp_path) -> Path:
    return write_run(tmp_path / "run", "relu")
