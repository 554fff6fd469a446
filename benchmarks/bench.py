"""lenet5 against PyTorch on the CPU, the same networks side by side in one run.

For each model and batch size, rounds alternate lenet5 and PyTorch so drift in the machine
(thermal, other load) hits both, and which side goes first alternates too. It prints
training seconds per epoch (median, min, max), inference images per second, peak memory,
both sides' time per layer type (PyTorch's from torch.profiler's operator times), and the
arithmetic floor (FLOPs per epoch over a measured matrix-multiply rate), the cost of the training
distortions beside a training step's (`--augment-only` for that alone), and the optimisation
ladder (the reference engine, then each speed-up of the fast engine added in turn); it
writes results.json.

    python benchmarks/bench.py                   # the full table (several minutes)
    python benchmarks/bench.py --images 12800    # a quicker estimate, scaled to an epoch
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

THREADS = 2
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
os.environ.setdefault("MKL_NUM_THREADS", str(THREADS))

import numpy as np  # noqa: E402

EPOCH = 60_000
INFERENCE_BATCHES = (64, 256, 1000)


def load_data(model_name: str):
    from lenet5.data import load_dataset, preprocess
    from lenet5.zoo.models import get_spec

    spec = get_spec(model_name)
    dataset = load_dataset("mnist")
    kwargs = dict(method=spec.preprocessing.method, pad=spec.preprocessing.pad, mean=dataset.mean, std=dataset.std)
    return (preprocess(dataset.train_images, **kwargs), dataset.train_labels.astype(np.int64),
            preprocess(dataset.test_images, **kwargs), dataset.test_labels.astype(np.int64))


# -- the two sides -------------------------------------------------------------------------
class Lenet5Side:
    """lenet5 as `lenet5 train` runs it: the fast engine (lenet5.fast.FastModel) in one
    process, by default on its compiled kernels on THREADS threads (with --backend numpy,
    the NumPy steps with BLAS on THREADS threads). `engine(model)` builds another rung of
    the ladder."""

    name = "lenet5"
    backend = "compiled"  # set by --backend

    def __init__(self, model_name, seed=0, engine=None):
        from lenet5.fast import FastModel, FlatOptimizer
        from lenet5.nn import Adam, SoftmaxCrossEntropy
        from lenet5.zoo.models import build_model

        self.model = build_model(model_name, seed)
        self.loss = SoftmaxCrossEntropy()
        if engine is None:
            def engine(model):
                return FastModel(model, backend=self.backend, threads=THREADS)
        self.engine = engine(self.model)
        # As `lenet5 train` steps it (training.recipe.make_optimizer): one flat buffer, and
        # on the compiled kernels Adam's compiled loop.
        compiled = getattr(getattr(self.engine, "backend", None), "name", None) == "compiled"
        self.optimizer = FlatOptimizer(Adam(self.model.parameters(), lr=1e-3), compiled=compiled)

    def train(self, x, y, batch_size, order, augment="none", fill=0.0, rng=None):
        """One pass over x[order]; with `augment`, each batch is distorted at strength 1 by
        the engine, as `lenet5 train --augment` does (lenet5.data.augment.Distortion)."""
        from lenet5.data.augment import Distortion

        engine, optimizer, loss = self.engine, self.optimizer, self.loss
        self.model.train()
        for start in range(0, len(order), batch_size):
            index = order[start: start + batch_size]
            optimizer.zero_grad()
            logits = engine.forward(x[index], distortion=Distortion.draw(augment, 1.0, rng, fill))
            _, dlogits = loss.value_and_grad(logits, y[index])
            engine.backward(dlogits, input_grad=False)
            optimizer.step()

    def infer(self, x, batch_size):
        return self.engine.predict(x, batch_size)


class ReferenceEngine:
    """The reference engine (lenet5.nn) behind the same interface: NCHW, no speed-ups."""

    def __init__(self, model):
        self.model = model

    def forward(self, x, distortion=None):
        return self.model.forward(x if distortion is None else distortion.apply(x))

    def backward(self, dout, input_grad=True):
        return self.model.backward(dout)

    def predict(self, x, batch_size):
        return self.model.predict_logits(x, batch_size).argmax(axis=1)


class TorchSide:
    name = "pytorch"

    def __init__(self, model_name, seed=0):
        import torch

        from lenet5.torch_twin import torch_twin
        from lenet5.zoo.models import build_model

        torch.set_num_threads(THREADS)
        self.torch = torch
        self.model = torch_twin(build_model(model_name, seed))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = torch.nn.CrossEntropyLoss()

    def train(self, x, y, batch_size, order):
        torch, model, optimizer = self.torch, self.model, self.optimizer
        model.train()
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        order = torch.from_numpy(order)
        for start in range(0, len(order), batch_size):
            index = order[start: start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = self.loss(model(x[index]), y[index])
            loss.backward()
            optimizer.step()

    def infer(self, x, batch_size):
        torch = self.torch
        self.model.eval()
        x = torch.from_numpy(x)
        with torch.inference_mode():
            return torch.cat([self.model(x[i: i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


class OnnxRuntimeSide:
    """Inference only: the model exported by `lenet5 export` (raw pixels in, its preprocessing
    inside the graph), run by onnxruntime in float32 on THREADS threads, as a user shipping
    the model would run it. It is given the raw test pixels."""

    name = "onnxruntime"

    def __init__(self, model_name, seed=0):
        import onnxruntime as ort

        from lenet5.data import load_dataset
        from lenet5.export.onnx_graph import to_onnx
        from lenet5.zoo.models import build_model, get_spec

        spec, dataset = get_spec(model_name), load_dataset("mnist")
        metadata = {"architecture": model_name, "dataset": "mnist",
                    "preprocessing": {"method": spec.preprocessing.method, "pad": spec.preprocessing.pad,
                                      "mean": float(dataset.mean), "std": float(dataset.std)}}
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
        proto = to_onnx(build_model(model_name, seed).eval(), metadata)
        self.session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.pixels = dataset.test_images.astype(np.float32)[:, None]

    def infer(self, x, batch_size):
        pixels = self.pixels[: len(x)]
        return [self.session.run(None, {"pixels": pixels[i: i + batch_size]})[0].argmax(1)
                for i in range(0, len(pixels), batch_size)]


class PublicApiSide:
    """Inference as a user of the library calls it: `lenet5.load(run).probabilities` on the
    raw uint8 test digits, the run's preprocessing and output checks included (the same
    `Classifier` that `load` returns, built here around a fresh model). It takes all the
    images in one call and batches them itself, so the batch size does not apply."""

    name = "lenet5.load().probabilities"

    def __init__(self, model_name, seed=0):
        from pathlib import Path

        from lenet5.data import load_dataset
        from lenet5.run.classifier import Classifier
        from lenet5.zoo.models import build_model, get_spec

        spec, dataset = get_spec(model_name), load_dataset("mnist")
        metadata = {"architecture": model_name, "dataset": "mnist",
                    "preprocessing": {"method": spec.preprocessing.method, "pad": spec.preprocessing.pad,
                                      "mean": float(dataset.mean), "std": float(dataset.std)}}
        self.classifier = Classifier(build_model(model_name, seed).eval(), metadata, Path("bench-run"))
        self.pixels = dataset.test_images

    def infer(self, x, batch_size):
        return self.classifier.probabilities(self.pixels[: len(x)]).argmax(1)


SIDES = {"lenet5": Lenet5Side, "pytorch": TorchSide}
INFERENCE_SIDES = {**SIDES, "onnxruntime": OnnxRuntimeSide, "api": PublicApiSide}


# -- measurements --------------------------------------------------------------------------
def time_training(model_name, batch_sizes, rounds, images, seed=0):
    x, y, x_test, _ = load_data(model_name)
    rng = np.random.default_rng(seed)
    results = {}
    for batch_size in batch_sizes:
        sides = {name: cls(model_name, seed) for name, cls in SIDES.items()}
        for side in sides.values():  # warm-up: first-call allocations, BLAS thread start
            side.train(x, y, batch_size, rng.permutation(len(x))[: batch_size * 4])
        times = collections.defaultdict(list)
        for round_index in range(rounds):
            order = rng.permutation(len(x))[:images]
            for name, side in _in_turn(sides, round_index):
                started = time.perf_counter()
                side.train(x, y, batch_size, order)
                times[name].append((time.perf_counter() - started) * EPOCH / images)
        results[batch_size] = dict(times)
    # Each side predicts at the batch size it runs fastest (a trial of each first), so
    # neither is held to a batch size that suits only the other.
    inference = collections.defaultdict(list)
    sides = {name: cls(model_name, seed) for name, cls in INFERENCE_SIDES.items()}
    best_batch = {}
    for name, side in sides.items():
        side.infer(x_test[:1000], INFERENCE_BATCHES[0])
        trial = {size: max(_throughput(side, x_test, size) for _ in range(2)) for size in INFERENCE_BATCHES}
        best_batch[name] = max(trial, key=trial.get)
    for round_index in range(rounds):
        for name, side in _in_turn(sides, round_index):
            inference[name].append(_throughput(side, x_test, best_batch[name]))
    return results, dict(inference), best_batch


def _in_turn(sides, round_index):
    """The sides in the order they run in this round: lenet5 first in even rounds, PyTorch
    first in odd ones, so neither always runs right after the other."""
    items = list(sides.items())
    return items if round_index % 2 == 0 else items[::-1]


def _throughput(side, x, batch_size) -> float:
    started = time.perf_counter()
    side.infer(x, batch_size)
    return len(x) / (time.perf_counter() - started)


def _rss_kib(field: str, pid="self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _memory_child(side_name, model_name, batch_size, steps, backend, queue):
    Lenet5Side.backend = backend
    x, y, _, _ = load_data(model_name)
    side = SIDES[side_name](model_name)
    order = np.random.default_rng(0).permutation(len(x))[: batch_size * steps]
    side.train(x, y, batch_size, order[: batch_size * 2])  # first-step allocations, thread pools
    before = _rss_kib("VmRSS", "self")
    # Reset the kernel's high-water mark, so the peak below is that of training alone, not
    # of loading and preprocessing the data (which both sides share).
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    side.train(x, y, batch_size, order)
    queue.put((_rss_kib("VmHWM", "self") * 1024, before * 1024))


def measure_memory(model_name, batch_size=256, steps=30):
    """Peak RSS while training each side in a fresh process, and its RSS just before."""
    context = multiprocessing.get_context("spawn")
    out = {}
    for name in SIDES:
        queue = context.Queue()
        process = context.Process(target=_memory_child,
                                  args=(name, model_name, batch_size, steps, Lenet5Side.backend, queue))
        process.start()
        peak, before = queue.get(timeout=600)
        process.join()
        out[name] = {"peak_rss_mb": peak / 2**20, "training_growth_mb": (peak - before) / 2**20}
    return out


LAYER_GROUPS = {
    "Conv2D": "convolution", "MaxPool2D": "pooling", "AvgPool2D": "pooling", "Subsampling": "pooling",
    "BatchNorm2D": "normalisation", "BatchNorm1D": "normalisation", "ReLU": "activations",
    "Sigmoid": "activations", "Tanh": "activations", "ScaledTanh": "activations",
    "Dropout": "activations", "Dense": "dense", "Flatten": "reshape",
}


class _TimedStep:
    """A fast step with its forward and backward timed under its layer type's name."""

    def __init__(self, step, totals):
        self.step, self.totals = step, totals
        if type(step).__name__.endswith("NormPoolReLU"):  # the NumPy step or the compiled one
            self.group = "normalisation + pooling + ReLU (fused)"
        else:
            self.group = LAYER_GROUPS.get(type(step.layer).__name__, type(step.layer).__name__)

    def _timed(self, key, function, *args):
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            self.totals[f"{self.group} {key}"] += time.perf_counter() - started

    def forward(self, x):
        return self._timed("forward", self.step.forward, x)

    def backward(self, dout):
        return self._timed("backward", self.step.backward, dout)

    def backward_parameters(self, dout):
        return self._timed("backward", self.step.backward_parameters, dout)


