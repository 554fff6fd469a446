"""Hostile model and checkpoint files: each is refused in one line, before it can cost memory.

The files come from `tests/helpers/crafted.py`, built at test time. Every case asserts a
CheckpointError (a Lenet5Error) whose one line names the file and the problem; the bombs are
also loaded in a fresh process whose peak memory is measured, and a sample goes through the
command line (`lenet5 evaluate`, `lenet5 train --resume`): exit code 1, one line on stderr,
no traceback, and the file left as it was.
"""

import os
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest

from lenet5.errors import CheckpointError, Lenet5Error
from lenet5.files.weights import load_model
from lenet5.training.checkpoint import Checkpoint
from lenet5.training.recipe import make_optimizer
from lenet5.zoo.models import build_model

from ..helpers import crafted


@pytest.fixture
def model_file(tmp_path):
    return crafted.write_model(tmp_path / "valid-model.npz")


@pytest.fixture
def checkpoint_file(tmp_path):
    return crafted.write_checkpoint(tmp_path / "valid-checkpoint.npz")


def refused(load, path, *fragments):
    """The one-line CheckpointError `load(path)` raises; it names the file and each fragment."""
    tracemalloc.start()  # NumPy reports its buffers to tracemalloc too
    try:
        with pytest.raises(CheckpointError) as info:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert isinstance(info.value, Lenet5Error)
    assert "\n" not in message and len(message) < 400, message
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert peak < 64 * 2**20, f"{peak:,} bytes allocated: something large was decompressed"
    return message


def with_field(key, value):
    """A crafted file: the valid one with metadata field `key` set to `value` (or deleted)."""
    return lambda path, valid: crafted.write_with_metadata(path, valid, crafted.set_field(key, value))


