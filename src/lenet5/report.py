"""`lenet5 report RUN_DIR`: pictures of a run and one self-contained page that holds them.

Everything is drawn with matplotlib's Agg backend (no display), from the run's files and
the model itself; pictures that need only the model are made even without a history.
The folder is built under a hidden name and renamed into place when complete, so a failed
report leaves the previous one (or none), never half of one. Every text on the page that
comes from a file is HTML-escaped: a run directory is data, not markup.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

import numpy as np

from .errors import Lenet5Error
from .files.writing import atomic_directory, atomic_write, atomic_write_text, check_destination


def _pyplot():
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise Lenet5Error("reports need matplotlib: pip install 'lenet5[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(figure)
    return path


def plot_history(history: list[dict], path: Path) -> Path:
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in (("loss", "training"), ("val_loss", "validation"), ("test_loss", "test")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            loss_axis.plot(epochs, [np.nan if v is None else v for v in values], marker="o", label=label)
    for key, label in (("accuracy", "training"), ("val_accuracy", "validation"), ("test_accuracy", "test")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            accuracy_axis.plot(epochs, [np.nan if v is None else v * 100 for v in values], marker="o", label=label)
    loss_axis.set(title="Loss per epoch", xlabel="epoch", ylabel="the run's loss (MAP, MLE or cross-entropy)")
    accuracy_axis.set(title="Accuracy per epoch", xlabel="epoch", ylabel="accuracy (%)")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    return _save(figure, path)


def plot_confusion(confusion: np.ndarray, class_names: list[str], path: Path) -> Path:
    plt = _pyplot()
    classes = len(class_names)
    figure, (matrix_axis, bar_axis) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1.25, 1]})
    # Off-diagonal cells are tiny next to the diagonal; a log scale shows both.
    image = matrix_axis.imshow(np.log1p(confusion), cmap="Blues")
    threshold = np.log1p(confusion).max() / 2
    for row in range(classes):
        for column in range(classes):
            value = confusion[row, column]
            if value:
                matrix_axis.text(column, row, str(value), ha="center", va="center", fontsize=7,
                                 color="white" if np.log1p(value) > threshold else "black")
    matrix_axis.set_xticks(range(classes), class_names, rotation=45, ha="right")
    matrix_axis.set_yticks(range(classes), class_names)
    matrix_axis.set(title="Confusion matrix (test set, counts)", xlabel="predicted class", ylabel="true class")
    figure.colorbar(image, ax=matrix_axis, fraction=0.046, label="log(1 + count)")
    totals = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), totals, out=np.zeros(classes), where=totals > 0) * 100
    bar_axis.barh(range(classes), per_class, color="tab:blue")
    bar_axis.set_yticks(range(classes), class_names)
    bar_axis.invert_yaxis()
    low = max(0.0, float(per_class.min()) - 2)
    bar_axis.set_xlim(low, 100)
    for index, value in enumerate(per_class):
        bar_axis.text(value, index, f" {value:.2f}%", va="center", fontsize=8)
    bar_axis.set(title="Per-class accuracy", xlabel="accuracy (%)", ylabel="class")
    return _save(figure, path)


def plot_filters(weight: np.ndarray, title: str, path: Path) -> Path:
    """A grid of conv filters: one row per output map, one column per input channel."""
    plt = _pyplot()
    out_maps, in_maps = weight.shape[:2]
    figure, axes = plt.subplots(out_maps, in_maps, figsize=(max(2.5, in_maps * 0.75), max(2.5, out_maps * 0.75)),
                                squeeze=False)
    limit = np.abs(weight).max() or 1.0
    for f in range(out_maps):
        for c in range(in_maps):
            axis = axes[f, c]
            axis.imshow(weight[f, c], cmap="RdBu_r", vmin=-limit, vmax=limit)
            axis.set_xticks([])
            axis.set_yticks([])
            if c == 0:
                axis.set_ylabel(f"out {f}", fontsize=7)
            if f == out_maps - 1:
                axis.set_xlabel(f"in {c}", fontsize=7)
    figure.suptitle(f"{title}\n(rows: output map, columns: input channel; red > 0 > blue)")
    return _save(figure, path)


def feature_maps(model, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(layer name, activation (C, H, W)) after every convolution and pooling stage for one image."""
    from .nn import AvgPool2D, Conv2D, MaxPool2D, Subsampling

    model.eval()
    return [(f"{name} ({type(layer).__name__})", np.array(output[0]))
            for name, layer, output in model.stages(np.asarray(x, np.float32))
            if isinstance(layer, (Conv2D, MaxPool2D, AvgPool2D, Subsampling))]