def layer_split(model_name, batch_size, images, seed=0):
    """lenet5's seconds per epoch by layer type, forward and backward, in one process: where
    the fast engine's time goes, before any split over cores."""
    from lenet5.fast import FastModel

    totals = collections.defaultdict(float)

    class TimedFastModel(FastModel):
        def training_steps(self):
            return [_TimedStep(step, totals) for step in super().training_steps()]

    def timed(key, function, *args):
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            totals[key] += time.perf_counter() - started

    x, y, _, _ = load_data(model_name)
    side = Lenet5Side(model_name, seed, engine=TimedFastModel)
    order = np.random.default_rng(seed).permutation(len(x))[:images]
    started = time.perf_counter()
    side.model.train()
    for start in range(0, len(order), batch_size):
        index = order[start: start + batch_size]
        timed("optimiser", side.optimizer.zero_grad)
        logits = side.engine.forward(x[index])
        _, dlogits = timed("loss", side.loss.value_and_grad, logits, y[index])
        side.engine.backward(dlogits, input_grad=False)
        timed("optimiser", side.optimizer.step)
    total = time.perf_counter() - started
    split = _per_epoch(totals, images)
    split["other (batching, Python)"] = total * EPOCH / images - sum(split.values())
    return split


# -- the optimisation ladder ---------------------------------------------------------------
def ladder_rungs():
    """(name, engine factory): the reference engine, then each speed-up added in turn."""
    from lenet5.fast import FastModel

    def numpy(**speedups):
        return lambda m: FastModel(m, backend="numpy", threads=1, **speedups)

    return [
        ("reference engine (lenet5.nn, NCHW)", ReferenceEngine),
        ("+ batch-last layout (lenet5.fast)", numpy(blocked=False, fused=False, plan=False)),
        ("+ blocked convolution", numpy(fused=False, plan=False)),
        ("+ fused BatchNorm/max-pool/ReLU step", numpy(plan=False)),
        ("+ folded inference plan", numpy()),
        ("+ compiled kernels (Numba), 1 thread", lambda m: FastModel(m, backend="compiled", threads=1)),
        (f"+ {THREADS} threads", lambda m: FastModel(m, backend="compiled", threads=THREADS)),
    ]


