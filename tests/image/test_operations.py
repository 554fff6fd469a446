"""The array operations that find a digit, against plain loops written from their definitions."""

import numpy as np
import pytest

from lenet5.image import operations


def window_oracle(values, window, reduce):
    """`reduce` over the window×window square around each pixel, the border's value repeated."""
    half = window // 2
    height, width = values.shape
    out = np.empty_like(values)
    for y in range(height):
        for x in range(width):
            rows = np.clip(np.arange(y - half, y + half + 1), 0, height - 1)
            columns = np.clip(np.arange(x - half, x + half + 1), 0, width - 1)
            out[y, x] = reduce(values[np.ix_(rows, columns)])
    return out


@pytest.mark.parametrize("window", [1, 3, 5, 9])
@pytest.mark.parametrize("shape", [(1, 1), (4, 17), (23, 9)])
def test_filters_agree_with_their_definition(shape, window):
    values = np.random.default_rng(window).random(shape)
    np.testing.assert_array_equal(operations.max_filter(values, window), window_oracle(values, window, np.max))
    np.testing.assert_array_equal(operations.min_filter(values, window), window_oracle(values, window, np.min))
    np.testing.assert_allclose(operations.box_filter(values, window), window_oracle(values, window, np.mean),
                               rtol=0, atol=1e-12)


def test_resize_keeps_a_linear_ramp_linear_and_pixel_centres_aligned():
    ramp = np.tile(np.arange(8, dtype=float), (3, 1))  # one grey step per column
    wide = operations.resize_float(ramp, (3, 16))
    assert wide.shape == (3, 16)
    # Column j's centre lies at (j + 0.5) / 2 - 0.5 of the old grid; outside [0, 7] the border holds.
    expected = np.clip((np.arange(16) + 0.5) / 2 - 0.5, 0, 7)
    np.testing.assert_allclose(wide[1], expected, atol=1e-12)


def flood_labels(mask):
    """8-connected components by flood fill, numbered in raster order of their first pixel."""
    labels = np.zeros(mask.shape, int)
    count = 0
    for start in zip(*np.nonzero(mask)):
        if labels[start]:
            continue
        count += 1
        stack = [start]
        labels[start] = count
        while stack:
            y, x = stack.pop()
            for ny in (y - 1, y, y + 1):
                for nx in (x - 1, x, x + 1):
                    if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = count
                        stack.append((ny, nx))
    return labels, count


@pytest.mark.parametrize("seed", range(5))
def test_labels_and_boxes_agree_with_a_flood_fill(seed):
    mask = np.random.default_rng(seed).random((30, 41)) > 0.72
    labels, count = operations.label(mask)
    expected, expected_count = flood_labels(mask)
    assert count == expected_count
    np.testing.assert_array_equal(labels, expected)
    for index, (top, bottom, left, right) in enumerate(operations.label_boxes(labels, count), start=1):
        rows, columns = np.nonzero(labels == index)
        assert (top, bottom, left, right) == (rows.min(), rows.max() + 1, columns.min(), columns.max() + 1)


def test_boxes_that_touch_within_the_margin_form_one_group_transitively():
    # 0 and 1 are 2 pixels apart, 1 and 2 as well, 3 is far: grown by 2 each, the chain joins
    # (0 and 2 only through 1); grown by 1, the 2-pixel gaps stay open.
    boxes = [(0, 4, 0, 4), (0, 4, 6, 10), (0, 4, 12, 16), (40, 44, 40, 44)]
    assert operations.overlapping_groups(boxes, 2) == [[0, 1, 2], [3]]
    assert operations.overlapping_groups(boxes, 1) == [[0], [1], [2], [3]]


def test_shift_moves_without_wrapping_around():
    field = np.arange(12, dtype=float).reshape(3, 4)
    moved = operations.shift(field, 1, -2)
    np.testing.assert_array_equal(moved, [[0, 0, 0, 0], [2, 3, 0, 0], [6, 7, 0, 0]])
