"""One budget for the released dataset: the DP tabular model composed with the DP text generator.

A synthetic record's structured values come from the tabular model and its title and
text from the generator, both fitted on the same private training split with the same
privacy unit, so the release is their (sequential) composition. Two valid bounds, at
the same delta_total = delta_text + delta_tabular:

- **basic**: epsilon_text + epsilon_tabular (holds whatever accountants produced them);
- **rdp**: both mechanisms are Gaussian. The generator's Poisson-subsampled Gaussian
  has the Rényi-DP curve Opacus computes from (q, sigma, steps); the tabular Gaussian is
  rho-zCDP, i.e. RDP rho·alpha at every order alpha. RDP curves add under composition,
  and Opacus' conversion turns the sum into epsilon at delta_total.

With DP selection of drafts (selection.py) a third Gaussian mechanism, rho_selection-zCDP,
reads the same private rows: its epsilon and delta join the basic sum, and its rho joins
the tabular model's in the RDP curve (zCDP mechanisms compose by adding rho).

Both are upper bounds on the same release, so `epsilon_total` is the smaller one, and
`composition` says which it was. Neither is chosen after looking at private data: both
are functions of the mechanisms' parameters only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from stages.io import is_number


def rdp_epsilon(text: Mapping | None, rho: float, delta: float) -> float | None:
    """epsilon at delta of the generator's subsampled Gaussian (None: no generator curve) composed with rho-zCDP."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    orders = [float(a) for a in RDPAccountant.DEFAULT_ALPHAS]
    if text is None:
        curve = np.zeros(len(orders))
    elif not all(is_number(text.get(k)) for k in ("sample_rate", "noise_multiplier", "steps")):
        return None
    else:
        curve = compute_rdp(q=text["sample_rate"], noise_multiplier=text["noise_multiplier"],
                            steps=int(text["steps"]), orders=orders)
    epsilon, _ = get_privacy_spent(orders=orders, rdp=curve + rho * np.asarray(orders), delta=delta)
    return float(epsilon)


def compose(text: Mapping, tabular: Mapping, *, dp_enabled: bool, selection: Mapping | None = None) -> dict:
    """The release's epsilon_total and delta_total, and its parts, as synthesize's metrics keys.

    `text` is the generator's privacy dict (dp.train_lora), `tabular` the tabular model's
    `privacy_`, `selection` the DP selection's (selection.select), None when it is off. With
    DP off every model is non-private and every epsilon is null.
    """
    if not dp_enabled:
        return {"epsilon_total": None, "delta_total": None, "epsilon_text": None, "epsilon_tabular": None,
                "delta_tabular": None, "rho_tabular": None, "epsilon_selection": None, "delta_selection": None,
                "rho_selection": None, "composition": "none (non-private)"}
    eps_text, eps_tab = float(text["epsilon"]), float(tabular["epsilon"])
    eps_sel, delta_sel, rho_sel = ((float(selection["epsilon"]), float(selection["delta"]), float(selection["rho"]))
                                   if selection else (0.0, 0.0, 0.0))
    # the zero-shot reference's text model saw no private data: epsilon 0, no delta, nothing to compose
    zero_shot = eps_text == 0.0 and not text.get("steps")
    delta_total = (0.0 if zero_shot else float(text["delta"])) + float(tabular["delta"]) + delta_sel
    basic = eps_text + eps_tab + eps_sel
    if zero_shot and not selection:  # one mechanism: its own epsilon
        rdp = None
    else:
        rdp = rdp_epsilon(None if zero_shot else text, float(tabular["rho"]) + rho_sel, delta_total)
    tighter = rdp is not None and rdp < basic
    if zero_shot:
        composition = ("tabular and selection (zero-shot text), " + ("rdp" if tighter else "basic")
                       if selection else "tabular only (zero-shot text)")
    else:
        composition = "rdp" if tighter else "basic"
    return {
        "epsilon_total": rdp if tighter else basic,
        "delta_total": delta_total,
        "epsilon_text": eps_text,
        "epsilon_tabular": eps_tab,
        "delta_tabular": float(tabular["delta"]),
        "rho_tabular": float(tabular["rho"]),
        "epsilon_selection": eps_sel if selection else None,
        "delta_selection": delta_sel if selection else None,
        "rho_selection": rho_sel if selection else None,
        "epsilon_total_basic": basic,
        "epsilon_total_rdp": rdp,
        "composition": composition,
    }
