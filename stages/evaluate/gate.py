"""The gate: privacy checks (on the composed epsilon) and a utility check, and the `champion` alias it moves when all hold."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from stages.evaluate.params import GateParams
from stages.io import is_number

GENERATOR = "review-generator"
CLASSIFIER = "review-rating-classifier"


@dataclass
class GateResult:
    """Each check's outcome (name -> (passed, observed value, the limit in words))."""

    checks: dict[str, tuple[bool, float | str | None, str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every check holds."""
        return all(ok for ok, _, _ in self.checks.values())

    @property
    def failed(self) -> list[str]:
        """Names of the checks that do not hold."""
        return [name for name, (ok, _, _) in self.checks.items() if not ok]

    def metrics(self) -> dict[str, float | int]:
        """Flat gate.* metrics: 1/0 per check and overall."""
        out: dict[str, float | int] = {"gate.passed": int(self.passed), "gate.failed_checks": len(self.failed)}
        out.update({f"gate.{name}": int(ok) for name, (ok, _, _) in self.checks.items()})
        return out


def check_gate(metrics: Mapping[str, object], gate: GateParams) -> GateResult:
    """Apply the gate's thresholds to evaluate's flat metrics; a missing measurement fails its check."""
    result = GateResult()

    def at_most(name: str, key: str, limit: float) -> None:
        value = metrics.get(key)
        result.checks[name] = (is_number(value) and value <= limit, value, f"<= {limit:g}")

    # privacy.epsilon is the released dataset's: text generator, tabular model and DP selection composed
    epsilon = metrics.get("privacy.epsilon")
    # a fine-tuned generator without DP-SGD makes the release non-private, whatever the tabular model
    non_private = metrics.get("privacy.dp_enabled") is False and metrics.get("privacy.fine_tuned") is not False
    if non_private or epsilon is None:
        result.checks["epsilon"] = (False, None, f"<= {gate.max_epsilon:g} (the release is not private)")
    else:
        result.checks["epsilon"] = (is_number(epsilon) and epsilon <= gate.max_epsilon, epsilon,
                                    f"<= {gate.max_epsilon:g} (the release's, composed)")
    at_most("canary_leaks", "privacy.canary.verbatim_total", gate.max_canary_leaks)
    # What training gave away: the calibrated attack (generator loss minus base-model loss) where it ran. The
    # plain loss attack also reads the member and held-out splits' difference, which the base model, having
    # seen neither, separates as well (AUC 0.571-0.577 on the sample, README); it decides only where the
    # calibrated attack could not run.
    calibrated = "privacy.mia.calibrated.auc" in metrics
    auc = metrics.get("privacy.mia.calibrated.auc" if calibrated else "privacy.mia.auc")
    result.checks["mia_auc"] = (is_number(auc) and auc <= gate.max_mia_auc, auc if is_number(auc) else None,
                                f"<= {gate.max_mia_auc:g} ("
                                + ("calibrated attack: generator minus base-model loss)" if calibrated
                                   else "plain loss attack: no base-model losses to calibrate against)"))
    # the whole interval must lie in the band: it covers the chance in the synthetic rows and in the
    # references, and a held-out split of a few hundred people leaves it wide (then the check cannot pass)
    low = metrics.get("privacy.dcr.embedding.dcr_share_ci_low")
    high = metrics.get("privacy.dcr.embedding.dcr_share_ci_high")
    ok = is_number(low) and is_number(high) and gate.dcr_share_min <= low and high <= gate.dcr_share_max
    shown = f"[{low:.3f}, {high:.3f}]{dcr_verdict(low, high, gate)}" if is_number(low) and is_number(high) else None
    result.checks["dcr_share"] = (bool(ok), shown, f"{gate.dcr_confidence:.0%} interval within "
                                                   f"[{gate.dcr_share_min:g}, {gate.dcr_share_max:g}]")
    at_most("residual_pii", "privacy.pii.records_with_pii", gate.max_residual_pii)
    ratio = metrics.get("utility.ratio.lora.macro_f1")
    result.checks["utility"] = (is_number(ratio) and ratio >= gate.min_utility_ratio, ratio,
                                f">= {gate.min_utility_ratio:g} (synthetic / real LoRA macro-F1)")
    return result


def dcr_verdict(low: float, high: float, gate: GateParams) -> str:
    """What a DCR interval says against the band: nothing to add, closer to train, or too wide to tell."""
    if low > gate.dcr_share_max:
        return ": closer to train than to held-out data"
    if high < gate.dcr_share_min:
        return ": closer to held-out data than to train"
    if low < gate.dcr_share_min or high > gate.dcr_share_max:
        return ": too wide to tell (more held-out users narrow it)"
    return ""


def promote(result: GateResult, *, versions: Mapping[str, str | None]) -> dict[str, str | None]:
    """Move `champion` to the given versions when the gate passed; return where champion points after.

    `versions` maps registered model name -> this run's version (its `candidate`). On a
    failed gate, or with a version missing, nothing moves.
    """
    from stages.tracking import model_version_by_alias, set_model_alias

    if result.passed and all(versions.values()):
        for name, version in versions.items():
            set_model_alias(name, "champion", str(version))
    return {name: model_version_by_alias(name, "champion") for name in versions}
