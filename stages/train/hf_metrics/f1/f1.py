"""F1 score as an `evaluate` metric module, shipped with synthguard and loaded by path.

Supports macro averaging and per-class scores (average=None) over an explicit label
list, so that a class missing from both references and predictions still gets a
score (0 by convention) instead of silently disappearing.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "F1: the harmonic mean of precision and recall, per class or macro-averaged."
_INPUTS = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): true labels.
    labels (list of int, optional): the classes to score; default: every label seen.
    average (str or None): "macro" (default) for the unweighted class mean, None for per-class scores.
Returns:
    f1 (float, or list of float when average is None, in the order of `labels`).
"""


class F1(evaluate.Metric):
    """F1 computed from per-class true/false positive counts; 0 where precision + recall is 0."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, labels=None, average="macro"):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if labels is None:
            labels = sorted(set(predictions.tolist()) | set(references.tolist()))
        scores = []
        for label in labels:
            tp = int(np.sum((predictions == label) & (references == label)))
            fp = int(np.sum((predictions == label) & (references != label)))
            fn = int(np.sum((predictions != label) & (references == label)))
            scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        if average is None:
            return {"f1": [float(s) for s in scores]}
        if average != "macro":
            raise ValueError(f"average={average!r} is not supported; use 'macro' or None")
        return {"f1": float(np.mean(scores)) if scores else float("nan")}
