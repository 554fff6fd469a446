"""Shared fixtures: the real MNIST (fetched once per session through lenet5's own code)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """A directory holding the verified MNIST IDX files (the user cache, filled if needed)."""
    from lenet5.data import locate

    paths = locate("mnist", fetch=True)
    return next(iter(paths.values())).parent