def optimisation_ladder(model_name, batch_size, images, rounds, seed=0):
    """Training seconds per epoch and inference images per second of each rung, rounds
    interleaved so drift hits every rung alike; PyTorch measured beside them."""
    x, y, x_test, _ = load_data(model_name)
    rng = np.random.default_rng(seed)
    sides = {name: Lenet5Side(model_name, seed, engine=factory) for name, factory in ladder_rungs()}
    sides["pytorch, for scale"] = TorchSide(model_name, seed)
    for side in sides.values():  # warm-up: first-call allocations, BLAS threads
        side.train(x, y, batch_size, rng.permutation(len(x))[: batch_size * 4])
        side.infer(x_test[:1000], batch_size)
    training, inference = collections.defaultdict(list), collections.defaultdict(list)
    for round_index in range(rounds):
        order = rng.permutation(len(x))[:images]
        for name, side in _in_turn(sides, round_index):
            started = time.perf_counter()
            side.train(x, y, batch_size, order)
            training[name].append((time.perf_counter() - started) * EPOCH / images)
            inference[name].append(_throughput(side, x_test, batch_size))
    return {name: {"train_seconds_per_epoch": statistics.median(training[name]),
                   "inference_images_per_second": statistics.median(inference[name])} for name in sides}


def print_ladder(model_name, batch_size, ladder):
    print(f"== optimisation ladder: {model_name}, batch {batch_size} (medians)")
    print(f"  {'rung':<42}{'train s/epoch':>14}{'gain':>7}{'infer img/s':>13}{'gain':>7}")
    previous = None
    for name, row in ladder.items():
        train, infer = row["train_seconds_per_epoch"], row["inference_images_per_second"]
        gains = ("", "") if previous is None or name.startswith("pytorch") else \
            (f"{previous[0] / train:.2f}", f"{infer / previous[1]:.2f}")
        print(f"  {name:<42}{train:>14.2f}{gains[0]:>7}{infer:>13,.0f}{gains[1]:>7}")
        if not name.startswith("pytorch"):
            previous = (train, infer)
    print("  gain: times faster than the rung above; the inference plan changes inference only")
    print("  (the NumPy steps on 2 processes, DataParallel, were retired on this ladder: lenet5 at batch 64\n"
          "  trained at 3.97 s/epoch on them against 3.50 s on the compiled kernels on 2 threads)")


