"""The privacy–utility frontier across runs: points from run records, and the figure."""

from __future__ import annotations

import math

import pytest

from stages.evaluate.frontier import frontier_points, with_previous
from stages.evaluate.report import frontier_figure


def _run(run_id, start, exp, **metrics):
    return {"run_id": run_id, "start_time": start, "tags": {"dvc_exp_name": exp} if exp else {}, "metrics": metrics}


def test_frontier_points_one_per_experiment_latest_wins_and_non_private_has_no_epsilon():
    runs = [
        _run("aaaaaaaa1", 1, "eps1", **{"privacy.epsilon": 1.0, "privacy.dp_enabled": 1.0,
                                        "utility.ratio.lora.macro_f1": 0.5}),
        _run("bbbbbbbb2", 2, "eps8", **{"privacy.epsilon": 8.0, "privacy.dp_enabled": 1.0,
                                        "utility.ratio.lora.macro_f1": 0.7, "utility.real.lora.macro_f1": 0.4,
                                        "utility.real.majority.macro_f1": 0.16, "privacy.mia.auc": 0.55,
                                        "utility.lift.lora.macro_f1": 0.3,
                                        "privacy.mia.calibrated.auc": 0.51}),
        _run("cccccccc3", 3, "eps1", **{"privacy.epsilon": 1.0, "privacy.dp_enabled": 1.0,
                                        "utility.ratio.lora.macro_f1": 0.55}),  # rerun of eps1
        _run("dddddddd4", 4, "nodp", **{"privacy.dp_enabled": 0.0, "utility.ratio.lora.macro_f1": 0.9,
                                        "utility.lift.lora.macro_f1": 0.8}),
        _run("eeeeeeee5", 5, None, **{"privacy.epsilon": 4.0, "privacy.dp_enabled": 1.0,
                                      "utility.ratio.tfidf.macro_f1": 0.6}),  # plain repro, TF-IDF only
    ]
    points = frontier_points(runs).set_index("name")
    assert list(points.index) == ["eps8", "eps1", "nodp", "eeeeeeee"]
    assert points.loc["eps1", "utility_ratio"] == 0.55
    assert points.loc["nodp", "epsilon"] is None or math.isnan(points.loc["nodp", "epsilon"])
    assert points.loc["eeeeeeee", "utility_ratio"] == 0.6  # falls back to the TF-IDF ratio
    assert points.loc["eps8", "floor_ratio"] == pytest.approx(0.4)  # majority-class macro-F1 / real macro-F1
    assert math.isnan(points.loc["eps1", "floor_ratio"])  # no majority baseline logged
    fig = frontier_figure(points.reset_index())
    utility_ax, lift_ax, privacy_ax = fig.axes
    assert points.loc["eps8", "lora_lift"] == 0.3 and math.isnan(points.loc["eps1", "lora_lift"])
    assert [t.get_text() for t in lift_ax.get_legend().get_texts()] == [
        "DP-SGD, LoRA", "non-private, LoRA", "real data", "majority class"]
    assert [t.get_text() for t in utility_ax.get_legend().get_texts()] == [
        "DP-SGD, LoRA", "non-private, LoRA", "DP-SGD, TF-IDF", "real data (parity)", "majority class"]
    assert utility_ax.get_ylim()[0] == 0  # a flat line near the floor is not blown up
    assert [t.get_text() for t in privacy_ax.get_legend().get_texts()] == [  # the non-private run logged no attack
        "DP-SGD", "DP-SGD, calibrated attack", "chance"]
    assert points.loc["eps8", "mia_calibrated_auc"] == 0.51


def test_frontier_points_keep_only_the_named_experiments():
    runs = [
        _run("aaaaaaaa1", 1, "eps1", **{"privacy.epsilon": 1.0, "utility.ratio.lora.macro_f1": 0.5}),
        _run("bbbbbbbb2", 2, "other", **{"privacy.epsilon": 8.0, "utility.ratio.lora.macro_f1": 0.7}),
    ]
    assert list(frontier_points(runs, ["eps1"])["name"]) == ["eps1"]
    assert frontier_points(runs, ["missing"]).empty


