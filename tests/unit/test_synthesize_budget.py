"""The release's budget: the text generator's and the tabular model's epsilons composed."""

from __future__ import annotations

import pytest

from stages.synthesize.budget import compose, rdp_epsilon
from stages.synthesize.dp_tabular import calibrate, l2_sensitivity

# a generator run as the Opacus accountant reported it (metrics/synthesize.json of the default profile)
TEXT = {"dp_enabled": True, "epsilon": 7.995781316395219, "delta": 1e-5, "noise_multiplier": 0.527191162109375,
        "sample_rate": 0.016359918200409, "steps": 61}


def _tabular(epsilon: float, delta: float = 1e-6) -> dict:
    _, rho = calibrate(epsilon, delta, l2_sensitivity(5))
    return {"epsilon": epsilon, "delta": delta, "rho": rho}


def test_rdp_curve_reproduces_the_generators_own_epsilon():
    # rho = 0 adds nothing: Opacus' curve for (q, sigma, steps) gives back the accountant's epsilon
    assert rdp_epsilon(TEXT, 0.0, TEXT["delta"]) == pytest.approx(TEXT["epsilon"], rel=1e-6)


def test_composition_is_the_tighter_valid_bound():
    out = compose(TEXT, _tabular(1.0), dp_enabled=True)
    assert out["epsilon_total_basic"] == pytest.approx(TEXT["epsilon"] + 1.0)
    assert out["delta_total"] == pytest.approx(1.1e-5)
    assert out["composition"] == "rdp" and out["epsilon_total"] == out["epsilon_total_rdp"] < out["epsilon_total_basic"]
    assert out["epsilon_total"] > rdp_epsilon(TEXT, 0.0, out["delta_total"])  # the tabular model costs something
    assert out["epsilon_text"] == TEXT["epsilon"] and out["epsilon_tabular"] == 1.0


def test_without_the_generators_curve_basic_composition_holds():
    out = compose({"epsilon": 3.0, "delta": 1e-5}, _tabular(1.0), dp_enabled=True)
    assert out["composition"] == "basic" and out["epsilon_total"] == pytest.approx(4.0)


@pytest.mark.parametrize(("low", "high"), [(0.5, 4.0), (0.1, 1.0)])
def test_the_tabular_budget_moves_the_total(low, high):
    small, large = (compose(TEXT, _tabular(e), dp_enabled=True)["epsilon_total"] for e in (low, high))
    assert TEXT["epsilon"] * 0.99 < small < large


def test_a_non_private_run_has_no_epsilon():
    out = compose({"epsilon": float("inf")}, {"mechanism": "none"}, dp_enabled=False)
    assert out["epsilon_total"] is None and out["epsilon_text"] is None and out["delta_total"] is None


def _selection(epsilon: float, delta: float = 1e-6) -> dict:
    _, rho = calibrate(epsilon, delta, 1.0)
    return {"epsilon": epsilon, "delta": delta, "rho": rho}


def test_the_selection_joins_both_bounds():
    without = compose(TEXT, _tabular(1.0), dp_enabled=True)
    out = compose(TEXT, _tabular(1.0), dp_enabled=True, selection=_selection(2.0))
    assert out["epsilon_total_basic"] == pytest.approx(TEXT["epsilon"] + 1.0 + 2.0)
    assert out["delta_total"] == pytest.approx(1.2e-5)
    assert without["epsilon_total"] < out["epsilon_total"] < out["epsilon_total_basic"]
    assert out["composition"] == "rdp" and out["epsilon_selection"] == 2.0 and out["rho_selection"] > 0
    assert without["epsilon_selection"] is None


def test_zero_shot_text_with_selection_composes_the_two_zcdp_mechanisms():
    zero = {"epsilon": 0.0, "delta": 0.0, "steps": 0}
    assert compose(zero, _tabular(1.0), dp_enabled=True)["epsilon_total"] == 1.0  # tabular only
    out = compose(zero, _tabular(1.0), dp_enabled=True, selection=_selection(2.0))
    # rho adds, and the sum converts at delta_tabular + delta_selection: below 1 + 2, above either part
    assert 2.0 < out["epsilon_total"] < 3.0 and out["delta_total"] == pytest.approx(2e-6)
    assert out["composition"] == "tabular and selection (zero-shot text), rdp"
