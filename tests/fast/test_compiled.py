"""The compiled backend against the reference layers and models, and its promise that results do
not depend on the thread count: random shapes, strides, paddings, connection tables and ties,
float64 to 1e-10 and float32 to 1e-4 (relative), both convolution paths, serial and parallel
builds."""

import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from lenet5 import nn as ln
from lenet5.fast import FastModel, backends as backend_table, compiled
from lenet5.fast.compiled import conv as compiled_conv, jit
from lenet5.fast.compiled.conv import CompiledConvStep
from lenet5.fast.compiled.fusion import CompiledConvPoolReLU, CompiledConvSquashPool, CompiledNormPoolReLU
from lenet5.fast.layout import to_batch_first, to_batch_last
from lenet5.fast.step import ReferenceStep
from lenet5.zoo.models import MODELS, build_model

from ..nn.torch_twins import max_relative_difference
from .twins import assert_step_matches_layer

pytestmark = pytest.mark.skipif(not compiled.available(), reason="the compiled backend needs Numba (lenet5[fast])")

DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])


def conv_cases(count=16, seed=25):
    """Random layers; every other one has 5-wide kernels (the direct path's five-tap loops)."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        kernel = (int(rng.integers(1, 6)), 5 if index % 2 == 0 else int(rng.integers(1, 6)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        padding = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        channels, maps = int(rng.integers(1, 5)), int(rng.integers(1, 6))
        batch = int(rng.integers(1, 7))
        height, width = kernel[0] + int(rng.integers(0, 6)), kernel[1] + int(rng.integers(0, 6))
        masked = index % 4 == 3
        name = f"c{channels}f{maps}k{kernel[0]}x{kernel[1]}s{stride[0]}{stride[1]}p{padding[0]}{padding[1]}n{batch}" \
               + ("-table" if masked else "")
        cases.append(pytest.param(channels, maps, kernel, stride, padding, (batch, channels, height, width), masked,
                                  id=name))
    return cases


@pytest.mark.parametrize("path", ["rows", "maps", "blas"])
@pytest.mark.parametrize("channels, maps, kernel, stride, padding, shape, masked", conv_cases())
@DTYPES
def test_every_convolution_path_computes_the_reference_layer(channels, maps, kernel, stride, padding, shape,
                                                             masked, path, dtype, monkeypatch):
    if path != "blas":
        stride = (stride[0], 1)  # the direct loops run along rows: a horizontal stride of 1
        # ... of outputs at least as wide as the kernel
        shape = shape[:3] + (max(shape[3], 2 * kernel[1] - 1 - 2 * padding[1]),)
    if path == "maps":
        stride = (1, 1)  # whole maps need a vertical stride of 1 too
    rng = np.random.default_rng(7)
    table = (rng.random((maps, channels)) < 0.6) if masked else None
    if table is not None:
        table[:, 0] = True  # every output map sees at least one input map
    layer = ln.Conv2D(channels, maps, kernel, stride=stride, padding=padding, connections=table, rng=1)
    step = CompiledConvStep(layer)
    step.direct = path != "blas"
    monkeypatch.setattr(compiled_conv, "WHOLE_MAPS_BELOW", 10**9 if path == "maps" else 0)
    paths = []
    for kernel_name in ("conv_forward", "conv_forward_maps", "convolve_chunks", "conv_weight_grad",
                        "conv_weight_grad_maps", "weight_grad_chunks", "conv_input_grad", "conv_input_grad_maps",
                        "col2im"):
        original = getattr(compiled_conv, kernel_name)
        monkeypatch.setattr(compiled_conv, kernel_name,
                            lambda *args, name=kernel_name, run=original: paths.append(name) or run(*args))
    assert_step_matches_layer(step, layer, rng.standard_normal(shape), dtype)
    assert set(paths) == {"rows": {"conv_forward", "conv_weight_grad", "conv_input_grad"},
                          "maps": {"conv_forward_maps", "conv_weight_grad_maps", "conv_input_grad_maps"},
                          "blas": {"convolve_chunks", "weight_grad_chunks", "col2im"}}[path]


def test_rows_and_whole_maps_give_the_same_outputs_bit_for_bit(monkeypatch):
    """The same arithmetic per output value in the same order: a prediction does not depend on
    the batch it came in, whichever path the batch's size picks."""
    layer = ln.Conv2D(6, 16, 5, connections=np.random.default_rng(8).random((16, 6)) < 0.6, rng=2)
    x = np.random.default_rng(9).standard_normal((6, 14, 14, 3)).astype(np.float32)
    outputs = []
    for below in (0, 10**9):
        monkeypatch.setattr(compiled_conv, "WHOLE_MAPS_BELOW", below)
        step = CompiledConvStep(layer)
        outputs.append(step.forward(x))
        assert step._cache[3] is (below > 0)
    assert np.array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("layer, direct", [
    (ln.Conv2D(6, 16, 5), True),  # LeNet-5's C3: 5-wide, whatever its depth
    (ln.Conv2D(16, 32, 5, padding=2), True),
    (ln.Conv2D(1, 32, 3, padding=1), True),  # shallow: 9 rows in the column matrix
    (ln.Conv2D(32, 64, 3, padding=1), False),  # 288 rows: BLAS
    (ln.Conv2D(6, 16, 5, stride=(1, 2)), False),  # the direct loops need a horizontal stride of 1
], ids=["c3", "wide-c3", "shallow-3x3", "deep-3x3", "strided"])
def test_each_layer_takes_the_path_measured_for_it_whatever_the_batch(layer, direct):
    step = CompiledConvStep(layer)
    for batch in (1, 4, 64):
        out = step.forward(np.zeros((layer.in_channels, 16, 16, batch), np.float32))
        assert step._cache[2] is direct
        # ... and, on the direct loops, whole maps for short output rows
        assert step._cache[3] is (direct and out.shape[2] * batch < compiled_conv.WHOLE_MAPS_BELOW)


