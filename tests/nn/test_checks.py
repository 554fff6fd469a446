"""Bad construction and wrong input shapes: a ValueError that names the layer, what it expected
and what it found."""

import numpy as np
import pytest

from lenet5 import nn as ln

CONSTRUCTION = [
    (lambda: ln.Conv2D(0, 3, 3), ["Conv2D", "in_channels", "positive int", "found 0"]),
    (lambda: ln.Conv2D(3, -2, 3), ["Conv2D", "out_channels", "positive int", "found -2"]),
    (lambda: ln.Conv2D(1, 3, (1, 2, 3)), ["Conv2D", "kernel_size", "an int or a pair of ints", "found (1, 2, 3)"]),
    (lambda: ln.Conv2D(1, 3, 2.5), ["Conv2D", "kernel_size", "an int or a pair of ints", "found 2.5"]),
    (lambda: ln.Conv2D(1, 3, 0), ["Conv2D", "kernel_size and stride must be >= 1", "kernel_size=(0, 0)"]),
    (lambda: ln.Conv2D(1, 3, 3, stride=(1, 0)), ["Conv2D", "must be >= 1", "stride=(1, 0)"]),
    (lambda: ln.Conv2D(1, 3, 3, padding=-1), ["Conv2D", "padding >= 0", "padding=(-1, -1)"]),
    (lambda: ln.Conv2D(1, 3, 3, padding=(1, -2)), ["Conv2D", "padding >= 0", "padding=(1, -2)"]),
    (lambda: ln.Conv2D(2, 3, 3, connections=np.ones((2, 3))),
     ["Conv2D", "connections", "shape (3, 2)", "found shape (2, 3)"]),
    (lambda: ln.Conv2D(2, 3, 3, connections=2 * np.ones((3, 2))), ["Conv2D", "connections", "0/1 table"]),
    (lambda: ln.Conv2D(1, 3, 3, weight_init="nope"), ["Conv2D", "unknown initializer 'nope'", "he_uniform"]),
    (lambda: ln.Dense(-1, 2), ["Dense", "in_features", "positive int", "found -1"]),
    (lambda: ln.Dense(2, 0), ["Dense", "out_features", "positive int", "found 0"]),
    (lambda: ln.Dense(2.0, 3), ["Dense", "in_features", "found 2.0"]),
    (lambda: ln.Dropout(1.0), ["Dropout", "p must be in [0, 1)", "found 1.0"]),
    (lambda: ln.BatchNorm2D(0), ["BatchNorm2D", "num_features", "positive int", "found 0"]),
    (lambda: ln.BatchNorm1D(-3), ["BatchNorm1D", "num_features", "found -3"]),
    (lambda: ln.BatchNorm2D(3, eps=0.0), ["BatchNorm2D", "eps must be > 0", "found 0.0"]),
    (lambda: ln.BatchNorm1D(3, momentum=1.5), ["BatchNorm1D", "momentum must be in [0, 1]", "found 1.5"]),
    (lambda: ln.MaxPool2D(2, padding=2),
     ["MaxPool2D", "between 0 and half the kernel", "padding=(2, 2)", "kernel_size=(2, 2)"]),
    (lambda: ln.MaxPool2D(3, padding=(1, 2)), ["MaxPool2D", "half the kernel", "padding=(1, 2)", "kernel_size=(3, 3)"]),
    (lambda: ln.AvgPool2D((3, 2), padding=(1, 2)),
     ["AvgPool2D", "half the kernel", "padding=(1, 2)", "kernel_size=(3, 2)"]),
    (lambda: ln.MaxPool2D(2, padding=-1), ["MaxPool2D", "between 0 and half", "padding=(-1, -1)"]),
    (lambda: ln.MaxPool2D(0), ["MaxPool2D", "must be >= 1", "kernel_size=(0, 0)"]),
    (lambda: ln.AvgPool2D(2, stride=0), ["AvgPool2D", "must be >= 1", "stride=(0, 0)"]),
    (lambda: ln.MaxPool2D([2, 2, 2]), ["MaxPool2D", "kernel_size", "pair of ints", "found [2, 2, 2]"]),
    (lambda: ln.Subsampling(0), ["Subsampling", "channels", "positive int", "found 0"]),
    (lambda: ln.Sequential(ln.ReLU(), "relu"), ["Sequential", "expected layers", "found str"]),
    (lambda: ln.Sequential(("a", ln.ReLU()), ("a", ln.Tanh())), ["Sequential", "duplicate", "'a'"]),
    (lambda: ln.Sequential(("training", ln.ReLU())), ["Sequential", "reserved", "'training'"]),
]


