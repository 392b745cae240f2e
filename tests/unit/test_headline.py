"""The headline: figures copied from the stages' metrics files, gaps listed, column order kept."""

from __future__ import annotations

import json
import re

import pytest

from stages import headline
from stages.headline import HEADLINE, Figure, build_headline, keep_regex
from tests.conftest import ROOT

SOURCES = {
    "metrics/synthesize.json": {"epsilon": 7.99, "dp_enabled": True, "records_written": 105, "seconds": {"total": 233.4}},
    "metrics/evaluate.json": {"privacy.mia.auc": 0.57, "privacy.epsilon": None},
}


def test_figures_are_copied_in_declared_order_and_gaps_are_listed():
    figures = (
        Figure("release.records_written", "metrics/synthesize.json", "records_written"),
        Figure("budget.epsilon_total", "metrics/synthesize.json", "epsilon_total"),  # not written yet
        Figure("stage_seconds.synthesize", "metrics/synthesize.json", "seconds.total"),  # nested key, dotted
        Figure("privacy.epsilon_eval", "metrics/evaluate.json", "privacy.epsilon"),  # null stays null
        Figure("utility.lift", "metrics/train.json", "lift.lora.macro_f1"),  # file absent
    )
    out = build_headline(SOURCES, figures)
    assert list(out) == ["release.records_written", "stage_seconds.synthesize", "privacy.epsilon_eval",
                         "missing", "missing_count"]
    assert out["release.records_written"] == 105 and out["stage_seconds.synthesize"] == 233.4
    assert out["privacy.epsilon_eval"] is None
    assert out["missing"] == ["budget.epsilon_total", "utility.lift"] and out["missing_count"] == 2


@pytest.mark.parametrize("labels", [("a", "a"), ("missing",), ("missing_count",)])
def test_labels_must_be_unique_and_not_the_gap_keys(labels):
    figures = [Figure(label, "metrics/x.json", "k") for label in labels]
    with pytest.raises(ValueError, match="headline labels must be unique"):
        build_headline({}, figures)


def test_the_declared_list_covers_the_decision_figures():
    sources = {(f.source, f.key) for f in HEADLINE}
    for wanted in [("metrics/synthesize.json", "epsilon_total"), ("metrics/synthesize.json", "epsilon_text"),
                   ("metrics/synthesize.json", "epsilon_tabular"), ("metrics/synthesize.json", "delta_total"),
                   ("metrics/train.json", "ratio.lora.macro_f1"), ("metrics/train.json", "lift.lora.macro_f1"),
                   ("metrics/train.json", "lift.tfidf.macro_f1"), ("metrics/evaluate.json", "privacy.mia.calibrated.auc"),
                   ("metrics/evaluate.json", "privacy.dcr.embedding.dcr_share"),
                   ("metrics/evaluate.json", "privacy.canary.verbatim_total"),
                   ("metrics/evaluate.json", "fidelity.quality.synthetic.any_problem_share"),
                   ("metrics/synthesize.json", "records_written")]:
        assert wanted in sources, wanted
    assert {f.source for f in HEADLINE if f.label.startswith("stage_seconds.")} == {
        f"metrics/{s}.json" for s in ("extract", "anonymize", "synthesize", "train", "evaluate")}


def test_labels_do_not_collide_with_the_stages_keys():
    """A label equal to another file's key would make `dvc exp show` prefix both with their paths."""
    keys = set()
    for f in {f.source for f in HEADLINE}:
        path = ROOT / f
        if path.is_file():
            keys |= set(headline.flatten_metrics(json.loads(path.read_text())))
    assert not {f.label for f in HEADLINE} & keys


def test_keep_regex_matches_the_headline_columns_only():
    pattern = re.compile(keep_regex())
    for column in ("Experiment", "Created", "privacy.dcr_share", "metrics/headline.json:privacy.dcr_share",
                   "missing_count", "synthesize.dp.target_epsilon", "params.yaml:synthesize.dp.enabled"):
        assert pattern.match(column), column
    for column in ("rows_kept", "privacy.dcr.embedding.dcr_share", "seconds.train", "privacy.dcr_share_x",
                   "extract.max_rows", "metrics/evaluate.json:privacy.mia.auc"):
        assert not pattern.match(column), column


def test_cli_writes_the_headline_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for path, content in SOURCES.items():
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(json.dumps(content))
    assert headline.main(["--no-mlflow", "--output", "out/headline.json"]) == 0
    written = json.loads((tmp_path / "out" / "headline.json").read_text())
    assert list(written)[:3] == ["budget.epsilon_generator", "budget.text_dp_sgd", "privacy.mia_auc"]
    assert written["missing_count"] == len(HEADLINE) - 5
    assert f"headline: 5 of {len(HEADLINE)} figures -> out/headline.json; missing: budget.epsilon_total" in capsys.readouterr().out


def test_cli_names_a_corrupt_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "train.json").write_text("{not json")
    with pytest.raises(headline.PipelineInputError, match=r"metrics/train.json: not valid JSON .*rerun the stage"):
        headline.main(["--no-mlflow"])
