"""--track-test: the test set evaluated after every epoch, recorded in the history, used for nothing."""

import csv
import json

import numpy as np

from lenet5.run.evaluation import evaluate
from tests.training.test_train import run


def test_tracking_records_each_epochs_test_accuracy_and_changes_no_weight(tmp_path):
    tracked, metrics, run_dir = run(tmp_path, "tracked", epochs=3, track_test=True)
    plain, _, plain_dir = run(tmp_path, "plain", epochs=3)
    for name, value in plain.model.state_dict().items():  # evaluation draws no random number
        assert np.array_equal(tracked.model.state_dict()[name], value), name
    assert [row["test_accuracy"] for row in plain.history] == [None] * 3
    rows = tracked.history
    assert all(0 <= row["test_accuracy"] <= 1 and row["test_loss"] > 0 for row in rows)
    # The last epoch's weights are the final ones: its row agrees with metrics.json.
    assert rows[-1]["test_accuracy"] == metrics["test_accuracy"]
    assert rows[-1]["test_loss"] == metrics["test_loss"]
    assert rows[0]["test_loss"] != rows[-1]["test_loss"]
    assert json.loads((run_dir / "history.json").read_text()) == rows
    written = list(csv.DictReader(open(run_dir / "history.csv")))
    assert [float(row["test_accuracy"]) for row in written] == [row["test_accuracy"] for row in rows]
    assert [row["test_accuracy"] for row in csv.DictReader(open(plain_dir / "history.csv"))] == [""] * 3
    assert "test_acc" in (run_dir / "log.txt").read_text()

