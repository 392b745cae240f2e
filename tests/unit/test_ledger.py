"""The privacy ledger: every output and metric of the pipeline is claimed by a component's entry."""

from __future__ import annotations

import json

import pytest
import yaml

from stages.ledger import DP, LEDGER, NONE, build_ledger, unclaimed_metrics, unclaimed_outputs
from tests.conftest import ROOT

METRICS_FILES = ("extract", "anonymize", "synthesize", "train", "evaluate")


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def test_every_dvc_output_has_a_ledger_entry():
    assert unclaimed_outputs(_stages()) == []


@pytest.mark.parametrize("name", METRICS_FILES)
def test_every_key_of_the_committed_metrics_has_a_ledger_entry(name):
    path = f"metrics/{name}.json"
    assert unclaimed_metrics(path, json.loads((ROOT / path).read_text())) == []


def test_a_component_without_an_entry_is_caught():
    # remove the tabular model's entry: its metrics and its model folder are unclaimed again
    ledger = [e for e in LEDGER if e.component != "synthesize.tabular"]
    assert unclaimed_metrics("metrics/synthesize.json", {"epsilon_tabular": 1.0, "epsilon": 2.0}, ledger) == [
        "epsilon_tabular"]
    assert "models/tabular" in unclaimed_outputs(_stages(), ledger)
    # a new stage output or metric nobody declared
    stages = {**_stages(), "new": {"outs": ["data/new_release"], "metrics": [{"metrics/new.json": {"cache": False}}]}}
    assert unclaimed_outputs(stages) == ["data/new_release", "metrics/new.json"]
    assert unclaimed_metrics("metrics/evaluate.json", {"privacy.new_attack.auc": 0.5}) == ["privacy.new_attack.auc"]


def test_component_names_are_unique_and_dp_entries_name_their_budget():
    names = [e.component for e in LEDGER]
    assert len(names) == len(set(names))
    for entry in LEDGER:
        assert entry.reason and entry.releases and entry.mechanism
        if entry.guarantee == DP and entry.stage == "synthesize":
            assert entry.epsilon_key and entry.delta_key, entry.component


def test_the_ledger_file_carries_the_accountants_figures():
    metrics = {"dp_enabled": True, "epsilon_total": 8.1, "delta_total": 1.1e-5, "epsilon_text": 8.0, "delta": 1e-5,
               "epsilon_tabular": 1.0, "delta_tabular": 1e-6, "composition": "rdp", "privacy_unit": "user",
               "max_reviews_per_user": 5}
    ledger = build_ledger(metrics)
    assert set(ledger["components"]) == {e.component for e in LEDGER}
    assert ledger["epsilon_total"] == 8.1 and ledger["unit"] == "user"
    tab = ledger["components"]["synthesize.tabular"]
    assert tab["guarantee"] == DP and tab["epsilon"] == 1.0 and tab["delta"] == 1e-6 and tab["unit"] == "user"
    assert ledger["components"]["synthesize.text_generator"]["epsilon"] == 8.0
    memo = ledger["components"]["synthesize.memorisation_filter"]
    assert memo["guarantee"] == NONE and "private" in memo["reason"]


def test_a_non_private_run_claims_no_guarantee():
    ledger = build_ledger({"dp_enabled": False, "epsilon_total": None, "privacy_unit": "user"})
    assert all(c["guarantee"] != DP for c in ledger["components"].values())
    assert ledger["components"]["synthesize.tabular"]["reason"].startswith("synthesize.dp.enabled is false")
