"""Fixtures for the engine tests: one instance of every layer kind, in each mode and layout."""

import numpy as np
import pytest
import torch

from lenet5.fast.layout import to_batch_first, to_batch_last

from .torch_twins import LAYER_CASES, make_case

# The machine is shared and the tensors are tiny: threads would only add contention.
torch.set_num_threads(1)


@pytest.fixture(params=sorted(LAYER_CASES))
def case(request):
    """(layer, x): a small layer of each kind with random parameters, and an input for it."""
    return make_case(request.param)


@pytest.fixture(params=[True, False], ids=["train", "eval"])
def training(request):
    return request.param


def _strided(a):
    """The values of `a` in a reversed view of every other element of a larger array."""
    view = np.zeros(tuple(2 * size for size in a.shape), a.dtype)[tuple(slice(None, None, -2) for _ in a.shape)]
    view[...] = a
    return view


@pytest.fixture(params=["batch_first", "batch_last", "strided"])
def layout(request):
    """A function giving an array with the same values laid out as a caller would pass it
    (C-contiguous batch-first), as a layer passes it on inside a model (a batch-first view of
    a contiguous batch-last array, where an in-place write would reach the caller's data), or
    as an odd view (negative, non-unit strides)."""
    if request.param == "batch_first":
        return lambda a: np.ascontiguousarray(a)
    if request.param == "batch_last":
        return lambda a: to_batch_first(np.ascontiguousarray(to_batch_last(a)))
    return _strided