# PyTorch's operators by the layer type they belong to. An operator not listed is charged to
# the nearest listed operator above it in the profiler's call tree (an allocation inside a
# convolution is convolution time), and to "other" when there is none.
TORCH_GROUPS = {
    "convolution forward": ("aten::conv2d", "aten::convolution", "aten::_convolution", "aten::mkldnn_convolution"),
    "convolution backward": ("aten::convolution_backward",),
    "pooling forward": ("aten::max_pool2d", "aten::max_pool2d_with_indices", "aten::avg_pool2d"),
    "pooling backward": ("aten::max_pool2d_with_indices_backward", "aten::avg_pool2d_backward"),
    "normalisation forward": ("aten::batch_norm", "aten::_batch_norm_impl_index", "aten::native_batch_norm"),
    "normalisation backward": ("aten::native_batch_norm_backward",),
    # Dropout is charged to activations on both sides (LAYER_GROUPS).
    "activations forward": ("aten::relu", "aten::clamp_min", "aten::sigmoid", "aten::tanh", "aten::dropout",
                            "aten::native_dropout", "aten::bernoulli_", "aten::mul"),
    "activations backward": ("aten::threshold_backward", "aten::sigmoid_backward", "aten::tanh_backward",
                             "aten::native_dropout_backward"),
    "dense forward": ("aten::linear", "aten::addmm"),
    "dense backward": ("aten::mm",),
    "loss": ("aten::cross_entropy_loss", "aten::log_softmax", "aten::_log_softmax", "aten::nll_loss",
             "aten::nll_loss_forward", "aten::nll_loss_backward", "aten::_log_softmax_backward_data"),
    "optimiser": ("Optimizer.step#Adam.step", "Optimizer.zero_grad#Adam.zero_grad"),
}
TORCH_GROUP_OF = {name: group for group, names in TORCH_GROUPS.items() for name in names}


