"""The arrows between modules point one way: no import circles, and the reference engine
never imports the fast engine (checked with the project's shared import-graph tool)."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT.parent / "shared" / "tools" / "import-graph"

pytestmark = pytest.mark.skipif(not TOOL.is_file(), reason=f"{TOOL} is not beside this checkout")


def import_graph(*arguments: str) -> str:
    done = subprocess.run([str(TOOL), "src", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return done.stdout + done.stderr


def test_no_import_circles():
    report = import_graph()
    assert " 0 circles" in report and "circle of" not in report, report


def test_the_reference_engine_never_imports_the_fast_engine():
    report = import_graph("--forbid", "lenet5.nn->lenet5.fast")
    assert " 0 forbidden imports" in report, report


def test_the_fast_engine_knows_distortions_only_through_its_protocol():
    # A distortion reaches the engine as a `lenet5.fast.protocol.Transform`; the data
    # package stays above the engine.
    report = import_graph("--forbid", "lenet5.fast->lenet5.data")
    assert " 0 forbidden imports" in report, report
