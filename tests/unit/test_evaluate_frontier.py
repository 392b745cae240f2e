"""The privacy–utility frontier across runs: points from run records, and the figure."""

from __future__ import annotations

import math

from stages.evaluate.frontier import frontier_points
from stages.evaluate.report import frontier_figure


def _run(run_id, start, exp, **metrics):
    return {"run_id": run_id, "start_time": start, "tags": {"dvc_exp_name": exp} if exp else {}, "metrics": metrics}


def test_frontier_points_one_per_experiment_latest_wins_and_non_private_has_no_epsilon():
    runs = [
        _run("aaaaaaaa1", 1, "eps1", **{"privacy.epsilon": 1.0, "privacy.dp_enabled": 1.0,
                                        "utility.ratio.lora.macro_f1": 0.5}),
        _run("bbbbbbbb2", 2, "eps8", **{"privacy.epsilon": 8.0, "privacy.dp_enabled": 1.0,
                                        "utility.ratio.lora.macro_f1": 0.7}),
        _run("cccccccc3", 3, "eps1", **{"privacy.epsilon": 1.0, "privacy.dp_enabled": 1.0,
                                        "utility.ratio.lora.macro_f1": 0.55}),  # rerun of eps1
        _run("dddddddd4", 4, "nodp", **{"privacy.dp_enabled": 0.0, "utility.ratio.lora.macro_f1": 0.9}),
        _run("eeeeeeee5", 5, None, **{"privacy.epsilon": 4.0, "privacy.dp_enabled": 1.0,
                                      "utility.ratio.tfidf.macro_f1": 0.6}),  # plain repro, TF-IDF only
    ]
    points = frontier_points(runs).set_index("name")
    assert list(points.index) == ["eps8", "eps1", "nodp", "eeeeeeee"]
    assert points.loc["eps1", "utility_ratio"] == 0.55
    assert points.loc["nodp", "epsilon"] is None or math.isnan(points.loc["nodp", "epsilon"])
    assert points.loc["eeeeeeee", "utility_ratio"] == 0.6  # falls back to the TF-IDF ratio
    fig = frontier_figure(points.reset_index())
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["DP-SGD", "non-private"]


def test_frontier_points_keep_only_the_named_experiments():
    runs = [
        _run("aaaaaaaa1", 1, "eps1", **{"privacy.epsilon": 1.0, "utility.ratio.lora.macro_f1": 0.5}),
        _run("bbbbbbbb2", 2, "other", **{"privacy.epsilon": 8.0, "utility.ratio.lora.macro_f1": 0.7}),
    ]
    assert list(frontier_points(runs, ["eps1"])["name"]) == ["eps1"]
    assert frontier_points(runs, ["missing"]).empty