def torch_layer_split(model_name, batch_size, images, seed=0):
    """PyTorch's seconds per epoch by layer type, from torch.profiler's operator times.

    The profiler adds a little time to every operator, so this is a split, not a timing: its
    parts sum to the profiled epoch, which "other" (Python, autograd bookkeeping, batching)
    completes.
    """
    from torch.profiler import ProfilerActivity, profile

    x, y, _, _ = load_data(model_name)
    side = TorchSide(model_name, seed)
    order = np.random.default_rng(seed).permutation(len(x))[:images]
    side.train(x, y, batch_size, order[: batch_size * 4])  # warm-up, as for the timings
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        started = time.perf_counter()
        side.train(x, y, batch_size, order)
        total = time.perf_counter() - started
    totals = collections.defaultdict(float)
    for event in profiler.events():
        owner = event
        while owner is not None and owner.name not in TORCH_GROUP_OF:
            owner = owner.cpu_parent
        if owner is not None:
            totals[TORCH_GROUP_OF[owner.name]] += event.self_cpu_time_total / 1e6
    split = _per_epoch(totals, images)
    split["other (batching, Python)"] = total * EPOCH / images - sum(split.values())
    return split


def _per_epoch(totals, images):
    """Seconds measured over `images` images, scaled to one epoch, largest first."""
    scale = EPOCH / images
    return {key: value * scale for key, value in sorted(totals.items(), key=lambda kv: -kv[1])}


def flops_per_epoch(model_name) -> float:
    """Multiply-adds ×2 of the matrix products of one training epoch (forward + backward)."""
    from lenet5.nn import Conv2D, Dense
    from lenet5.zoo.models import build_model

    model = build_model(model_name)
    shape, flops, first = model.input_shape, 0.0, True
    for layer in model.layers:
        out = layer.output_shape(shape)
        if isinstance(layer, Conv2D):
            forward = 2 * out[0] * out[1] * out[2] * layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, Dense):
            forward = 2 * layer.in_features * layer.out_features
        else:
            forward = 0
        # backward: the weight gradient, plus the input gradient for all but the first layer
        flops += forward * (2 if first else 3)
        if forward:
            first = False
        shape = out
    return flops * EPOCH


def matmul_rate(size=1024, repeats=10) -> float:
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    b = a.copy()
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started)


