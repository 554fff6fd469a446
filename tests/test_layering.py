"""The import rules of pyproject.toml ([tool.importlinter]) hold on this tree, and they are
rules that can fail: a forbidden import planted in a copy of the package breaks them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(package_parent: Path, config_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(package_parent))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=config_dir, env=env,
                          capture_output=True, text=True, timeout=300)


def test_every_import_contract_is_kept():
    done = lint_imports(ROOT / "src", ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout, done.stdout[-3000:]


def planted(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the package and its contracts with `line` appended to `module`."""
    shutil.copytree(ROOT / "src" / "lenet5", tmp_path / "lenet5", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "lenet5" / module, "a", encoding="utf-8") as source:
        source.write(f"\n{line}\n")
    return tmp_path


def test_the_fast_engine_importing_the_data_package_breaks_a_contract(tmp_path):
    root = planted(tmp_path, "fast/layout.py", "from ..data import augment  # noqa: E402,F401")
    done = lint_imports(root, root)
    assert done.returncode != 0
    assert "lenet5.fast is not allowed to import lenet5.data" in done.stdout, done.stdout[-3000:]


def test_the_reference_engine_importing_the_fast_engine_breaks_a_contract(tmp_path):
    root = planted(tmp_path, "nn/dense.py", "from .. import fast  # noqa: E402,F401")
    done = lint_imports(root, root)
    assert done.returncode != 0
    assert "lenet5.nn is not allowed to import lenet5.fast" in done.stdout, done.stdout[-3000:]


def test_a_lower_layer_importing_a_higher_one_breaks_a_contract(tmp_path):
    root = planted(tmp_path, "zoo/models.py", "from ..training import trainer  # noqa: E402,F401")
    done = lint_imports(root, root)
    assert done.returncode != 0
    assert "lenet5.zoo is not allowed to import lenet5.training" in done.stdout, done.stdout[-3000:]
    assert "lenet5.zoo.models -> lenet5.training.trainer" in done.stdout, done.stdout[-3000:]
