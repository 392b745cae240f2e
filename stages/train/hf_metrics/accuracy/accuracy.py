"""Accuracy as an `evaluate` metric module, shipped with synthguard and loaded by path.

`evaluate.load("<this folder>")` works offline: nothing is fetched from the Hub.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy: the share of predictions equal to their reference label."
_INPUTS = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): true labels.
    sample_weight (list of float, optional): per-example weights.
Returns:
    accuracy (float): in [0, 1]; nan when there are no examples.
"""


class Accuracy(evaluate.Metric):
    """Plain (optionally weighted) accuracy over integer labels."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, sample_weight=None):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if predictions.size == 0:
            return {"accuracy": float("nan")}
        weights = np.ones(len(predictions)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        return {"accuracy": float(np.sum(weights * (predictions == references)) / np.sum(weights))}
