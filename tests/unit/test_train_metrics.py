"""train: the shipped `evaluate` metric modules load offline by path and compute the right numbers."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from stages.train import metrics
from stages.train.__main__ import generator_epsilon


def test_shipped_modules_load_offline_by_path():
    assert metrics.shipped_metrics() == ["accuracy", "f1"]
    module = metrics.load_metric("f1")
    assert os.environ["HF_EVALUATE_OFFLINE"] == "1" and os.environ["HF_HUB_OFFLINE"] == "1"
    assert type(module).__name__ == "F1" and type(module).__module__.endswith("f1")
    with pytest.raises(FileNotFoundError, match=r"no shipped metric module .*precision.py; available: \['accuracy', 'f1'\]"):
        metrics.load_metric("precision")


def test_report_matches_hand_computed_scores():
    y_true = [1, 1, 2, 3, 4, 5, 5, 5]
    y_pred = [1, 2, 2, 3, 5, 5, 5, 3]
    report = metrics.classification_report(y_true, y_pred)
    assert report["accuracy"] == pytest.approx(5 / 8)
    # per class F1 = 2tp / (2tp + fp + fn): 1, 2, 3 and 5 -> 2/3 each (one tp, one fp or fn each side), 4 -> 0
    assert [report[f"f1_{r}"] for r in range(1, 6)] == pytest.approx([2 / 3, 2 / 3, 2 / 3, 0.0, 2 / 3])
    assert report["macro_f1"] == pytest.approx(4 * (2 / 3) / 5)
    # sentiment over the 7 non-3 references: the 1->2 miss is right, 5->3 is wrong, the rest right
    assert report["binary_accuracy"] == pytest.approx(6 / 7)


def test_a_class_absent_everywhere_scores_zero_not_missing():
    report = metrics.classification_report([5, 5, 4], [5, 4, 4])
    assert report["f1_1"] == 0.0 and report["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 5)


def test_confusion_counts_rows_are_actual():
    counts = metrics.confusion_counts([1, 1, 5], [1, 2, 5])
    assert counts[0, 0] == 1 and counts[0, 1] == 1 and counts[4, 4] == 1 and counts.sum() == 3
    assert np.array_equal(metrics.sentiment(np.array([1, 2, 3, 4, 5])), [0, 0, -1, 1, 1])


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, "n/a"),  # no synthesize metrics file (stage not run yet)
        ({"dp_enabled": True, "epsilon": 2.5, "epsilon_total": 3.1, "target_epsilon": 3.0}, "3.1"),  # the release's
        ({"dp_enabled": True, "epsilon": 2.5}, "n/a"),  # the text generator's alone is not the data's epsilon
        ({"dp_enabled": True, "epsilon_total": True}, "n/a"),  # not a number
        ({"dp_enabled": False, "epsilon": None, "target_epsilon": 3.0}, "none (non-private)"),  # never the target
        ({"rows": 10, "target_epsilon": 3.0}, "n/a"),  # no spent epsilon anywhere
    ],
)
def test_generator_epsilon_from_the_synthesize_metrics(tmp_path, payload, expected):
    path = tmp_path / "synthesize.json"
    if payload is not None:
        path.write_text(json.dumps(payload))
    assert generator_epsilon(path) == expected