def test_an_output_narrower_than_the_kernel_takes_blas():
    step = CompiledConvStep(ln.Conv2D(16, 120, 5))  # C5: 5x5 maps in, one pixel out
    step.forward(np.zeros((16, 5, 5, 8), np.float32))
    assert step._cache[2] is False
    step.forward(np.zeros((16, 9, 9, 8), np.float32))  # 5 pixels out: as wide as the kernel
    assert step._cache[2] is True


def pool_cases():
    rng = np.random.default_rng(3)
    cases = []
    for kind in ("max", "avg"):
        for index in range(6):
            kernel = int(rng.integers(1, 4))
            stride = int(rng.integers(1, kernel + 1))
            padding = int(rng.integers(0, kernel // 2 + 1))
            shape = (int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(kernel, 9)),
                     int(rng.integers(kernel, 9)))
            cases.append(pytest.param(kind, kernel, stride, padding, shape, id=f"{kind}-k{kernel}s{stride}p{padding}"
                                                                                f"-{'x'.join(map(str, shape))}"))
    return cases


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kind, kernel, stride, padding, shape", pool_cases())
@DTYPES
def test_pooling_kernels_compute_the_reference_layer_ties_included(kind, kernel, stride, padding, shape, training,
                                                                   dtype):
    layer = (ln.MaxPool2D if kind == "max" else ln.AvgPool2D)(kernel, stride, padding).train(training)
    x = np.random.default_rng(5).standard_normal(shape)
    x[:, :, : shape[2] // 2] = 0.25  # flat rows: ties in the windows, routed to the first maximum
    (step,) = FastModel(layer, backend="compiled").steps
    assert type(step).__module__.startswith("lenet5.fast.compiled")
    assert_step_matches_layer(step, layer, x, dtype)


@DTYPES
def test_subsampling_kernels_compute_the_reference_layer(dtype):
    layer = ln.Subsampling(3)
    rng = np.random.default_rng(11)
    layer.weight.value[...] = rng.standard_normal(3)
    layer.bias.value[...] = rng.standard_normal(3)
    (step,) = FastModel(layer, backend="compiled").steps
    assert type(step).__module__.startswith("lenet5.fast.compiled")
    assert_step_matches_layer(step, layer, rng.standard_normal((5, 3, 8, 6)), dtype)


def test_max_pooling_keeps_a_nan_as_numpy_does():
    layer = ln.MaxPool2D(2)
    x = np.arange(32, dtype=np.float32).reshape(2, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan  # in the first window of sample 0, after its first value
    (step,) = FastModel(layer, backend="compiled").steps
    out = FastModel(layer, backend="compiled").forward(x)
    expected = layer.forward(x)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    assert np.isnan(out[0, 0, 0, 0]) and np.isfinite(out[1]).all()
    del step


@pytest.mark.parametrize("stride, padding", [(2, 0), (1, 0), (2, 1)], ids=["s2", "s1", "s2-padded"])
@DTYPES
def test_two_by_two_max_pooling_routes_ties_and_keeps_nans_at_every_window_position_as_the_reference(
        stride, padding, dtype):
    """The 2×2 windows' own loop (`window_maximum_2x2`): a tie of the maximum starting at each of
    a window's four positions, forward and backward; a NaN at each position, a NaN before a
    larger value and a tie after a NaN, forward (where a NaN window's gradient goes, the two
    engines differ: docs/speed.md)."""
    layer = ln.MaxPool2D(2, stride, padding).train()
    (step,) = FastModel(layer, backend="compiled").steps
    rng = np.random.default_rng(8)
    ties = rng.standard_normal((4, 2, 6, 6))
    for position in range(4):
        i, j = divmod(position, 2)
        ties[position, :, i::2, j::2] = 3.0
    out = step.forward(to_batch_last(ties.astype(dtype)))
    assert np.array_equal(to_batch_first(out), layer.forward(ties.astype(dtype)))
    dout = rng.standard_normal(out.shape[-1:] + out.shape[:-1]).astype(dtype)
    # overlapping windows (stride 1) add into a pixel in another order than the reference: to rounding
    tolerance = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(to_batch_first(step.backward(to_batch_last(dout))), layer.backward(dout),
                               rtol=tolerance, atol=tolerance)
    nans = rng.standard_normal((6, 2, 6, 6))
    for position in range(4):
        nans[position, 0, 2 + position // 2, 2 + position % 2] = np.nan
    nans[4, 0, 0, 0], nans[4, 0, 1, 1] = np.nan, 50.0
    nans[5, 0, 0, 0], nans[5, 0, 0, 1], nans[5, 0, 1, 0] = 2.0, np.nan, 2.0
    out = step.forward(to_batch_last(nans.astype(dtype)))
    assert np.array_equal(to_batch_first(out), layer.forward(nans.astype(dtype)), equal_nan=True)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_zoo_model_trains_and_predicts_through_the_compiled_kernels_as_the_reference_does(name):
    model = build_model(name, seed=1).to(np.float64)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((9,) + MODELS[name].input_shape), rng.integers(0, 10, 9)
    loss = MODELS[name].make_loss()
    generators = [m.rng for m in model.modules() if isinstance(m, ln.Dropout)]
    saved = model.state_dict(), [g.bit_generator.state for g in generators]

    def step(engine):
        for parameter in engine.parameters():
            parameter.zero_grad()
        logits = engine.forward(x)
        dlogits = loss.value_and_grad(logits, y)[1]
        engine.backward(dlogits)
        return logits, [p.grad.copy() for p in engine.parameters()], model.state_dict()

    expected = step(model)
    model.load_state_dict(saved[0])
    for generator, state in zip(generators, saved[1]):
        generator.bit_generator.state = state
    fast = FastModel(model, backend="compiled")
    assert not any(isinstance(s, ReferenceStep) for s in fast.steps if not isinstance(s.layer, ln.RBF))
    found = step(fast)
    assert max_relative_difference(found[0], expected[0]) < 1e-10
    for (parameter, _), ours, reference in zip(model.named_parameters(), found[1], expected[1]):
        assert max_relative_difference(ours, reference) < 1e-10, parameter
    for key in expected[2]:
        assert max_relative_difference(found[2][key], expected[2][key]) < 1e-10, key
    model.load_state_dict(saved[0])
    np.testing.assert_allclose(fast.predict_logits(x), model.eval().forward(x), rtol=1e-10, atol=1e-10)


def test_lenet5_trains_on_the_fused_compiled_kernel():
    fast = FastModel(build_model("lenet5"), backend="compiled")
    assert sum(isinstance(step, CompiledNormPoolReLU) for step in fast.training_steps()) == 2


@pytest.mark.parametrize("name, kind", [("lenet5", CompiledConvPoolReLU), ("relu", CompiledConvPoolReLU),
                                        ("lenet5-wide", CompiledConvPoolReLU), ("classic", CompiledConvSquashPool),
                                        ("tanh", CompiledConvSquashPool), ("lenet5-1998", CompiledConvSquashPool)])
def test_predictions_run_each_conv_and_pooling_as_one_step_with_the_steps_values(name, kind):
    model = build_model(name, seed=3)
    x = np.random.default_rng(5).standard_normal((7,) + MODELS[name].input_shape).astype(np.float32)
    fast, unfused = FastModel(model, backend="compiled"), FastModel(model, backend="compiled", fused=False)
    with jit.threads(2):
        steps = fast.eval().inference_steps()
        assert sum(isinstance(step, kind) for step in steps) == 2
        found, expected = fast.predict_logits(x), unfused.predict_logits(x)
    if name == "lenet5-1998":
        # Subsampling's w·Σ + b: LLVM may make it one multiply-add in one kernel and not in the other.
        np.testing.assert_allclose(found, expected, rtol=1e-6)
    else:  # the same kernels' arithmetic, in the same order: the same bits as the steps one by one
        assert np.array_equal(found, expected)
    model.to(np.float64)
    x = x.astype(np.float64)
    np.testing.assert_allclose(fast.predict_logits(x), model.eval().forward(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("relu", [True, False], ids=["relu", "no-relu"])
def test_the_fused_prediction_step_keeps_nans_and_negative_maxima_as_the_steps_do(relu):
    rng = np.random.default_rng(6)
    layers = [ln.Conv2D(2, 3, 5, rng=rng), ln.MaxPool2D(2)] + ([ln.ReLU()] if relu else [])
    model = ln.Sequential(*layers).eval()
    layers[0].bias.value[:] = -4  # most window maxima negative, for the ReLU to clip
    x = rng.standard_normal((3, 2, 10, 9)).astype(np.float32)
    x[0, 0, 2, 3] = np.nan  # poisons the windows of the conv outputs it reaches
    fast = FastModel(model, backend="compiled")
    assert isinstance(fast.inference_steps()[0], CompiledConvPoolReLU)
    found, expected = fast.predict_logits(x), model.forward(x)
    assert np.array_equal(np.isnan(found), np.isnan(expected)) and np.isnan(found).any()
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-6)
    assert (found[~np.isnan(found)] < 0).any() != relu


# The script a fresh interpreter runs: Numba fixes its thread pool at start (NUMBA_NUM_THREADS),
# so three threads need a process started with three.
THREADS_SCRIPT = """
import json, sys
import numpy as np
from lenet5.fast import FastModel
from lenet5.fast.compiled import conv as compiled_conv
from lenet5.fast.compiled import jit
from lenet5.zoo.models import MODELS, build_model
from lenet5.nn import Adam

name, parallel_from = sys.argv[1], int(sys.argv[2])
jit.PARALLEL_FROM = parallel_from
results = {}
for threads in (1, 2, 3):
    model = build_model(name, seed=0)
    engine = FastModel(model, backend="compiled", threads=threads)
    optimizer = Adam(model.parameters(), lr=1e-3)
    loss = MODELS[name].make_loss()
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.standard_normal((48,) + MODELS[name].input_shape).astype(np.float32)
        y = rng.integers(0, 10, 48)
        optimizer.zero_grad()
        engine.backward(loss.value_and_grad(engine.forward(x), y)[1], input_grad=False)
        optimizer.step()
    logits = engine.predict_logits(x)
    state = model.state_dict()
    digest = np.concatenate([state[key].ravel().astype(np.float64) for key in sorted(state)] + [logits.ravel()])
    results[threads] = digest.tobytes().hex()
print(json.dumps(results))
"""


@pytest.mark.parametrize("name", ["lenet5", "classic", "lenet5-1998"])
def test_weights_after_training_steps_do_not_depend_on_the_thread_count(name):
    """Serial builds, and parallel builds on 1, 2 and 3 threads: the same bits."""
    env = dict(os.environ, NUMBA_NUM_THREADS="3")
    digests = {}
    for label, parallel_from in (("parallel", 0), ("serial", 10**18)):
        done = subprocess.run([sys.executable, "-c", THREADS_SCRIPT, name, str(parallel_from)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        for threads, digest in json.loads(done.stdout).items():
            digests[f"{label}, {threads} threads"] = digest
    assert len(set(digests.values())) == 1, sorted(digests)


def test_the_backend_is_chosen_by_name_and_numba_is_optional(monkeypatch):
    assert FastModel(build_model("relu"), backend="numpy").backend.name == "numpy"
    assert FastModel(build_model("relu"), backend="compiled").backend.name == "compiled"
    with pytest.raises(ValueError, match="unknown backend 'cuda': expected one of auto, compiled, numpy"):
        FastModel(build_model("relu"), backend="cuda")
    monkeypatch.setattr(compiled, "available", lambda: False)
    assert FastModel(build_model("relu")).backend.name == "numpy"
    with pytest.raises(backend_table.BackendUnavailable, match=r"needs Numba and SciPy: pip install 'lenet5\[fast\]'"):
        FastModel(build_model("relu"), backend="compiled")


def test_small_work_runs_the_serial_build_and_large_work_the_parallel_one(monkeypatch):
    calls = []
    kernel = jit.Kernel(lambda a: a)
    monkeypatch.setattr(kernel, "serial", lambda *args: calls.append("serial"))
    monkeypatch.setattr(kernel, "parallel", lambda *args: calls.append("parallel"))
    kernel(jit.PARALLEL_FROM - 1, 0)
    kernel(jit.PARALLEL_FROM, 0)
    assert calls == ["serial", "parallel"]


CACHE_SCRIPT = """
import numpy as np
from lenet5.fast.compiled import conv
print(conv.__file__)
sums = np.empty(2)
conv.channel_sums(0, np.ones((2, 3)), sums)
assert sums.tolist() == [3.0, 3.0]
print(sum(conv.channel_sums.serial.stats.cache_hits.values()))
"""


def test_compiled_code_is_cached_in_the_users_cache_where_the_package_cannot_hold_it(tmp_path):
    """A package installed where its own `__pycache__` cannot be written (here: a file stands in
    its place, which stops root too) still caches its compiled code: in the user's cache
    directory, Numba's own fallback, and a second process loads it from there."""
    import shutil

    import lenet5

    package = tmp_path / "site" / "lenet5"
    shutil.copytree(os.path.dirname(lenet5.__file__), package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    (package / "fast" / "compiled" / "__pycache__").write_text("not a directory\n")
    cache_home = tmp_path / "cache"
    env = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_CACHE")}
    env.update(PYTHONPATH=str(package.parent), XDG_CACHE_HOME=str(cache_home), HOME=str(tmp_path))
    hits = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", CACHE_SCRIPT], env=env, capture_output=True, text=True,
                              timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        where, hit_count = done.stdout.split()
        assert where.startswith(str(package)), where  # the copy, not the checkout
        hits.append(int(hit_count))
    assert hits == [0, 1]  # compiled by the first process, loaded by the second
    cached = sorted(path.name for path in cache_home.rglob("*") if path.suffix in (".nbi", ".nbc"))
    assert any(name.startswith("conv.channel_sums") for name in cached), cached


@pytest.mark.parametrize("layer", [ln.Sigmoid(), ln.Tanh(), ln.ScaledTanh()], ids=["sigmoid", "tanh", "scaled-tanh"])
@DTYPES
def test_activations_split_over_the_threads_compute_the_reference_layer(layer, dtype, monkeypatch):
    from lenet5.fast import threads as threads_module
    from lenet5.fast.compiled import elementwise

    monkeypatch.setattr(elementwise, "SPLIT_FROM", 2)  # split even a small batch
    pool = threads_module._pool()
    submitted = []
    monkeypatch.setattr(pool, "submit", lambda function, *pieces, submit=pool.submit:
                        submitted.append(len(pieces[0])) or submit(function, *pieces))
    (step,) = FastModel(layer, backend="compiled").steps
    assert type(step).__module__ == "lenet5.fast.compiled.elementwise"
    with jit.threads(3):
        assert_step_matches_layer(step, layer, np.random.default_rng(4).standard_normal((5, 3, 7, 6)), dtype)
    if numba.config.NUMBA_NUM_THREADS > 1:  # a one-core machine has no second thread to give
        assert submitted  # the passes did run in pieces on the pool's threads


def test_the_compiled_float32_tanh_is_within_five_ulps_of_the_exact_one():
    from lenet5.fast.compiled.elementwise import tanh_forward

    x = np.concatenate([np.linspace(-12, 12, 1_000_001), np.logspace(-30, 1.2, 20_001)]).astype(np.float32)
    found = np.empty_like(x)
    tanh_forward(x, found)
    exact = np.tanh(x.astype(np.float64))
    ulps = np.abs(found - exact) / np.spacing(np.abs(exact).astype(np.float32))
    assert ulps.max() <= 5.5
    assert np.abs(found).max() <= 1  # so 1 − tanh², the backward pass's factor, is never negative
    grid = found[:1_000_001]
    assert np.array_equal(grid, -grid[::-1])  # odd, as tanh is
