"""`lenet5 report STUDY_DIR`: a study's pictures, drawn by Optuna's matplotlib visualisations
(no JavaScript, nothing fetched), and one self-contained page that holds them.

    history.png      each trial's validation accuracy and the best so far
    importances.png  how much each varied option mattered (Optuna's fANOVA estimate)
    parallel.png     every trial's settings, coloured by its accuracy
    slice.png        accuracy against each varied option

Like a run's report, the folder is built aside and renamed into place when complete.
"""

from __future__ import annotations

import base64
import html
import warnings
from pathlib import Path

from ..errors import Lenet5Error
from ..files.writing import atomic_directory, atomic_write, atomic_write_text, check_destination, os_reason
from .study import open_study, optuna_module, trials_table

PICTURES = (
    ("history.png", "Optimisation history", "plot_optimization_history"),
    ("importances.png", "Which options mattered", "plot_param_importances"),
    ("parallel.png", "Every trial's settings", "plot_parallel_coordinate"),
    ("slice.png", "Accuracy against each option", "plot_slice"),
)


def make_study_report(study_dir: Path, storage: str | None = None, name: str | None = None) -> Path:
    """Write STUDY_DIR/report/*.png and index.html; returns the page's path."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise Lenet5Error("reports need matplotlib: pip install 'lenet5[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    optuna = optuna_module()
    study = open_study(study_dir, None, storage, name)
    finished = [trial for trial in study.get_trials(deepcopy=False)
                if trial.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        raise Lenet5Error(f"{study_dir}: no trial has finished yet, so there is nothing to draw")
    target = check_destination(study_dir / "report", what="a report folder", folder=True)
    drawn, skipped = [], []
    try:
        with atomic_directory(target) as building:
            for file_name, title, function in PICTURES:
                try:
                    with warnings.catch_warnings():  # "experimental": a note for Optuna's users, not ours
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        axes = getattr(optuna.visualization.matplotlib, function)(study, target_name="validation accuracy")
                except (ValueError, RuntimeError) as error:  # e.g. importances of a single option
                    skipped.append(f"{title}: {error}")
                    continue
                figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
                figure.set_size_inches(9, 5)
                with atomic_write(building / file_name, "wb") as handle:
                    figure.savefig(handle, format="png", dpi=100, bbox_inches="tight")
                plt.close(figure)
                drawn.append((title, building / file_name))
            atomic_write_text(building / "index.html", _page(study_dir, study, drawn, skipped))
    except OSError as error:
        raise Lenet5Error(f"cannot write the report {study_dir / 'report'}: {os_reason(error)}") from None
    return study_dir / "report" / "index.html"


def _page(study_dir: Path, study, drawn, skipped) -> str:
    def embed(path: Path) -> str:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")

    figures = "".join(f'<figure><h2>{html.escape(title)}</h2><img src="{embed(path)}" alt="{html.escape(title)}">'
                      "</figure>" for title, path in drawn)
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in skipped)
    title = f"lenet5 study: {study.study_name}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Study directory: <code>{html.escape(str(study_dir))}</code></p>
<pre>{html.escape(trials_table(study))}</pre>
{figures}
{f"<p>Not drawn:</p><ul>{notes}</ul>" if notes else ""}
</body></html>
"""
