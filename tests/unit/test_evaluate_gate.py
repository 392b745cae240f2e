"""The gate (privacy and utility): its checks, and the champion alias on a real MLflow SQLite registry."""

from __future__ import annotations

import pytest

from stages.errors import ParamsError
from stages.evaluate.gate import CLASSIFIER, GENERATOR, check_gate, promote
from stages.evaluate.params import GateParams
from stages.params import parse_section

GATE = GateParams(max_epsilon=8.0, max_canary_leaks=0, max_mia_auc=0.6, dcr_share_min=0.4, dcr_share_max=0.6,
                  dcr_confidence=0.95, max_residual_pii=0, min_utility_ratio=0.5)
GOOD = {
    "privacy.dp_enabled": True,
    "privacy.epsilon": 4.0,  # the composed epsilon of the release
    "privacy.canary.verbatim_total": 0,
    "privacy.mia.auc": 0.52,
    "privacy.dcr.embedding.dcr_share": 0.5,
    "privacy.dcr.embedding.dcr_share_ci_low": 0.45,
    "privacy.dcr.embedding.dcr_share_ci_high": 0.55,
    "privacy.pii.records_with_pii": 0,
    "utility.ratio.lora.macro_f1": 0.8,
}


def test_all_checks_hold():
    result = check_gate(GOOD, GATE)
    assert result.passed and result.failed == []
    assert result.metrics()["gate.passed"] == 1
    assert set(result.checks) == {"epsilon", "canary_leaks", "mia_auc", "dcr_share", "residual_pii", "utility"}


@pytest.mark.parametrize(
    ("change", "failed"),
    [
        ({"privacy.epsilon": 9.0}, ["epsilon"]),  # budget above the maximum
        ({"privacy.dp_enabled": False, "privacy.epsilon": None}, ["epsilon"]),  # non-private generator
        ({"privacy.canary.verbatim_total": 1}, ["canary_leaks"]),  # one canary field leaked
        ({"privacy.mia.auc": 0.61}, ["mia_auc"]),  # attack too successful
        ({"privacy.dcr.embedding.dcr_share_ci_low": 0.8, "privacy.dcr.embedding.dcr_share_ci_high": 0.95},
         ["dcr_share"]),  # memorisation
        ({"privacy.dcr.embedding.dcr_share_ci_low": 0.05, "privacy.dcr.embedding.dcr_share_ci_high": 0.2},
         ["dcr_share"]),  # below the range too
        ({"privacy.dcr.embedding.dcr_share_ci_low": 0.38}, ["dcr_share"]),  # point 0.5, but the interval leaves it
        ({"privacy.dcr.embedding.dcr_share_ci_high": None}, ["dcr_share"]),  # no interval: fails
        ({"utility.ratio.lora.macro_f1": 0.45}, ["utility"]),  # at the majority-class floor: teaches nothing
        ({"utility.ratio.lora.macro_f1": None}, ["utility"]),  # not measured
        ({"privacy.epsilon": 9.0, "utility.ratio.lora.macro_f1": 0.1}, ["epsilon", "utility"]),  # privacy and utility
        ({"privacy.pii.records_with_pii": 2}, ["residual_pii"]),  # PII in synthetic texts
        ({"privacy.mia.auc": None}, ["mia_auc"]),  # not measured: fails, never passes by default
        ({"privacy.mia.auc": float("nan")}, ["mia_auc"]),  # NaN is not a measurement
        ({"privacy.mia.auc": 0.9, "privacy.pii.records_with_pii": 1}, ["mia_auc", "residual_pii"]),  # two at once
        ({"privacy.mia.calibrated.auc": 0.65}, ["mia_auc"]),  # what training gave away, calibrated
        ({"privacy.mia.calibrated.auc": float("nan")}, ["mia_auc"]),  # ran but measured nothing
        ({"privacy.mia.calibrated.auc": None}, ["mia_auc"]),
    ],
)
def test_each_failing_check_is_named(change, failed):
    result = check_gate({**GOOD, **change}, GATE)
    assert not result.passed
    assert result.failed == failed
    assert result.metrics()["gate.failed_checks"] == len(failed)


def test_zero_shot_reference_passes_the_epsilon_check_at_zero():
    """Not fine-tuned: the text model saw no data, so its epsilon is 0, not 'non-private'."""
    zero_shot = {**GOOD, "privacy.dp_enabled": False, "privacy.fine_tuned": False, "privacy.epsilon": 0.0}
    ok, value, _ = check_gate(zero_shot, GATE).checks["epsilon"]
    assert ok and value == 0.0
    # a fine-tuned non-private generator still fails, whatever number sits in epsilon
    assert not check_gate({**zero_shot, "privacy.fine_tuned": True}, GATE).checks["epsilon"][0]


