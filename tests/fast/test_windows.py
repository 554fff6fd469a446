"""The fast engine's column matrix in blocks: the blocks tile the whole matrix exactly, in order,
once; and its col2im is the adjoint of the column matrix."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lenet5.fast import windows
from lenet5.nn.im2col import output_size


def whole_matrix(x, kernel, stride):
    (_, _, block), = windows.column_blocks(x, kernel, stride)
    return block.copy()


@settings(max_examples=200, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 11), st.integers(1, 11), st.integers(1, 6)),
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    max_columns=st.one_of(st.none(), st.integers(1, 300)),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_blocks_tile_the_whole_matrix(shape, kernel, stride, max_columns, dtype):
    channels, height, width, batch = shape
    kernel = (min(kernel[0], height), min(kernel[1], width))
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    whole = whole_matrix(x, kernel, stride)
    row_length = output_size(width, kernel[1], stride[1]) * batch
    widest = whole.shape[1] if max_columns is None else max(max_columns, row_length if stride[1] > 1 else 1)
    tiled = np.full(whole.shape, np.nan, dtype)
    previous_stop = 0
    for start, stop, block in windows.column_blocks(x, kernel, stride, max_columns):
        assert start == previous_stop and stop > start
        assert stop - start <= widest
        tiled[:, start:stop] = block
        previous_stop = stop
    assert previous_stop == whole.shape[1]
    np.testing.assert_array_equal(tiled, whole)


def test_a_batch_of_one_cut_from_a_batch_first_array_gives_the_right_blocks():
    # (1, C, H, W) seen batch-last is "contiguous" to NumPy, with the batch axis's stride
    # left at C·H·W elements: a block within a row must not step by it.
    batch_first = np.random.default_rng(2).standard_normal((1, 2, 9, 5))
    x = batch_first.transpose(1, 2, 3, 0)
    whole = whole_matrix(np.array(x), (5, 2), (2, 1))
    for start, stop, block in windows.column_blocks(x, (5, 2), (2, 1), max_columns=1):
        np.testing.assert_array_equal(block, whole[:, start:stop])


def test_no_limit_gives_one_block_the_whole_matrix():
    x = np.ones((6, 14, 14, 8), np.float32)
    blocks = list(windows.column_blocks(x, (5, 5), (1, 1)))
    assert len(blocks) == 1 and blocks[0][:2] == (0, 10 * 10 * 8)


def test_a_non_contiguous_input_gives_the_same_blocks():
    x = np.random.default_rng(1).standard_normal((2, 9, 9, 5))
    strided = np.asfortranarray(x)
    expected = [(a, b, block.copy()) for a, b, block in windows.column_blocks(x, (3, 3), (1, 1), 2)]
    got = [(a, b, block.copy()) for a, b, block in windows.column_blocks(strided, (3, 3), (1, 1), 2)]
    assert [(a, b) for a, b, _ in got] == [(a, b) for a, b, _ in expected]
    for (_, _, want), (_, _, have) in zip(expected, got):
        np.testing.assert_array_equal(have, want)


@settings(max_examples=100, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 40)),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
)
def test_col2im_is_the_adjoint_of_im2col(shape, kernel, stride):
    # <im2col(x), c> = <x, col2im(c)> for every x and c: what makes it im2col's gradient.
    kernel = (min(kernel[0], shape[1]), min(kernel[1], shape[2]))
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    columns = rng.standard_normal(whole_matrix(x, kernel, stride).shape)
    back = windows.col2im(columns, shape, kernel, stride)
    assert back.shape == shape
    np.testing.assert_allclose(np.vdot(whole_matrix(x, kernel, stride), columns), np.vdot(x, back), rtol=1e-10)


def test_col2im_leaves_the_callers_ufunc_buffer_size_alone():
    # col2im shrinks NumPy's buffer for its own adds (rows of 10·64 elements here).
    before = np.getbufsize()
    windows.col2im(np.ones((150, 10 * 10 * 64), np.float32), (6, 14, 14, 64), (5, 5), (1, 1))
    assert np.getbufsize() == before
