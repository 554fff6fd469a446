"""`lenet5 sweep`: a study of ordinary runs, pruned, resumable after a kill, repeated over
seeds, drawn, and refused in one line when asked for something it cannot do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ..helpers.commands import assert_one_line_error, lenet5

pytest.importorskip("optuna", reason="the sweep extra is not installed")

SPACE = ["--param", "lr=log:1e-3:3e-1", "--param", "batch-size=choice:32,64"]


def tiny(mnist_dir, epochs=2) -> list[str]:
    return ["--model", "relu", "--train-limit", "600", "--validation", "200", "--test-limit", "200",
            "--epochs", str(epochs), "--augment", "none", "--data-dir", str(mnist_dir)]


def trials(study_dir) -> list[dict]:
    import optuna

    from lenet5.sweep.study import open_study

    study = open_study(study_dir, None)
    return [{"number": trial.number, "state": trial.state, "params": trial.params, "attrs": trial.user_attrs,
             "value": trial.value} for trial in study.get_trials()] if optuna else []


def test_each_trial_is_a_run_whose_recorded_command_trains_it_again(tmp_path, mnist_dir):
    import optuna

    study_dir = tmp_path / "study"
    lenet5("sweep", study_dir, "--trials", "3", *SPACE, *tiny(mnist_dir), check=True)
    made = trials(study_dir)
    assert [trial["number"] for trial in made] == [0, 1, 2]
    assert all(trial["state"] == optuna.trial.TrialState.COMPLETE for trial in made)
    first = study_dir / "trials" / "trial-0000"
    command = (first / "command.txt").read_text().strip()
    assert command == made[0]["attrs"]["command"] and command.startswith("lenet5 train ")
    assert made[0]["value"] == json.loads((first / "history.json").read_text())[-1]["val_accuracy"]
    # The command as recorded, into another directory: the same weights, bit for bit.
    argv = command.split()[2:]
    argv[argv.index("--out") + 1] = str(tmp_path / "again")
    lenet5("train", *argv, check=True)
    ours, again = np.load(first / "model.npz"), np.load(tmp_path / "again" / "model.npz")
    assert sorted(ours.files) == sorted(again.files)
    assert all(np.array_equal(ours[name], again[name]) for name in ours.files if name != "__metadata__")
    shown = lenet5("sweep", study_dir, "--show", check=True).stdout
    assert shown.splitlines()[0].split()[:5] == ["trial", "state", "validation", "test", "seconds"]
    assert shown.count("finished") == 3


def test_hopeless_trials_are_pruned_and_the_time_saved_is_printed(tmp_path, mnist_dir):
    import optuna

    study_dir = tmp_path / "study"
    done = lenet5("sweep", study_dir, "--trials", "8", "--param", "lr=log:1e-3:30", *tiny(mnist_dir, epochs=4),
                  "--optimizer", "sgd", check=True)
    made = trials(study_dir)
    pruned = [trial for trial in made if trial["state"] == optuna.trial.TrialState.PRUNED]
    assert len(made) == 8 and pruned, done.stdout
    assert all(trial["attrs"]["seconds_saved"] > 0 for trial in pruned)
    assert "pruned after epoch" in done.stdout and "pruning saved about" in done.stdout
    # A pruned trial stopped early: fewer epochs in its history than it was given.
    history = json.loads((study_dir / "trials" / f"trial-{pruned[0]['number']:04d}" / "history.json").read_text())
    assert len(history) < 4


def test_a_sweep_killed_mid_trial_resumes_without_counting_that_trial_finished(tmp_path, mnist_dir):
    import optuna

    study_dir = tmp_path / "study"
    command = [sys.executable, "-m", "lenet5", "sweep", str(study_dir), "--trials", "3", *SPACE,
               *tiny(mnist_dir, epochs=30)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = study_dir / "trials" / "trial-0000" / "history.json"
    deadline = time.monotonic() + 300
    while not history.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)  # no cleanup at all
    process.wait()
    assert history.exists()
    again = lenet5("sweep", study_dir, "--trials", "3", *SPACE, *tiny(mnist_dir), check=False)
    assert again.returncode == 1  # the settings differ (epochs): refused, in one line
    assert_one_line_error(again, "this study was made with other settings")
    # The same settings, so it goes on; 30 epochs of 600 images take a few seconds a trial.
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert "marked failed, and queued again" in resumed.stdout
    made = trials(study_dir)
    states = [trial["state"] for trial in made]
    assert states[0] == optuna.trial.TrialState.FAIL
    assert made[0]["attrs"]["failed_because"] == "the sweep stopped while it ran"
    done = [trial for trial in made if trial["state"] in (optuna.trial.TrialState.COMPLETE,
                                                           optuna.trial.TrialState.PRUNED)]
    assert len(done) == 3
    assert made[1]["params"] == made[0]["params"]  # the interrupted settings were tried again
    for trial in done:
        if trial["state"] == optuna.trial.TrialState.COMPLETE:
            assert (study_dir / "trials" / f"trial-{trial['number']:04d}" / "metrics.json").is_file()


def test_seeds_repeat_the_best_settings_and_summarise_them(tmp_path, mnist_dir):
    study_dir = tmp_path / "study"
    done = lenet5("sweep", study_dir, "--trials", "2", *SPACE, "--seeds", "0-2", *tiny(mnist_dir), check=True)
    summary = json.loads((study_dir / "seeds.json").read_text())
    accuracies = [json.loads((study_dir / "seeds" / f"seed-{seed}" / "metrics.json").read_text())["test_accuracy"]
                  for seed in range(3)]
    assert [run["test_accuracy"] for run in summary["runs"]] == accuracies
    assert summary["test_accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert summary["test_accuracy"]["std"] == pytest.approx(np.std(accuracies, ddof=1))
    assert summary["test_accuracy"]["min"] == min(accuracies) and summary["test_accuracy"]["max"] == max(accuracies)
    best = trials(study_dir)
    best = max((trial for trial in best if trial["value"] is not None), key=lambda trial: trial["value"])
    command = (study_dir / "seeds" / "seed-1" / "command.txt").read_text()
    assert f"--batch-size {best['params']['batch-size']}" in command and "--seed 1" in command
    assert f"over 3 seeds: mean {np.mean(accuracies) * 100:.2f}%" in done.stdout


def test_a_study_report_draws_optunas_pictures_offline(tmp_path, mnist_dir):
    study_dir = tmp_path / "study"
    lenet5("sweep", study_dir, "--trials", "3", *SPACE, *tiny(mnist_dir), check=True)
    lenet5("report", study_dir, check=True)
    report = study_dir / "report"
    for name in ("history.png", "importances.png", "parallel.png", "slice.png"):
        assert (report / name).read_bytes().startswith(b"\x89PNG"), name
    page = (report / "index.html").read_text()
    assert "trial  state" in page and "http" not in page.replace("http-equiv", "")


def test_jobs_share_one_study_and_make_each_trial_once(tmp_path, mnist_dir):
    import optuna

    study_dir = tmp_path / "study"
    lenet5("sweep", study_dir, "--trials", "4", "--jobs", "2", *SPACE, *tiny(mnist_dir), check=True)
    made = trials(study_dir)
    done = [trial for trial in made if trial["state"] in (optuna.trial.TrialState.COMPLETE,
                                                           optuna.trial.TrialState.PRUNED)]
    assert len(done) >= 4 and len({trial["number"] for trial in made}) == len(made)
    assert all(trial["state"] != optuna.trial.TrialState.RUNNING for trial in made)


def test_a_second_sweep_on_a_study_directory_is_refused_naming_the_holder(tmp_path, mnist_dir):
    from lenet5.training.run_dir import locked

    study_dir = tmp_path / "study"
    study_dir.mkdir()
    with locked(study_dir):
        result = lenet5("sweep", study_dir, "--trials", "1", *SPACE, *tiny(mnist_dir))
    assert_one_line_error(result, f"is in use by process {os.getpid()}", "give the sweeps a shared --storage")


@pytest.mark.parametrize("extra, says", [
    (["--param", "lr=log:0:1"], "a log range needs LOW > 0"),
    (["--param", "lr"], "expected NAME=SPEC"),
    (["--colour", "red"], "unrecognized arguments: --colour"),
    (["--out", "x"], "--out: the sweep decides where and how each trial runs"),
    (["--lr", "0.1"], "--lr is both fixed and varied"),
    (["--seeds", "3-a"], "--seeds '3-a': expected a range"),
    (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot use the study storage postgresql://"),
])
def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, mnist_dir, extra, says):
    result = lenet5("sweep", tmp_path / "study", "--trials", "1", "--param", "lr=log:1e-3:1e-1",
                    *tiny(mnist_dir), *extra)
    assert result.returncode != 0
    assert_one_line_error(result, says, code=result.returncode)