def test_mia_check_reads_the_calibrated_attack_where_it_ran():
    """The plain attack's AUC also holds the splits' difference (the base model alone reaches it): not the check's."""
    split_difference = {**GOOD, "privacy.mia.auc": 0.61, "privacy.mia.base_model_auc": 0.58}
    ok, value, limit = check_gate({**split_difference, "privacy.mia.calibrated.auc": 0.51}, GATE).checks["mia_auc"]
    assert ok and value == 0.51 and "calibrated" in limit
    ok, value, limit = check_gate({**split_difference, "privacy.mia.calibrated.auc": 0.62}, GATE).checks["mia_auc"]
    assert not ok and value == 0.62
    # no base-model losses: the plain attack is all there is, and it decides
    ok, value, limit = check_gate(split_difference, GATE).checks["mia_auc"]
    assert not ok and value == 0.61 and "plain" in limit


def test_gate_params_refuse_an_empty_dcr_range():
    raw = {"max_epsilon": 8.0, "max_canary_leaks": 0, "max_mia_auc": 0.6, "dcr_share_min": 0.7,
           "dcr_share_max": 0.3, "dcr_confidence": 0.95, "max_residual_pii": 0, "min_utility_ratio": 0.5}
    with pytest.raises(ParamsError, match=r"evaluate.gate.dcr_share_min: 0.7 is above dcr_share_max 0.3"):
        parse_section(raw, GateParams, "evaluate.gate")


@pytest.fixture()
def registry(tmp_path):
    """Two registered models with versions 1 and 2 each, champion on 1, in this test's own SQLite store."""
    import mlflow

    from stages.tracking import set_model_alias, tracking_uri

    mlflow.set_tracking_uri(tracking_uri(None))  # MLFLOW_TRACKING_URI: the per-test store (conftest)
    client = mlflow.MlflowClient()
    for name in (GENERATOR, CLASSIFIER):
        client.create_registered_model(name)
        for _ in range(2):
            client.create_model_version(name, source=str(tmp_path))
        set_model_alias(name, "champion", "1")
        set_model_alias(name, "candidate", "2")
    return client


def test_a_passing_gate_moves_champion_to_the_candidates(registry):
    after = promote(check_gate(GOOD, GATE), versions={GENERATOR: "2", CLASSIFIER: "2"})
    assert after == {GENERATOR: "2", CLASSIFIER: "2"}


def test_a_failing_gate_leaves_champion_where_it_was(registry):
    after = promote(check_gate({**GOOD, "privacy.mia.auc": 0.8}, GATE), versions={GENERATOR: "2", CLASSIFIER: "2"})
    assert after == {GENERATOR: "1", CLASSIFIER: "1"}


def test_a_failing_utility_check_alone_leaves_champion_where_it_was(registry):
    result = check_gate({**GOOD, "utility.ratio.lora.macro_f1": 0.3}, GATE)
    assert result.failed == ["utility"]
    assert promote(result, versions={GENERATOR: "2", CLASSIFIER: "2"}) == {GENERATOR: "1", CLASSIFIER: "1"}


def test_a_missing_version_moves_nothing(registry):
    after = promote(check_gate(GOOD, GATE), versions={GENERATOR: "2", CLASSIFIER: None})
    assert after == {GENERATOR: "1", CLASSIFIER: "1"}


def test_latest_version_tagged_finds_the_synthetic_classifier(registry):
    from stages.tracking import latest_version_tagged

    registry.set_model_version_tag(CLASSIFIER, "1", "source", "synthetic")
    registry.set_model_version_tag(CLASSIFIER, "2", "source", "real")
    assert latest_version_tagged(CLASSIFIER, "source", "synthetic") == "1"
    assert latest_version_tagged(CLASSIFIER, "source", "nothing") is None


@pytest.mark.parametrize(("low", "high", "verdict"), [
    (0.45, 0.55, None),
    (0.65, 0.9, "closer to train than to held-out data"),
    (0.1, 0.3, "closer to held-out data than to train"),
    (0.37, 0.73, "too wide to tell"),
])
def test_dcr_check_says_whether_its_interval_leaves_the_band_or_only_is_too_wide(low, high, verdict):
    result = check_gate({**GOOD, "privacy.dcr.embedding.dcr_share_ci_low": low,
                         "privacy.dcr.embedding.dcr_share_ci_high": high}, GATE)
    ok, shown, _ = result.checks["dcr_share"]
    assert ok is (verdict is None)
    assert shown.startswith(f"[{low:.3f}, {high:.3f}]")
    assert (verdict is None and shown.endswith("]")) or (verdict is not None and verdict in shown)
