"""Evaluation on every sample: accuracy, error rate, loss, per-class accuracy, confusion.

`model` is anything with `predict_logits(images, batch_size)`: a reference `Sequential`, or
the `FastModel` that runs one.
"""

from __future__ import annotations

import numpy as np

from ..nn import SoftmaxCrossEntropy
from .outputs import check_outputs, images as count_images


def evaluate(model, images: np.ndarray, labels: np.ndarray, batch_size: int = 64,
             num_classes: int | None = None, loss_fn=None, where: str | None = None) -> dict:
    """Metrics of `model` (run in eval mode) on all of `images`, the last partial batch too:
    `metrics_of` its logits. Logits that are not finite are an `OutputsError` naming `where`
    (the run), never metrics of NaN."""
    with np.errstate(all="ignore"):  # overflow is reported below, in one line
        logits = model.predict_logits(images, batch_size)
    check_outputs(logits, count_images(len(images)), where)
    return metrics_of(logits, labels, num_classes=num_classes, loss_fn=loss_fn)


def metrics_of(logits: np.ndarray, labels: np.ndarray, num_classes: int | None = None, loss_fn=None) -> dict:
    """Accuracy, error_rate, loss, per_class_accuracy (list), confusion_matrix (list of rows:
    true class, columns: predicted class) and count, from a model's outputs (N, K).

    `loss_fn` is the loss the model trains with (`ModelSpec.make_loss()`; softmax
    cross-entropy when None), anything with `value_and_grad(logits, labels)`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    classes = num_classes or logits.shape[1]
    loss, _ = (loss_fn or SoftmaxCrossEntropy()).value_and_grad(logits, labels)
    predictions = logits.argmax(axis=1)
    confusion = np.bincount(labels * classes + predictions, minlength=classes * classes)
    confusion = confusion.reshape(classes, classes)
    per_class_totals = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), per_class_totals,
                          out=np.zeros(classes), where=per_class_totals > 0)
    accuracy = float(np.trace(confusion) / max(len(labels), 1))
    return {
        "count": int(len(labels)),
        "accuracy": accuracy,
        "error_rate": 1.0 - accuracy,
        "loss": float(loss),
        "per_class_accuracy": [float(v) for v in per_class],
        "confusion_matrix": confusion.tolist(),
    }


def format_report(metrics: dict, class_names: list[str]) -> str:
    """The evaluation as text: headline numbers, per-class accuracy, confusion matrix."""
    lines = [
        f"test accuracy: {metrics['accuracy'] * 100:.2f}%  (error rate {metrics['error_rate'] * 100:.2f}%, "
        f"loss {metrics['loss']:.4f}, {metrics['count']:,} images)",
        "",
        "per-class accuracy:",
    ]
    width = max(len(name) for name in class_names)
    confusion = np.array(metrics["confusion_matrix"])
    for index, name in enumerate(class_names):
        lines.append(f"  {name.rjust(width)}  {metrics['per_class_accuracy'][index] * 100:6.2f}%  "
                     f"({confusion[index, index]}/{confusion[index].sum()})")
    lines += ["", "confusion matrix (rows: true class, columns: predicted):"]
    cell = max(5, len(str(confusion.max())) + 1)
    lines.append(" " * (width + 2) + "".join(str(i).rjust(cell) for i in range(len(class_names))))
    for index, name in enumerate(class_names):
        lines.append(f"  {name.rjust(width)}" + "".join(str(v).rjust(cell) for v in confusion[index]))
    return "\n".join(lines)
