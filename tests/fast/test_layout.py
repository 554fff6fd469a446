"""Batch-first to batch-last and back: views, for any rank; and the one copy a pass starts with."""

import numpy as np
import pytest

from lenet5.fast.layout import batch_last_copy, to_batch_first, to_batch_last
from lenet5.nn.checks import as_float


def test_layout_views_round_trip_for_any_rank():
    for shape in [(3,), (3, 4), (3, 4, 5), (2, 3, 4, 5), (2, 1, 3, 4, 5)]:
        x = np.arange(np.prod(shape)).reshape(shape)
        last = to_batch_last(x)
        assert last.shape == shape[1:] + shape[:1] and np.shares_memory(last, x)
        assert np.array_equal(to_batch_first(last), x)
    x = np.arange(24).reshape(2, 3, 4)
    assert np.array_equal(to_batch_last(x)[..., 1], x[1])


def test_as_float_keeps_float32_and_float64_and_turns_the_rest_into_float32():
    for dtype in (np.float32, np.float64):
        x = np.zeros(3, dtype)
        assert as_float(x) is x
    for dtype in (np.uint8, np.int64, np.float16, bool):
        assert as_float(np.zeros(3, dtype)).dtype == np.float32


@pytest.mark.parametrize("shape, dtype", [((7, 1, 32, 32), np.float32), ((5, 3, 16, 16), np.float64),
                                          ((6, 1, 28, 28), np.float32), ((9, 256), np.float32),
                                          ((0, 1, 32, 32), np.float32), ((1, 1, 32, 32), np.float32)],
                         ids=["32x32-staged", "float64-staged", "28x28-straight", "dense-staged", "empty", "one"])
def test_the_batch_last_copy_holds_the_transposed_values_in_a_new_contiguous_array(shape, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    copy = batch_last_copy(x)
    assert copy.flags.c_contiguous and copy.dtype == dtype and not np.shares_memory(copy, x)
    assert np.array_equal(copy, to_batch_last(x))