# -- report --------------------------------------------------------------------------------
def augmentation_cost(model_name="lenet5", batch_size=128, images=12_800, rounds=5, seed=0):
    """What `lenet5 train --augment KIND` adds to an epoch: seconds of one epoch's training
    steps of `model_name` (the fast engine as Lenet5Side runs it) with each kind at
    strength 1, less the same steps without distortions in the same round, the median over
    rounds; and each kind alone, for scale."""
    from lenet5.data.augment import KINDS, distort

    x, y, _, _ = load_data(model_name)
    x, y = x[:images], y[:images]
    fill = float(x.min())
    rng = np.random.default_rng(seed)
    per_epoch = EPOCH / images
    result = {"batch_size": batch_size, "alone": {}, "added": {}}
    for kind in KINDS[1:]:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            for start in range(0, images, batch_size):
                distort(x[start: start + batch_size], kind, 1.0, rng, fill=fill)
            times.append((time.perf_counter() - started) * per_epoch)
        result["alone"][kind] = min(times)
    side = Lenet5Side(model_name, seed)
    order = np.arange(images)
    side.train(x, y, batch_size, order[: batch_size * 4], "elastic", fill, rng)  # warm-up: first-call allocations
    times = {kind: [] for kind in KINDS}
    for _ in range(rounds):  # the kinds interleaved, so a slow spell of the machine hits each alike
        for kind in KINDS:
            started = time.perf_counter()
            side.train(x, y, batch_size, order, kind, fill, rng)
            times[kind].append((time.perf_counter() - started) * per_epoch)
    result["training_seconds_per_epoch"] = statistics.median(times["none"])
    for kind in KINDS[1:]:
        # Paired with its round's undistorted steps: a slow spell of a shared machine moves
        # both, so the difference holds where the two minima need not.
        result["added"][kind] = statistics.median(np.subtract(times[kind], times["none"]))
    return result


def print_augmentation_cost(model_name, cost):
    training = cost["training_seconds_per_epoch"]
    print(f"== distortions of {model_name}'s training images, batch {cost['batch_size']}, per epoch "
          f"of {EPOCH:,} images (training steps without them: {training:.2f} s)")
    print(f"  {'kind':<10}{'added to the steps':>30}{'alone':>28}")
    for kind, added in cost["added"].items():
        alone = cost["alone"][kind]
        print(f"  {kind:<10}{added:>8.2f} s ({added / training * 100:5.1f}% of the steps)"
              f"{alone:>10.2f} s ({alone / EPOCH * cost['batch_size'] * 1000:.2f} ms a batch)")


def stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def print_split(ours, theirs):
    """Both sides' time by layer type, largest first."""
    print(f"  {'time by layer type at batch 256, s/epoch':<48}{'lenet5':>8}{'pytorch':>9}")
    for key in sorted(set(ours) | set(theirs), key=lambda k: -max(ours.get(k, 0), theirs.get(k, 0))):
        cells = [f"{side[key]:.2f}" if key in side else "-" for side in (ours, theirs)]
        print(f"    {key:<46}{cells[0]:>8}{cells[1]:>9}")
    print(f"    {'total':<46}{sum(ours.values()):>8.2f}{sum(theirs.values()):>9.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,lenet5-wide,classic,tanh,relu,simple-cnn,lenet5-1998")
    parser.add_argument("--batch-sizes", default="64,256")
    parser.add_argument("--rounds", type=int, default=6, help="even, so each side goes first equally often")
    parser.add_argument("--images", type=int, default=EPOCH, help="images timed per round (scaled to an epoch)")
    parser.add_argument("--backend", choices=("compiled", "numpy"), default="compiled",
                        help=f"lenet5's kernels; compiled runs {THREADS} threads in one process")
    parser.add_argument("--ladder", default="lenet5", help="models for the optimisation ladder ('' for none)")
    parser.add_argument("--ladder-batch-size", type=int, default=64)
    parser.add_argument("--augment-only", action="store_true",
                        help="only the cost of the training distortions beside a training step's (seconds)")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args(argv)
    Lenet5Side.backend = args.backend
    if args.augment_only:
        cost = augmentation_cost(images=min(args.images, 12_800))
        print_augmentation_cost("lenet5", cost)
        print(json.dumps(cost))
        return 0
    import torch

    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rate = matmul_rate()
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, PyTorch on {THREADS} threads, "
                   f"lenet5 {args.backend} on {THREADS} threads, "
                   f"Python {platform.python_version()}, NumPy {np.__version__}, PyTorch {torch.__version__}",
        "images_per_round": args.images, "rounds": args.rounds,
        "lenet5_backend": args.backend,
        "matmul_gflops": rate / 1e9, "models": {},
    }
    print(report["machine"])
    print(f"float32 matrix-multiply rate: {rate / 1e9:.0f} GFLOP/s (1024x1024x1024)\n")
    for model_name in args.models.split(","):
        training, inference, inference_batch = time_training(model_name, batch_sizes, args.rounds, args.images)
        memory = measure_memory(model_name)
        split = layer_split(model_name, 256, min(args.images, 12_800))
        torch_split = torch_layer_split(model_name, 256, min(args.images, 12_800))
        flops = flops_per_epoch(model_name)
        entry = {"training": {}, "inference": {}, "memory": memory, "layer_split_batch256": split,
                 "pytorch_layer_split_batch256": torch_split,
                 "flops_per_epoch": flops, "floor_seconds_per_epoch": flops / rate}
        print(f"== {model_name}")
        print(f"  {'training s/epoch':<22}{'lenet5 (med/min/max)':>24}{'pytorch (med/min/max)':>26}{'ratio':>8}")
        for batch_size, times in training.items():
            ours, theirs = stats(times["lenet5"]), stats(times["pytorch"])
            ratio = statistics.median(a / b for a, b in zip(times["lenet5"], times["pytorch"]))
            entry["training"][batch_size] = {"lenet5": ours, "pytorch": theirs, "ratio": ratio}
            print(f"  batch {batch_size:<16}{ours['median']:>8.2f} {ours['min']:>6.2f} {ours['max']:>6.2f}"
                  f"{theirs['median']:>12.2f} {theirs['min']:>6.2f} {theirs['max']:>6.2f}{ratio:>8.2f}")
        ours, theirs, ort = stats(inference["lenet5"]), stats(inference["pytorch"]), stats(inference["onnxruntime"])
        ratio = statistics.median(a / b for a, b in zip(inference["lenet5"], inference["pytorch"]))
        ort_ratio = statistics.median(a / b for a, b in zip(inference["lenet5"], inference["onnxruntime"]))
        api = stats(inference["api"])
        api_ratio = statistics.median(a / b for a, b in zip(inference["api"], inference["onnxruntime"]))
        entry["inference"] = {"lenet5": ours, "pytorch": theirs, "onnxruntime": ort, "ratio": ratio,
                              "onnxruntime_ratio": ort_ratio, "public_api": api,
                              "public_api_onnxruntime_ratio": api_ratio, "batch_size": inference_batch}
        print(f"  inference img/s       {ours['median']:>10,.0f}{theirs['median']:>26,.0f}{ratio:>10.2f}"
              f"   (batch {inference_batch['lenet5']} vs {inference_batch['pytorch']}, each side's fastest"
              f" of {', '.join(map(str, INFERENCE_BATCHES))})")
        print(f"  onnxruntime img/s     {ort['median']:>36,.0f}{ort_ratio:>10.2f}   (lenet5 / onnxruntime, "
              f"batch {inference_batch['onnxruntime']})")
        print(f"  lenet5.load().probabilities img/s {api['median']:>25,.0f}{api_ratio:>10.2f}   "
              f"(the public API on raw uint8 digits / onnxruntime)")
        memory_ratio = memory["lenet5"]["peak_rss_mb"] / memory["pytorch"]["peak_rss_mb"]
        entry["memory_ratio"] = memory_ratio
        print(f"  peak RSS while training at batch 256: lenet5 {memory['lenet5']['peak_rss_mb']:.0f} MB "
              f"(+{memory['lenet5']['training_growth_mb']:.0f} MB over its RSS before training), pytorch "
              f"{memory['pytorch']['peak_rss_mb']:.0f} MB (+{memory['pytorch']['training_growth_mb']:.0f} MB); "
              f"ratio {memory_ratio:.2f}")
        print(f"  arithmetic floor: {flops / 1e9:.0f} GFLOP/epoch / {rate / 1e9:.0f} GFLOP/s = "
              f"{flops / rate:.2f} s/epoch")
        print_split(split, torch_split)
        print()
        report["models"][model_name] = entry
    report["augmentation"] = augmentation_cost(images=min(args.images, 12_800))
    print_augmentation_cost("lenet5", report["augmentation"])
    report["ladder"] = {}
    for model_name in filter(None, args.ladder.split(",")):
        ladder = optimisation_ladder(model_name, args.ladder_batch_size, min(args.images, 12_800),
                                     max(2, args.rounds // 2))
        print_ladder(model_name, args.ladder_batch_size, ladder)
        report["ladder"][model_name] = {"batch_size": args.ladder_batch_size, "rungs": ladder}
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    sys.exit(main())
