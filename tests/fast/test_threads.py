"""The BLAS thread limit the compiled backend holds during a pass: set inside, put back after."""

import pytest

from lenet5.fast import threads

pytestmark = pytest.mark.skipif(not threads.available(), reason="the limit needs threadpoolctl (lenet5[train])")


def blas_counts():
    return [library.get_num_threads() for library in threads._controller().lib_controllers
            if library.user_api == "blas"]


@pytest.mark.parametrize("count", [1, 2])
def test_blas_runs_on_the_count_asked_inside_and_on_its_own_count_after(count):
    before = blas_counts()
    assert before  # NumPy's BLAS at least
    with threads.blas_threads(count):
        assert blas_counts() == [count] * len(before)
    assert blas_counts() == before


def test_the_count_is_put_back_when_the_block_raises():
    before = blas_counts()
    with pytest.raises(RuntimeError), threads.blas_threads(1):
        raise RuntimeError("a failing pass")
    assert blas_counts() == before