# name -> (build the file from a valid one, what the message must say)
MODEL_CASES = {
    "bomb of 2**40 elements": (lambda p, v: crafted.write_bomb(p, v), "shape mismatch for fc1.weight"),
    "3.6 TiB declared": (lambda p, v: crafted.write_bomb(p, v, elements=1_000_000 * 1_000_000, payload=1024),
                         "shape mismatch for fc1.weight"),
    "2 GiB extra member": (lambda p, v: crafted.write_bomb(p, v, name="extra", elements=2**29, payload=1024),
                           "unexpected keys: extra"),
    "deeply nested JSON": (crafted.write_deep_json, "nested too deeply"),
    "nested JSON below the recursion limit": (lambda p, v: crafted.write_deep_json(p, v, depth=200),
                                              "nested too deeply"),
    "truncated": (crafted.write_truncated, "corrupt or truncated"),
    "int weights": (lambda p, v: crafted.write_with_array(p, v, "fc1.weight", np.ones((120, 400), np.int32)),
                    "fc1.weight is int32; weights must be float32 or float64"),
    "bool weights": (lambda p, v: crafted.write_with_array(p, v, "fc2.bias", np.ones(84, bool)),
                     "fc2.bias is bool"),
    "NaN weights": (lambda p, v: crafted.write_with_array(p, v, "fc2.bias", np.full(84, np.nan, np.float32)),
                    "fc2.bias holds non-finite values"),
    "object array": (lambda p, v: crafted.write_with_array(p, v, "fc2.bias", np.array([{}], dtype=object)),
                     "holds pickled objects"),
    "string array": (lambda p, v: crafted.write_with_array(p, v, "fc2.bias", np.array(["x"] * 84)),
                     "only numbers are loaded"),
    "another model's weights": (with_field("architecture", "lenet5"),
                                "does not match architecture 'lenet5'"),
    "missing weights": (lambda p, v: crafted.write_without(p, v, "conv1."), "missing keys: conv1.weight"),
    "a 5000-digit number": (lambda p, v: crafted.write_metadata_text(
        p, v, lambda text: text[:-1] + ', "metrics": {"n": ' + "9" * 5000 + "}}"), "not valid JSON"),
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_a_crafted_model_file_is_refused_in_one_line(tmp_path, model_file, case):
    build, fragment = MODEL_CASES[case]
    path = build(tmp_path / "model.npz", model_file)
    message = refused(load_model, path, fragment)
    assert "pickled" not in message or case == "object array"


@pytest.mark.parametrize("version, length", [((1, 0), 60_000), ((2, 0), 3 * 2**30)])
def test_an_oversized_npy_header_is_refused_in_our_words(tmp_path, model_file, version, length):
    """NumPy's refusal advises allow_pickle=True; ours names the size, read before the header is."""
    members = crafted.members_of(model_file)
    field = length.to_bytes(2 if version == (1, 0) else 4, "little")
    members["fc2.bias"] = b"\x93NUMPY" + bytes(version) + field + b"{" + b" " * 59_999
    path = crafted.write_members(tmp_path / "model.npz", members)
    message = refused(load_model, path, f"member 'fc2.bias' declares a .npy header of {length:,} bytes")
    assert "pickle" not in message


def test_random_bytes_are_not_called_pickled_objects(tmp_path):
    path = crafted.write_random_bytes(tmp_path / "model.npz")
    message = refused(load_model, path, "corrupt or truncated")
    assert "pickle" not in message


@pytest.mark.parametrize("method, fragment", [(zipfile.ZIP_BZIP2, "unsupported compression method 12"),
                                              (99, "unsupported compression method 99")])
def test_unsupported_compression_is_refused(tmp_path, model_file, method, fragment):
    path = crafted.write_members(tmp_path / "model.npz", crafted.members_of(model_file), zipfile.ZIP_STORED)
    crafted.patch_zip_entries(path, method=method)
    refused(load_model, path, fragment)


def test_encrypted_members_are_refused(tmp_path, model_file):
    path = crafted.write_members(tmp_path / "model.npz", crafted.members_of(model_file), zipfile.ZIP_STORED)
    crafted.patch_zip_entries(path, flags=0x1)
    refused(load_model, path, "is encrypted")


def test_a_directory_is_not_called_a_missing_file(tmp_path):
    path = tmp_path / "model.npz"
    path.mkdir()
    refused(Checkpoint, path, "is a directory")


def test_a_valid_model_and_checkpoint_still_load(model_file, checkpoint_file):
    model, metadata = load_model(model_file)
    assert metadata["architecture"] == "relu" and model.num_parameters() == 61706
    checkpoint = Checkpoint(checkpoint_file)
    target = build_model("relu", seed=5)
    optimizer = make_optimizer(checkpoint.config, target.parameters())
    generators = {"shuffle": np.random.default_rng(0), "augment": np.random.default_rng(0)}
    state = checkpoint.restore(target, optimizer, generators)
    assert state.epoch == 1 and state.step == 0 and optimizer.steps == 1
    assert set(optimizer.flat_state) == {"mean", "sq"}


# name -> (build the file from a valid checkpoint, what the message must say)
CHECKPOINT_CASES = {
    "bomb in a weight": (lambda p, v: crafted.write_bomb(p, v, name="model.fc1.weight"),
                         "shape mismatch for model.fc1.weight"),
    "2 GiB extra member": (lambda p, v: crafted.write_bomb(p, v, name="extra", elements=2**29, payload=1024),
                           "unexpected keys: extra"),
    "extra small member": (lambda p, v: crafted.write_with_array(p, v, "optimizer.state.0.velocity",
                                                                 np.zeros((6, 1, 5, 5), np.float32)),
                           "unexpected keys: optimizer.state.0.velocity"),
    "missing optimiser state": (lambda p, v: crafted.write_without(p, v, "optimizer.state."),
                                "the checkpoint lacks optimizer.state.0.mean"),
    "missing optimiser steps": (lambda p, v: crafted.write_without(p, v, "optimizer.steps"),
                                "lacks optimizer.steps"),
    "NaN optimiser state": (lambda p, v: crafted.write_with_array(p, v, "optimizer.state.0.sq",
                                                                  np.full((6, 1, 5, 5), np.nan, np.float32)),
                            "optimizer.state.0.sq holds non-finite values"),
    "negative optimiser steps": (lambda p, v: crafted.write_with_array(p, v, "optimizer.steps", np.array(-3)),
                                 "optimizer.steps must be a non-negative integer"),
    "int weights": (lambda p, v: crafted.write_with_array(p, v, "model.fc1.weight",
                                                          np.ones((120, 400), np.int64)),
                    "model.fc1.weight is int64"),
    "NaN weights": (lambda p, v: crafted.write_with_array(p, v, "model.fc2.bias",
                                                          np.full(84, np.inf, np.float32)),
                    "model.fc2.bias holds non-finite values"),
    "another model's weights": (with_field("architecture", "tanh"),
                                "hyperparameters name model 'relu', but its weights are for 'tanh'"),
    "epoch 99": (with_field("training.epoch", 99),
                 "training epoch 99 is beyond the run's 2 epochs"),
    "epoch -3": (with_field("training.epoch", -3),
                 "training epoch must be a non-negative integer, found -3"),
    "step as a string": (with_field("training.step", "4"),
                         "training step must be a non-negative integer, found \"4\""),
    "history of another length": (with_field("training.history", []),
                                  "training history must be a list of 1 rows"),
    "NaN in the partial sums": (with_field("training.partial.loss_sum", float("nan")), "partial.loss_sum must be"),
    "no training section": (with_field("training", crafted.DELETE),
                            "lacks its training state"),
    "a missing training field": (with_field("training.rng_states", crafted.DELETE),
                                 "its training state lacks rng_states"),
    "an extra training field": (with_field("training.evil", 1),
                                "unknown training fields"),
    "no hyperparameters": (with_field("hyperparameters", crafted.DELETE),
                           "lacks its hyperparameters"),
    "lr as a string": (with_field("hyperparameters.lr", "fast"),
                       "hyperparameter 'lr' must be float or null, found \"fast\""),
    "bad generator state": (with_field("training.rng_states.shuffle.state", {"state": "x", "inc": 1}),
        "rng_states.shuffle is not a valid generator state"),
    "another bit generator": (with_field("training.rng_states.augment.bit_generator", "MT19937"),
        "rng_states.augment is not a PCG64 generator state"),
    "a model file": (with_field("kind", "model"),
                     "expected a checkpoint file, found a model file"),
}


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_a_crafted_checkpoint_is_refused_in_one_line(tmp_path, checkpoint_file, case):
    build, fragment = CHECKPOINT_CASES[case]
    path = build(tmp_path / "checkpoint.npz", checkpoint_file)
    refused(Checkpoint, path, fragment)


def test_momentum_checkpoints_need_their_velocity(tmp_path):
    valid = crafted.write_checkpoint(tmp_path / "momentum.npz", optimizer="momentum")
    assert {n for n in crafted.members_of(valid) if n.startswith("optimizer.state.0.")} == {
        "optimizer.state.0.velocity"}
    Checkpoint(valid)
    refused(Checkpoint, crafted.write_without(tmp_path / "checkpoint.npz", valid, "optimizer.state.3."),
            "lacks optimizer.state.3.velocity")


# -- memory: a bomb is refused from its header, in a process that stays small --------------
PEAK_GROWTH = """
import resource, sys
from lenet5.training.checkpoint import Checkpoint
from lenet5.errors import CheckpointError
from lenet5.files.weights import load_model
load = {"model": load_model, "checkpoint": Checkpoint}[sys.argv[2]]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load(sys.argv[1])
except CheckpointError as error:
    print(error, file=sys.stderr)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.parametrize("kind", ["model", "checkpoint"])
def test_a_256_mib_bomb_is_refused_without_growing_the_process(tmp_path, kind):
    valid = crafted.write_model(tmp_path / "v.npz") if kind == "model" else crafted.write_checkpoint(tmp_path / "v.npz")
    name = "fc1.weight" if kind == "model" else "model.fc1.weight"
    path = crafted.write_honest_bomb(tmp_path / f"{kind}.npz", valid, name=name)
    assert path.stat().st_size < 2 * crafted.MiB
    result = subprocess.run([sys.executable, "-c", PEAK_GROWTH, str(path), kind], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "shape mismatch" in result.stderr, result.stderr
    growth_kib = int(result.stdout.strip())  # ru_maxrss is in KiB on Linux
    assert growth_kib < 64 * 1024, f"peak memory grew by {growth_kib} KiB"


# -- through the command line ---------------------------------------------------------------
def lenet5(*args):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "lenet5", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("lenet5: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("case", ["bomb of 2**40 elements", "deeply nested JSON", "int weights", "truncated"])
def test_evaluate_refuses_a_crafted_model_in_one_line(tmp_path, model_file, case):
    build, fragment = MODEL_CASES[case]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = build(run_dir / "model.npz", model_file)
    before = path.read_bytes()
    assert_one_line_error(lenet5("evaluate", run_dir), fragment)
    assert path.read_bytes() == before


@pytest.mark.parametrize("case", ["2 GiB extra member", "missing optimiser state", "epoch 99", "epoch -3",
                                  "another model's weights", "step as a string"])
def test_resume_refuses_a_crafted_checkpoint_in_one_line(tmp_path, checkpoint_file, case):
    build, fragment = CHECKPOINT_CASES[case]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = build(run_dir / "checkpoint.npz", checkpoint_file)
    before = path.read_bytes()
    assert_one_line_error(lenet5("train", "--out", run_dir, "--resume", "--no-progress"), fragment)
    assert path.read_bytes() == before
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.npz"]


def test_the_crafted_files_stay_small(tmp_path, model_file):
    """The bombs are bombs: kilobytes on disk, gigabytes to terabytes declared."""
    bomb = crafted.write_bomb(tmp_path / "bomb.npz", model_file)
    assert bomb.stat().st_size < 200 * 1024
    with zipfile.ZipFile(bomb) as archive:
        header = archive.open("fc1.weight.npy").read(128)
    assert b"1099511627776" in header
