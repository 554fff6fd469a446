"""Fixtures of the service tests: runs to serve, images to send, a client for the app."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")

# Starlette's test client warns that it will move from httpx to httpx2; nothing to act on here.
QUIET_CLIENT = pytest.mark.filterwarnings("ignore:Using `httpx`")


@pytest.fixture(scope="session")
def untrained_run(tmp_path_factory) -> Path:
    """A run directory holding the default LeNet-5 with its initial weights: enough for the
    API, whose answers are checked against the classifier's own, not against the truth."""
    from lenet5.files.weights import save_model
    from lenet5.run.preprocessing import preprocessing_metadata
    from lenet5.zoo.models import build_model

    run_dir = tmp_path_factory.mktemp("untrained")
    model = build_model("lenet5", seed=0)
    model.eval()
    save_model(run_dir / "model.npz", model, {"preprocessing": preprocessing_metadata("lenet5", 0.1307, 0.3081),
                                              "metrics": {"test_accuracy": 0.1, "test_count": 10000}})
    return run_dir


@pytest.fixture(scope="session")
def classifier(untrained_run):
    from lenet5.run.classifier import load

    return load(untrained_run)


@pytest.fixture
def client(classifier):
    from fastapi.testclient import TestClient

    from lenet5.serve.app import create_app

    with TestClient(create_app(classifier)) as test_client:
        yield test_client


def digit_pixels(seed: int = 0) -> np.ndarray:
    """A 28×28 uint8 'digit': a random thick stroke, white on black, as MNIST draws them."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((28, 28), np.uint8)
    top, left = rng.integers(4, 8, size=2)
    pixels[top: top + 18, left + 6: left + 10] = 255
    pixels[top: top + 4, left: left + 14] = rng.integers(150, 256)
    return pixels


def png_bytes(pixels: np.ndarray, *, paper: bool = True, format: str = "PNG") -> bytes:
    """`pixels` as an image file; `paper` draws it dark on light, as a person would."""
    from PIL import Image

    image = Image.fromarray(255 - pixels if paper else pixels).resize((140, 140))
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()
