"""Optuna's distributed mode: two `lenet5 sweep` processes, as on two machines, on one study in
a real PostgreSQL server, a throwaway cluster this test starts in a temporary directory."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .test_sweep import SPACE, tiny

pytest.importorskip("optuna", reason="the sweep extra is not installed")
pytest.importorskip("psycopg", reason="psycopg (the test extra) is not installed")

TRIALS = 6


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def as_cluster_owner() -> list[str]:
    """The prefix that runs a PostgreSQL program as a user it accepts: the server refuses root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    try:
        subprocess.run(["id", "postgres"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        pytest.skip("running as root and there is no postgres user to start the server as")
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture
def database():
    binaries = postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (make test installs Debian's postgresql package)")
    prefix = as_cluster_owner()
    cluster = Path(tempfile.mkdtemp(prefix="lenet5-pg-"))
    if prefix:
        shutil.chown(cluster, "postgres", "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = cluster / "data"
    run = lambda *command: subprocess.run([*prefix, *command], check=True, capture_output=True, text=True,  # noqa: E731
                                          timeout=120)
    run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(cluster / "log"), "-w", "-o",
        f"-p {port} -k {cluster} -c listen_addresses=127.0.0.1", "start")
    try:
        run(str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "lenet5")
        yield f"postgresql://postgres@127.0.0.1:{port}/lenet5"
    finally:
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(cluster, ignore_errors=True)


def test_two_sweeps_on_one_database_study_finish_every_trial_exactly_once(tmp_path, mnist_dir, database):
    import optuna

    machines = [tmp_path / "machine-a" / "study", tmp_path / "machine-b" / "study"]
    command = lambda study_dir: [sys.executable, "-m", "lenet5", "sweep", str(study_dir), "--trials", str(TRIALS),  # noqa: E731
                                 "--storage", database, "--study-name", "shared", *SPACE, *tiny(mnist_dir)]
    processes = [subprocess.Popen(command(machine), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for machine in machines]
    outputs = [process.communicate(timeout=900) for process in processes]
    assert all(process.returncode == 0 for process in processes), [error for _, error in outputs]

    study = optuna.load_study(study_name="shared", storage=database)
    made = study.get_trials()
    done = [trial for trial in made if trial.state in (optuna.trial.TrialState.COMPLETE,
                                                       optuna.trial.TrialState.PRUNED)]
    # Each process stops once the study holds TRIALS; both may finish the one they are on.
    assert TRIALS <= len(done) <= TRIALS + 1
    assert not [trial for trial in made if trial.state == optuna.trial.TrialState.RUNNING]
    numbers = [trial.number for trial in made]
    assert len(set(numbers)) == len(numbers)
    for trial in done:
        homes = [machine for machine in machines
                 if (machine / "trials" / f"trial-{trial.number:04d}" / "history.json").is_file()]
        assert len(homes) == 1, (trial.number, homes)  # trained once, on one machine
    assert all((machine / "trials").is_dir() for machine in machines)  # both machines did work
