"""Shared fixtures: the real MNIST (fetched once per session through lenet5's own code)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """A directory holding the four verified MNIST IDX files.

    LENET5_DATA_DIR or the user's cache when they already hold them (verified); otherwise
    fetched once into a temporary cache, so the tests never write to the user's home.
    """
    from lenet5.data import locate
    from lenet5.errors import DataError

    try:
        paths = locate("mnist", fetch=False)
    except DataError:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
            patch.delenv("LENET5_DATA_DIR", raising=False)
            paths = locate("mnist", fetch=True)
    return next(iter(paths.values())).parent
