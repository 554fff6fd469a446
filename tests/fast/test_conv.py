"""ConvStep, the fast engine's Conv2D: whole column matrix or cache-sized blocks, it computes
what the reference Conv2D computes (1e-10 in float64), on the same random configurations."""

import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.fast import conv
from lenet5.fast.conv import ConvStep

from ..nn.test_conv import CONFIGS, make_conv
from ..nn.torch_twins import connection_table, max_relative_difference
from .twins import assert_step_matches_layer


@pytest.fixture(params=["whole matrix", "blocks of 1 column", "blocks of 16 bytes", "blocks of 256 bytes"])
def blocking(request, monkeypatch):
    """Run a test on the whole column matrix (what these small shapes get by default) and
    on cache-sized blocks, cut small enough to fall inside rows and to span several rows."""
    if request.param != "whole matrix":
        monkeypatch.setattr(conv, "MIN_BLOCK_COLUMNS", 0)
        monkeypatch.setattr(conv, "BLOCK_BYTES", {"blocks of 1 column": 1, "blocks of 16 bytes": 16,
                                                    "blocks of 256 bytes": 256}[request.param])
    return request.param


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("config", CONFIGS)
def test_matches_the_reference_conv(config, training, blocking):
    layer, x = make_conv(config, seed=2)
    assert_step_matches_layer(ConvStep(layer), layer.train(training), x)


def test_unblocked_builds_every_matrix_whole():
    c1 = ln.Conv2D(1, 6, 5).eval()
    assert ConvStep(c1, blocked=False).block_columns(4) is None
    assert ConvStep(c1).block_columns(4) is not None


def test_training_blocks_wide_matrices_and_keeps_narrow_ones_whole_for_backward():
    x = np.zeros((1, 32, 32, 256), np.float32)  # batch-last, as layers see it
    c1, c3 = ln.Conv2D(1, 6, 5), ln.Conv2D(6, 16, 5)
    assert conv.MIN_BLOCK_COLUMNS <= ConvStep(c1).block_columns(x.itemsize) <= conv.BLOCK_BYTES // (25 * 4)
    assert ConvStep(c3).block_columns(x.itemsize) is None  # 150 rows: blocks would be narrower than MIN_BLOCK_COLUMNS


def test_eval_mode_blocks_every_matrix_under_the_small_product_limit():
    x = np.zeros((6, 14, 14, 256), np.float32)
    c3 = ln.Conv2D(6, 16, 5).eval()
    columns = ConvStep(c3).block_columns(x.itemsize)
    assert conv.MIN_SMALL_PRODUCT_COLUMNS <= columns and 16 * 150 * columns <= conv.SMALL_PRODUCT
    # Where the limit would leave very narrow blocks, the cache budget alone decides.
    wide = ln.Conv2D(32, 64, 3).eval()
    assert ConvStep(wide).block_columns(np.dtype(np.float32).itemsize) == conv.BLOCK_BYTES // (288 * 4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_eval_mode_blocks_give_the_training_output_and_gradients(dtype):
    # Batch 8 makes C3's matrix 800 columns wide: blocked in eval mode, whole in training.
    rng = np.random.default_rng(6)
    layer = ln.Conv2D(6, 16, 5, connections=connection_table(rng, 16, 6), rng=rng).to(dtype)
    x = rng.standard_normal((8, 6, 14, 14)).astype(dtype)
    dout = rng.standard_normal((8, 16, 10, 10)).astype(dtype)
    assert ConvStep(layer.eval()).block_columns(x.itemsize) < 800
    results = {}
    for mode in ("train", "eval"):
        getattr(layer, mode)()
        layer.weight.grad.fill(0)
        layer.bias.grad.fill(0)
        step = ConvStep(layer)
        out = step.forward(x.transpose(1, 2, 3, 0))
        dx = step.backward(np.ascontiguousarray(dout.transpose(1, 2, 3, 0)))
        results[mode] = (out, dx, layer.weight.grad.copy(), layer.bias.grad.copy())
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    for trained, evaluated in zip(results["train"], results["eval"]):
        assert max_relative_difference(evaluated, trained) < tolerance
