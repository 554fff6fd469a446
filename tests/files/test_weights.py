"""Model and checkpoint files are data, never code: every bad file is refused in one line."""

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from lenet5.errors import CheckpointError
from lenet5.files.weights import METADATA_KEY, load_arrays, load_model, save_arrays, save_model
from lenet5.zoo.models import build_model


@pytest.fixture
def model_file(tmp_path):
    model = build_model("relu", seed=0)
    path = tmp_path / "model.npz"
    save_model(path, model, {"dataset": "mnist", "preprocessing": {"method": "standardize", "pad": 2}})
    return path, model


def rewrite(path, mutate_arrays=None, mutate_metadata=None, extra=None):
    """Rewrite a valid file with changed arrays or metadata, the way an attacker or a bug might."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    metadata = json.loads(arrays.pop(METADATA_KEY).tobytes())
    if mutate_arrays:
        mutate_arrays(arrays)
    if mutate_metadata:
        mutate_metadata(metadata)
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode(), np.uint8)
    arrays.update(extra or {})
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def test_round_trip_restores_every_array_and_the_metadata(model_file):
    path, model = model_file
    loaded, metadata = load_model(path)
    assert metadata["architecture"] == "relu" and metadata["kind"] == "model"
    for name, value in model.state_dict().items():
        assert np.array_equal(loaded.state_dict()[name], value)
    assert json.loads(path.with_suffix(".json").read_text())["architecture"] == "relu"


def refused(path, *fragments):
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_pickled_array_is_refused(model_file):
    path, _ = model_file
    rewrite(path, extra={"evil": np.array([{"code": "x"}], dtype=object)})
    refused(path, "pickled")


def test_missing_extra_and_misshapen_keys_are_named(model_file):
    path, _ = model_file
    rewrite(path, mutate_arrays=lambda a: a.pop("fc2.bias"))
    refused(path, "missing keys: fc2.bias")
    rewrite(path, extra={"fc9.weight": np.zeros(3, np.float32), "fc2.bias": np.zeros(84, np.float32)})
    refused(path, "unexpected keys: fc9.weight")
    rewrite(path, mutate_arrays=lambda a: a.__setitem__("conv1.weight", np.zeros((6, 1, 3, 3), np.float32)))
    refused(path, "shape mismatch for conv1.weight", "expected (6, 1, 5, 5), found (6, 1, 3, 3)")


def test_truncated_and_garbage_files_are_refused(model_file, tmp_path):
    path, _ = model_file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    refused(path, "corrupt or truncated")
    path.write_bytes(b"not a zip at all")
    refused(path, str(path))
    missing = tmp_path / "nothing.npz"
    refused(missing, "no such file")


@pytest.mark.parametrize("mutate, fragment", [
    (lambda m: m.__setitem__("format_version", 99), "format version 99 is not supported"),
    (lambda m: m.__setitem__("format", "keras"), "not a lenet5 file"),
    (lambda m: m.pop("architecture"), "lacks the required key 'architecture'"),
    (lambda m: m.__setitem__("architecture", "lenet4"), "unknown architecture 'lenet4'"),
    (lambda m: m.__setitem__("architecture", "classic"), "does not match architecture 'classic'"),
    (lambda m: m.__setitem__("preprocessing", "standardize"), "'preprocessing' must be dict"),
    (lambda m: m.__setitem__("kind", "checkpoint"), "expected a model file, found a checkpoint file"),
])
def test_metadata_is_validated_before_use(model_file, mutate, fragment):
    path, _ = model_file
    rewrite(path, mutate_metadata=mutate)
    refused(path, fragment)


def test_non_finite_weights_are_refused(model_file):
    path, _ = model_file
    rewrite(path, mutate_arrays=lambda a: a["fc1.weight"].__setitem__((0, 0), np.nan))
    refused(path, "fc1.weight holds non-finite values")


def test_no_metadata_means_not_a_lenet5_file(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, weights=np.zeros(3))
    refused(path, "no lenet5 metadata")


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "model.npz"
    save_arrays(path, {"a": np.zeros(2)}, {"kind": "model", "architecture": "relu", "preprocessing": {}})
    before = path.read_bytes()
    with pytest.raises(CheckpointError):  # invalid metadata: nothing is written
        save_arrays(path, {"a": np.ones(2)}, {"kind": "weird", "architecture": "relu", "preprocessing": {}})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def valid_bytes() -> bytes:
    buffer = io.BytesIO()
    model = build_model("relu", seed=0)
    arrays = dict(model.state_dict())
    metadata = {"format": "lenet5", "format_version": 1, "kind": "model", "architecture": "relu",
                "preprocessing": {"method": "standardize", "pad": 2}}
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode(), np.uint8)
    np.savez(buffer, **arrays)
    return buffer.getvalue()


VALID = valid_bytes()


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_checkpoint_loader_returns_a_model_or_its_own_error(tmp_path, data):
    choice = data.draw(st.sampled_from(["random", "flip", "truncate", "splice"]))
    if choice == "random":
        blob = data.draw(st.binary(max_size=2000))
    elif choice == "flip":
        position = data.draw(st.integers(0, len(VALID) - 1))
        blob = bytearray(VALID)
        blob[position] ^= data.draw(st.integers(1, 255))
        blob = bytes(blob)
    elif choice == "truncate":
        blob = VALID[: data.draw(st.integers(0, len(VALID)))]
    else:
        start = data.draw(st.integers(0, len(VALID) - 1))
        blob = VALID[:start] + data.draw(st.binary(min_size=1, max_size=64)) + VALID[start + 64:]
    path = tmp_path / "fuzz.npz"
    path.write_bytes(blob)
    try:
        model, metadata = load_model(path)
    except CheckpointError:
        return
    assert metadata["architecture"] == "relu" and model.num_parameters() == 61706


def test_the_pickle_module_is_never_used_for_loading(model_file, monkeypatch):
    path, _ = model_file

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    load_model(path)
    arrays, _ = load_arrays(path, kind="model")
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    assert zipfile.is_zipfile(path)
