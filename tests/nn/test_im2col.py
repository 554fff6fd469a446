"""im2col and col2im of the reference engine: the column matrix is the windows, one per
column, and col2im is its adjoint (what makes it im2col's gradient)."""

import numpy as np
from hypothesis import given, settings, strategies as st

from lenet5.nn.im2col import col2im, im2col, output_size

shapes = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9))
kernels = st.tuples(st.integers(1, 4), st.integers(1, 4))
strides = st.tuples(st.integers(1, 3), st.integers(1, 3))


@settings(max_examples=100, deadline=None)
@given(shape=shapes, kernel=kernels, stride=strides)
def test_each_column_is_one_window_in_weight_order(shape, kernel, stride):
    batch, channels, height, width = shape
    kernel = (min(kernel[0], height), min(kernel[1], width))
    x = np.random.default_rng(0).standard_normal(shape)
    columns = im2col(x, kernel, stride)
    oh, ow = output_size(height, kernel[0], stride[0]), output_size(width, kernel[1], stride[1])
    assert columns.shape == (channels * kernel[0] * kernel[1], batch * oh * ow)
    for n in range(batch):
        for i in range(oh):
            for j in range(ow):
                window = x[n, :, i * stride[0] : i * stride[0] + kernel[0], j * stride[1] : j * stride[1] + kernel[1]]
                np.testing.assert_array_equal(columns[:, (n * oh + i) * ow + j], window.reshape(-1))


@settings(max_examples=100, deadline=None)
@given(shape=shapes, kernel=kernels, stride=strides)
def test_col2im_is_the_adjoint_of_im2col(shape, kernel, stride):
    # <im2col(x), c> = <x, col2im(c)> for every x and c.
    kernel = (min(kernel[0], shape[2]), min(kernel[1], shape[3]))
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    columns = rng.standard_normal(im2col(x, kernel, stride).shape)
    back = col2im(columns, shape, kernel, stride)
    assert back.shape == shape
    np.testing.assert_allclose(np.vdot(im2col(x, kernel, stride), columns), np.vdot(x, back), rtol=1e-10)