def plot_feature_maps(image: np.ndarray, stages, label: str, path: Path) -> Path:
    plt = _pyplot()
    columns = max(len(maps) for _, maps in stages)
    columns = min(columns, 16)
    rows = len(stages) + 1
    figure, axes = plt.subplots(rows, columns + 1, figsize=((columns + 1) * 0.9, rows * 1.05), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    axes[0, 0].imshow(image, cmap="gray")
    axes[0, 0].set_title(f"input\n(label {label})", fontsize=7)
    for row, (name, maps) in enumerate(stages, start=1):
        axes[row, 0].text(0.5, 0.5, name.replace(" (", "\n("), ha="center", va="center", fontsize=7)
        for column in range(min(len(maps), columns)):
            axes[row, column + 1].imshow(maps[column], cmap="viridis")
            axes[row, column + 1].set_title(f"map {column}", fontsize=6)
    figure.suptitle("Feature maps of one test digit through each convolution and pooling stage"
                    + (f" (first {columns} maps)" if any(len(m) > columns for _, m in stages) else ""))
    return _save(figure, path)


def plot_confident_errors(images, labels, predictions, confidences, class_names, path: Path, count=16) -> Path:
    plt = _pyplot()
    wrong = np.flatnonzero(predictions != labels)
    order = wrong[np.argsort(-confidences[wrong])][:count]
    columns = 8
    rows = max(1, int(np.ceil(len(order) / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.35, rows * 1.7), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, index in zip(axes.ravel(), order):
        axis.imshow(images[index], cmap="gray_r")
        axis.set_title(f"true {class_names[labels[index]]}\npred {class_names[predictions[index]]} "
                       f"{confidences[index] * 100:.0f}%", fontsize=7)
    figure.suptitle(f"The {len(order)} most confidently wrong test images (of {len(wrong)} errors)")
    return _save(figure, path)


def make_report(run_dir: str | Path, index: int = 0, data_dir=None) -> Path:
    """Write RUN_DIR/report/*.png and index.html; returns the page's path.

    An old report is replaced only once the new one is complete. Everything read from the run
    directory is checked first (`load_run`, `read_history`); a write that fails (a read-only
    run directory, a full disk) is one line naming the folder and why.
    """
    from .files.writing import os_reason
    from .run.classifier import load
    from .run.directory import REPORT, read_history

    run_dir = Path(run_dir)
    classifier = load(run_dir)
    history = read_history(run_dir)
    # Anything but a folder there is not a report lenet5 made: replacing it could destroy the user's.
    target = check_destination(run_dir / REPORT, what="a report folder", folder=True)
    try:
        with atomic_directory(target) as building:
            _write_report(classifier, history, building, index, data_dir)
    except OSError as error:
        kept = " (the previous report is kept)" if (run_dir / REPORT).is_dir() else ""
        raise Lenet5Error(f"cannot write the report {run_dir / REPORT}: {os_reason(error)}{kept}") from None
    return run_dir / REPORT / "index.html"


def plot_distortions(images: np.ndarray, used: str, strength: float, path: Path, seed: int = 0) -> Path:
    """The same digits as drawn, then distorted by each kind at `strength`; the row of the
    distortion the run trained with (`used`) is marked. images: (N, H, W) uint8."""
    from .data.augment import KINDS, distort

    plt = _pyplot()
    originals = images[:, None].astype(np.float32) / 255
    rows = [("as drawn", originals)] + [
        (kind, distort(originals, kind, strength, np.random.default_rng(seed), fill=0.0)) for kind in KINDS[1:]]
    figure, axes = plt.subplots(len(rows), len(images), figsize=(len(images) * 0.9, len(rows) * 1.0))
    for row, (kind, batch) in enumerate(rows):
        for column, image in enumerate(batch[:, 0]):
            axis = axes[row, column]
            axis.imshow(image, cmap="gray_r", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
        label = f"{kind}\n(this run)" if kind == used else kind
        axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    figure.suptitle(f"Training distortions at strength {strength:g}, each image drawn anew every step")
    return _save(figure, path)


def plot_rbf_codes(centers: np.ndarray, path: Path) -> Path:
    """The RBF output units' centres as the 7×12 bitmaps they are (LeCun et al. 1998, figure 3)."""
    from .zoo.lecun1998 import CODE_HEIGHT, CODE_WIDTH

    plt = _pyplot()
    figure, axes = plt.subplots(1, len(centers), figsize=(1.0 * len(centers), 1.9))
    for digit, (axis, center) in enumerate(zip(np.atleast_1d(axes), centers)):
        axis.imshow(center.reshape(CODE_HEIGHT, CODE_WIDTH), cmap="gray_r", vmin=-1, vmax=1)
        axis.set_title(str(digit), fontsize=10)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle("The output units' fixed centres: a 7×12 bitmap per digit (+1 black, −1 white)", fontsize=10)
    return _save(figure, path)


def plot_error_per_pass(history: list[dict], path: Path) -> Path:
    """Training and test error per pass beside what the paper reports: 0.95% test error after
    about 10 passes and 0.35% training error after 19 (test error is drawn when the run
    tracked it, `--track-test`)."""
    from .zoo.lecun1998 import PAPER_TEST_ERROR, PAPER_TEST_ERROR_PASSES, PAPER_TRAIN_ERROR, PAPER_TRAIN_ERROR_PASSES

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 3.8))
    epochs = [row["epoch"] for row in history]
    for key, label in (("accuracy", "training (this run, during each pass)"), ("val_accuracy", "validation (this run)"),
                       ("test_accuracy", "test (this run)")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            axis.plot(epochs, [np.nan if v is None else (1 - v) * 100 for v in values], marker="o", label=label)
    axis.plot([PAPER_TEST_ERROR_PASSES], [PAPER_TEST_ERROR * 100], "k*", markersize=12,
              label=f"paper: test {PAPER_TEST_ERROR * 100:.2f}% after about {PAPER_TEST_ERROR_PASSES} passes")
    axis.plot([PAPER_TRAIN_ERROR_PASSES], [PAPER_TRAIN_ERROR * 100], "kx", markersize=10,
              label=f"paper: training {PAPER_TRAIN_ERROR * 100:.2f}% after {PAPER_TRAIN_ERROR_PASSES} passes")
    axis.set_yscale("log")
    plain = matplotlib_ticker().FuncFormatter(lambda value, _: f"{value:g}")
    axis.yaxis.set_major_formatter(plain)
    axis.yaxis.set_minor_formatter(plain)
    axis.xaxis.set_major_locator(matplotlib_ticker().MaxNLocator(integer=True))
    axis.set(title="Error per pass, against LeCun et al. (1998)", xlabel="pass (epoch)", ylabel="error (%)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    return _save(figure, path)


def matplotlib_ticker():
    _pyplot()  # the one place that says which extra to install when matplotlib is missing
    import matplotlib.ticker

    return matplotlib.ticker


def lecun1998_pictures(model, history: list[dict], out: Path) -> list[tuple[str, Path]]:
    """For a model ending in RBF units (LeNet-5 as published): its codes, and its error per
    pass against the paper's; nothing for other models."""
    from .nn import RBF

    output = model.layers[-1] if len(model.layers) else None
    if not isinstance(output, RBF):
        return []
    centers = output.centers.value if output.trainable else output.centers
    pictures = [("The RBF codes", plot_rbf_codes(np.asarray(centers), out / "rbf_codes.png"))]
    if history:
        pictures.append(("Error per pass against the paper", plot_error_per_pass(history, out / "error_per_pass.png")))
    return pictures


def _write_report(classifier, history: list[dict], out: Path, index: int, data_dir) -> None:
    """The pictures, index.html and report.json of the classifier's run, written into `out`."""
    from .data import load_dataset
    from .nn import Conv2D, softmax
    from .run.evaluation import metrics_of
    from .run.preprocessing import preprocess_like

    started = time.perf_counter()
    run_dir, model, metadata = classifier.run_dir, classifier.model, classifier.metadata
    dataset = load_dataset(metadata.get("dataset", "mnist"), data_dir=data_dir)
    class_names = list(metadata.get("class_names") or dataset.class_names)
    if not 0 <= index < len(dataset.test_images):
        raise Lenet5Error(f"--index {index} is outside the test set (0..{len(dataset.test_images) - 1})")
    logits = classifier.logits(dataset.test_images)
    metrics = metrics_of(logits, dataset.test_labels, loss_fn=classifier.loss_fn)
    probabilities = softmax(logits.astype(np.float64), axis=1)
    predictions = probabilities.argmax(axis=1)
    pictures: list[tuple[str, Path]] = []

    if history:
        pictures.append(("Training curves", plot_history(history, out / "training_curves.png")))
    confusion = np.array(metrics["confusion_matrix"])
    pictures.append(("Confusion matrix and per-class accuracy",
                     plot_confusion(confusion, class_names, out / "confusion_matrix.png")))
    convolutions = [(name, layer) for name, layer in zip(model.layer_names, model.layers) if isinstance(layer, Conv2D)]
    for position, (name, layer) in enumerate(convolutions[:2], start=1):
        pictures.append((f"Filters of {name}", plot_filters(
            layer.weight.value * (layer.connections[:, :, None, None] if layer.connections is not None else 1),
            f"Learned {layer.kernel_size[0]}×{layer.kernel_size[1]} filters of {name}", out / f"filters_conv{position}.png")))
    stages = feature_maps(model, preprocess_like(dataset.test_images[index: index + 1], metadata))
    pictures.append(("Feature maps", plot_feature_maps(
        dataset.test_images[index], stages, class_names[dataset.test_labels[index]], out / "feature_maps.png")))
    settings = metadata.get("hyperparameters") or {}
    used, strength = settings.get("augment", "none"), settings.get("augment_strength")
    if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not 0 < strength <= 4:
        strength = 1.0  # a run without distortions (or an older one's settings): the usual ranges
    pictures.append(("Training distortions", plot_distortions(
        dataset.train_images[:12], used, float(strength), out / "distortions.png")))
    pictures.append(("Most confidently wrong", plot_confident_errors(
        dataset.test_images, dataset.test_labels, predictions, probabilities.max(axis=1), class_names,
        out / "confident_errors.png")))
    pictures += lecun1998_pictures(model, history, out)
    page = out / "index.html"
    atomic_write_text(page, _page(run_dir, metadata, metrics, history, pictures, class_names))
    atomic_write_text(out / "report.json", json.dumps({
        "seconds": time.perf_counter() - started,
        "pictures": [str(path.name) for _, path in pictures],
        "feature_map_shapes": {name: list(maps.shape) for name, maps in stages},
        "confusion_matrix": metrics["confusion_matrix"], "accuracy": metrics["accuracy"],
        "loss": metrics["loss"],
    }, indent=2) + "\n")


def _page(run_dir, metadata, metrics, history, pictures, class_names) -> str:
    def embed(path: Path) -> str:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")

    settings = metadata.get("hyperparameters", {})
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in settings.items() if v is not None)
    headline = [("test accuracy", f"{metrics['accuracy'] * 100:.2f}%"),
                ("test error rate", f"{metrics['error_rate'] * 100:.2f}%"),
                ("test loss", f"{metrics['loss']:.4f}"), ("test images", f"{metrics['count']:,}")]
    if history:
        last = history[-1]
        headline.append(("epochs", str(last.get("epoch"))))
        if last.get("val_accuracy") is not None:
            headline.append(("validation accuracy", _percent(last["val_accuracy"])))
    metric_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in headline)
    per_class = "".join(f"<tr><th>{html.escape(str(n))}</th><td>{a * 100:.2f}%</td></tr>"
                        for n, a in zip(class_names, metrics["per_class_accuracy"]))
    figures = "".join(f'<figure><h2>{html.escape(title)}</h2><img src="{embed(path)}" alt="{html.escape(title)}">'
                      f"</figure>" for title, path in pictures)
    title = f"lenet5 report: {metadata['architecture']} on {metadata.get('dataset', 'mnist')}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 0 2em 1em 0; display: inline-table; vertical-align: top; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
figure {{ margin: 2em 0; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Run directory: <code>{html.escape(str(run_dir))}</code></p>
<table><caption>Metrics</caption>{metric_rows}</table>
<table><caption>Settings</caption>{rows}</table>
<table><caption>Per-class accuracy</caption>{per_class}</table>
{figures}
<script>
// Lets a headless browser (and the tests) see that every picture decoded.
window.addEventListener("load", () => {{
  const images = Array.from(document.images);
  const loaded = images.filter((image) => image.complete && image.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = loaded + "/" + images.length;
}});
</script>
</body></html>
"""


def _percent(value) -> str:
    """A fraction as a percentage; anything else (a hand-edited history) as its text, to escape."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value * 100:.2f}%"
    return str(value)
