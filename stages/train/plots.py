"""Confusion matrices: per-example CSVs for `dvc plots` (confusion template) and one PNG to look at."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from stages.schema import RATINGS
from stages.train.metrics import confusion_counts


def write_confusion_csvs(folder: Path, actual: np.ndarray, predictions: Mapping[tuple[str, str], np.ndarray]) -> list[Path]:
    """One CSV per (source, model) with columns actual,predicted; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (source, model), predicted in sorted(predictions.items()):
        path = folder / f"{source}_{model}.csv"
        pd.DataFrame({"actual": actual, "predicted": predicted}).to_csv(path, index=False)
        written.append(path)
    return written


def write_confusion_png(path: Path, actual: np.ndarray, predictions: Mapping[tuple[str, str], np.ndarray]) -> None:
    """A grid of row-normalised confusion matrices: one row per source, one column per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = sorted({s for s, _ in predictions})
    models = [m for m in ("lora", "tfidf", "majority") if any(k[1] == m for k in predictions)]
    fig, axes = plt.subplots(len(sources), len(models), figsize=(3.4 * len(models), 3.2 * len(sources)), squeeze=False)
    for row, source in enumerate(sources):
        for col, model in enumerate(models):
            ax = axes[row][col]
            counts = confusion_counts(actual, predictions[(source, model)])
            share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
            ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
            for i in range(len(RATINGS)):
                for j in range(len(RATINGS)):
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
            ax.set_xticks(range(len(RATINGS)), RATINGS)
            ax.set_yticks(range(len(RATINGS)), RATINGS)
            ax.set_title(f"{source} / {model}", fontsize=9)
            ax.set_xlabel("predicted")
            ax.set_ylabel("actual")
    fig.suptitle("train: confusion on the real test split (counts; colour = row share)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
