"""Classification metrics through Hugging Face `evaluate`, from metric modules shipped here.

`evaluate` cannot download its metric scripts on this machine, so the project ships its
own modules under `stages/train/hf_metrics/` and loads them by path, offline.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stages.schema import RATINGS

METRICS_DIR = Path(__file__).resolve().parent / "hf_metrics"
NEUTRAL = 3  # binary sentiment: >= 4 positive, <= 2 negative, 3 left out of the references


@functools.cache
def load_metric(name: str):
    """Load a shipped metric module (`accuracy`, `f1`) by path, with the HF offline switches on."""
    os.environ["HF_EVALUATE_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(f"no shipped metric module {path / name}.py; available: {shipped_metrics()}")
    import evaluate

    return evaluate.load(str(path))


def shipped_metrics() -> list[str]:
    """Names of the metric modules in hf_metrics/."""
    return sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())


def sentiment(ratings: np.ndarray) -> np.ndarray:
    """1 for ratings >= 4, 0 for <= 2, -1 for 3 (a predicted 3 is never a correct sentiment)."""
    ratings = np.asarray(ratings)
    return np.where(ratings >= 4, 1, np.where(ratings <= 2, 0, -1))


def classification_report(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """Accuracy, macro-F1, per-class F1 (f1_1..f1_5) and binary sentiment accuracy of star ratings."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    accuracy, f1 = load_metric("accuracy"), load_metric("f1")
    report = {
        "accuracy": accuracy.compute(predictions=y_pred, references=y_true)["accuracy"],
        "macro_f1": f1.compute(predictions=y_pred, references=y_true, labels=list(RATINGS))["f1"],
    }
    per_class = f1.compute(predictions=y_pred, references=y_true, labels=list(RATINGS), average=None)["f1"]
    report.update({f"f1_{rating}": score for rating, score in zip(RATINGS, per_class)})
    polar = y_true != NEUTRAL
    report["binary_accuracy"] = accuracy.compute(
        predictions=sentiment(y_pred[polar]), references=sentiment(y_true[polar])
    )["accuracy"]
    return report


def confusion_counts(y_true: Sequence[int], y_pred: Sequence[int]) -> np.ndarray:
    """5x5 counts, rows = actual rating, columns = predicted rating."""
    matrix = np.zeros((len(RATINGS), len(RATINGS)), dtype=np.int64)
    for actual, predicted in zip(y_true, y_pred):
        matrix[int(actual) - 1, int(predicted) - 1] += 1
    return matrix