def test_the_zero_shot_reference_is_its_own_point_not_a_dp_one():
    """Zero-shot sits at the release's epsilon (the tabular model's) but is not on the DP-SGD line."""
    runs = [
        _run("aaaaaaaa1", 1, "eps8", **{"privacy.epsilon": 8.0, "privacy.epsilon_text": 7.9, "privacy.fine_tuned": 1.0,
                                        "utility.ratio.lora.macro_f1": 0.6, "privacy.mia.auc": 0.6}),
        _run("bbbbbbbb2", 2, "zs", **{"privacy.epsilon": 1.0, "privacy.epsilon_text": 0.0, "privacy.fine_tuned": 0.0,
                                      "utility.ratio.lora.macro_f1": 0.7, "privacy.mia.auc": 0.57}),
        _run("cccccccc3", 3, "zs-old", **{"privacy.epsilon": 1.0, "privacy.epsilon_text": 0.0,  # logged before the flag
                                          "utility.ratio.lora.macro_f1": 0.7}),
    ]
    points = frontier_points(runs).set_index("name")
    assert points["fine_tuned"].to_dict() == {"eps8": True, "zs": False, "zs-old": False}
    assert points.loc["zs", "epsilon"] == 1.0
    utility_ax = frontier_figure(points.reset_index()).axes[0]
    dp_line = next(line for line in utility_ax.get_lines() if line.get_label() == "DP-SGD, LoRA")
    assert list(dp_line.get_xdata()) == [8.0]  # only the fine-tuned run
    assert "zero-shot, LoRA" in [t.get_text() for t in utility_ax.get_legend().get_texts()]


def test_zero_shot_drafts_chosen_by_the_dp_selection_are_not_the_zero_shot_reference():
    runs = [
        _run("aaaaaaaa1", 1, "zs", **{"privacy.epsilon": 1.0, "privacy.epsilon_text": 0.0, "privacy.fine_tuned": 0.0,
                                      "utility.ratio.lora.macro_f1": 0.7, "privacy.mia.auc": 0.57}),
        _run("bbbbbbbb2", 2, "zs-sel", **{"privacy.epsilon": 4.05, "privacy.epsilon_text": 0.0, "privacy.fine_tuned": 0.0,
                                          "privacy.epsilon_selection": 4.0, "utility.ratio.lora.macro_f1": 0.8,
                                          "privacy.mia.auc": 0.57}),
    ]
    points = frontier_points(runs).set_index("name")
    assert points["selected"].to_dict() == {"zs": False, "zs-sel": True}
    utility_ax = frontier_figure(points.reset_index()).axes[0]
    labels = [t.get_text() for t in utility_ax.get_legend().get_texts()]
    assert "zero-shot, LoRA" in labels and "zero-shot + DP selection, LoRA" in labels
    marked = {label: coll.get_offsets().tolist() for coll in utility_ax.collections if (label := coll.get_label())}
    assert marked["zero-shot, LoRA"] == [[1.0, 0.7]] and marked["zero-shot + DP selection, LoRA"] == [[4.05, 0.8]]


def test_an_earlier_table_adds_the_runs_this_store_lacks_and_loses_to_the_ones_it_holds():
    runs = [_run("aaaaaaaa1", 1, "eps4", **{"privacy.epsilon": 4.0, "utility.ratio.lora.macro_f1": 0.8})]
    points = frontier_points(runs)
    previous = frontier_points([
        _run("bbbbbbbb2", 1, "eps4", **{"privacy.epsilon": 4.0, "utility.ratio.lora.macro_f1": 0.6}),
        _run("cccccccc3", 2, "zs", **{"privacy.epsilon": 1.0, "privacy.epsilon_text": 0.0,
                                      "utility.ratio.lora.macro_f1": 0.7}),
        _run("dddddddd4", 3, "nodp", **{"privacy.dp_enabled": 0.0, "utility.ratio.lora.macro_f1": 0.9}),
    ])
    merged = with_previous(points, previous).set_index("name")
    assert merged["utility_ratio"].to_dict() == {"zs": 0.7, "nodp": 0.9, "eps4": 0.8}  # this store's eps4 wins
    assert not merged.loc["zs", "fine_tuned"]
    assert list(with_previous(points, previous, ["eps4", "zs"])["name"]) == ["zs", "eps4"]
    with pytest.raises(ValueError, match="lacks column"):
        with_previous(points, previous.drop(columns=["tfidf_ratio"]))


def test_repeated_releases_at_one_epsilon_draw_their_mean_on_the_line_and_each_as_a_dot():
    runs = [
        _run("aaaaaaaa1", 1, "eps4-a", **{"privacy.epsilon": 4.0, "utility.ratio.lora.macro_f1": 0.6}),
        _run("bbbbbbbb2", 2, "eps4-b", **{"privacy.epsilon": 4.0, "utility.ratio.lora.macro_f1": 0.8}),
        _run("cccccccc3", 3, "eps8", **{"privacy.epsilon": 8.0, "utility.ratio.lora.macro_f1": 0.75}),
    ]
    utility_ax = frontier_figure(frontier_points(runs)).axes[0]
    dp_line = next(line for line in utility_ax.get_lines() if line.get_label() == "DP-SGD, LoRA")
    assert list(dp_line.get_xdata()) == [4.0, 8.0]
    assert list(dp_line.get_ydata()) == pytest.approx([0.7, 0.75])
    dots = [c.get_offsets().tolist() for c in utility_ax.collections if c.get_label().startswith("_")]
    assert sorted(map(tuple, dots[0])) == [(4.0, 0.6), (4.0, 0.8), (8.0, 0.75)]