@pytest.mark.parametrize("build, parts", CONSTRUCTION, ids=[f"{parts[0]}-{parts[-1]}" for _, parts in CONSTRUCTION])
def test_bad_construction_names_the_layer_and_the_bad_value(build, parts):
    with pytest.raises(ValueError) as error:
        build()
    for part in parts:
        assert part in str(error.value), (part, str(error.value))


INPUTS = [
    (lambda: ln.Conv2D(3, 4, 3), (2, 5, 8, 8),
     ["Conv2D(3, 4", "expected input of shape (N, 3, H, W)", "found (2, 5, 8, 8)"]),
    (lambda: ln.Conv2D(3, 4, 3), (2, 8, 8), ["Conv2D(3, 4", "expected input of shape (N, 3, H, W)", "found (2, 8, 8)"]),
    (lambda: ln.Conv2D(3, 4, 3), (2, 3), ["Conv2D(3, 4", "(N, 3, H, W)", "found (2, 3)"]),
    (lambda: ln.Conv2D(3, 4, 3), (1, 2, 3, 8, 8), ["Conv2D(3, 4", "(N, 3, H, W)", "found (1, 2, 3, 8, 8)"]),
    (lambda: ln.Conv2D(3, 4, 5, padding=1), (1, 3, 2, 9),
     ["Conv2D(3, 4", "2x9 pixels", "padded 4x11", "kernel (5, 5)"]),
    (lambda: ln.Dense(5, 2), (3, 4), ["Dense(5, 2)", "expected input of shape (N, 5)", "found (3, 4)"]),
    (lambda: ln.Dense(5, 2), (3, 5, 1), ["Dense(5, 2)", "(N, 5)", "found (3, 5, 1)"]),
    (lambda: ln.Dense(5, 2), (3, 5, 1, 1), ["Dense(5, 2)", "(N, 5)", "found (3, 5, 1, 1)"]),
    (lambda: ln.BatchNorm2D(3), (2, 4, 5, 5),
     ["BatchNorm2D(3", "expected input of shape (N, 3, H, W)", "found (2, 4, 5, 5)"]),
    (lambda: ln.BatchNorm2D(3), (2, 3), ["BatchNorm2D(3", "(N, 3, H, W)", "found (2, 3)"]),
    (lambda: ln.BatchNorm1D(4), (2, 3), ["BatchNorm1D(4", "expected input of shape (N, 4)", "found (2, 3)"]),
    (lambda: ln.BatchNorm1D(4), (2, 4, 1, 1), ["BatchNorm1D(4", "(N, 4)", "found (2, 4, 1, 1)"]),
    (lambda: ln.MaxPool2D(2), (2, 3), ["MaxPool2D(kernel_size=(2, 2)", "(N, C, H, W)", "found (2, 3)"]),
    (lambda: ln.AvgPool2D(2), (3, 8, 8), ["AvgPool2D(kernel_size=(2, 2)", "(N, C, H, W)", "found (3, 8, 8)"]),
    (lambda: ln.MaxPool2D(4, padding=1), (1, 1, 1, 5), ["MaxPool2D", "1x5 pixels", "smaller than the window (4, 4)"]),
    (lambda: ln.Subsampling(3), (1, 2, 4, 4), ["Subsampling(3", "(N, 3, H, W)", "found (1, 2, 4, 4)"]),
    (lambda: ln.Subsampling(2, 3), (1, 2, 2, 4), ["Subsampling(2", "2x4 pixels", "smaller than the window (3, 3)"]),
    (lambda: ln.Flatten(), (5,), ["Flatten()", "(N, ...)", "found (5,)"]),
]


@pytest.mark.parametrize("build, shape, parts", INPUTS, ids=[f"{parts[0]}-{shape}" for _, shape, parts in INPUTS])
def test_a_wrong_input_shape_names_the_layer_the_expected_and_the_found_shape(build, shape, parts):
    with pytest.raises(ValueError) as error:
        build().forward(np.zeros(shape))
    for part in parts:
        assert part in str(error.value), (part, str(error.value))


def test_inside_a_model_the_found_shape_is_still_batch_first():
    model = ln.Sequential(ln.Flatten(), ln.Dense(10, 2))
    with pytest.raises(ValueError) as error:
        model.forward(np.zeros((2, 3, 2, 2)))
    assert "Dense(10, 2): expected input of shape (N, 10), found (2, 12)" in str(error.value)
