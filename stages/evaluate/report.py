"""metrics/report.html: one self-contained page (figures inlined as base64 PNGs) and plain-language verdicts."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import Any

import pandas as pd

from stages.evaluate.gate import GateResult

# (label, synthetic key, real baseline key, which way is better)
SUMMARY_ROWS = (
    ("Fréchet embedding distance", "fidelity.text.frechet", "fidelity.text.frechet_baseline", "lower"),
    ("MAUVE", "fidelity.text.mauve", "fidelity.text.mauve_baseline", "higher"),
    ("Mean nearest-neighbour cosine to train", "fidelity.text.nn_cosine_mean", "fidelity.text.nn_cosine_baseline", "closer"),
    ("Word-distribution JS divergence", "fidelity.text.word_js", "fidelity.text.word_js_baseline", "lower"),
    ("Length KS statistic", "fidelity.text.length.ks", "fidelity.text.length.ks_baseline", "lower"),
    ("Label fidelity (real classifier accuracy)", "fidelity.label.accuracy", "fidelity.label.real_test_accuracy", "higher"),
    ("Texts with any quality problem", "fidelity.quality.synthetic.any_problem_share", "fidelity.quality.real.any_problem_share", "lower"),
    ("Gibberish (out-of-vocabulary) word share", "fidelity.quality.synthetic.gibberish_share", "fidelity.quality.real.gibberish_share", "lower"),
    ("SDMetrics quality score (structured)", "fidelity.structured.quality_score", None, "higher"),
    ("DCR share, embeddings (0.5 = no memorisation)", "privacy.dcr.embedding.dcr_share", None, "0.5"),
    ("DCR share, structured columns", "privacy.dcr.structured.dcr_share", None, "0.5"),
    ("NNDR median (synthetic to train / to held-out)", "privacy.dcr.embedding.nndr_median", "privacy.dcr.embedding.nndr_holdout_median", "closer"),
    ("Membership-inference AUC", "privacy.mia.auc", None, "0.5"),
    ("MIA TPR at 1% FPR", "privacy.mia.tpr_at_1pct_fpr", None, "lower"),
    ("Calibrated MIA AUC (generator vs base-model loss)", "privacy.mia.calibrated.auc", "privacy.mia.base_model_auc",
     "0.5"),
    ("Calibrated MIA TPR at 1% FPR", "privacy.mia.calibrated.tpr_at_1pct_fpr", None, "lower"),
    ("Canary verbatim leaks", "privacy.canary.verbatim_total", None, "0"),
    ("Canary exposure, mean (bits)", "privacy.canary.exposure_mean", "privacy.canary.exposure_ceiling", "lower"),
    ("Anonymeter singling-out risk", "privacy.anonymeter.singling_out_risk", None, "lower"),
    ("Anonymeter linkability risk", "privacy.anonymeter.linkability_risk", None, "lower"),
    ("Anonymeter inference risk (worst column)", "privacy.anonymeter.inference_max_risk", None, "lower"),
    ("Synthetic records with residual PII", "privacy.pii.records_with_pii", None, "0"),
    ("LoRA classifier macro-F1 (synthetic-trained / real-trained)", "utility.synthetic.lora.macro_f1", "utility.real.lora.macro_f1", "higher"),
    ("TF-IDF macro-F1 (synthetic-trained / real-trained)", "utility.synthetic.tfidf.macro_f1", "utility.real.tfidf.macro_f1", "higher"),
    ("Feature-importance rank correlation", "utility.feature_rank_correlation", None, "higher"),
    ("Top-k feature overlap", "utility.feature_topk_overlap", None, "higher"),
)


def _interval(m: Mapping[str, Any], key: str) -> str:
    """'95% interval a–b; ' for a metric with an interval, '' otherwise."""
    low, high, conf = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high"), m.get(f"{key}_ci_confidence")
    if not all(isinstance(v, (int, float)) for v in (low, high, conf)):
        return ""
    return f"{conf:.0%} interval {low:.3f}–{high:.3f}; "


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def verdicts(m: Mapping[str, Any]) -> dict[str, str]:
    """One plain-language sentence per area, from the numbers against their real baselines."""
    out = {}
    fd, fd0 = m.get("fidelity.text.frechet"), m.get("fidelity.text.frechet_baseline")
    mauve = m.get("fidelity.text.mauve")
    q = m.get("fidelity.structured.quality_score")
    mauve0 = m.get("fidelity.text.mauve_baseline")
    if fd is not None and fd0 and mauve is not None and mauve0:
        ratio, kept = fd / fd0, mauve / mauve0
        feel = ("close to" if ratio < 2 and kept >= 0.5 else
                "clearly different from" if ratio > 5 or kept < 0.2 else "somewhat different from")
        out["Fidelity"] = (
            f"Synthetic texts are {feel} real ones: their embedding distance to the real train split is "
            f"{ratio:.1f}× what a second real sample gives, and MAUVE is {_fmt(mauve)} against "
            f"{_fmt(mauve0)} for two real samples (1 = indistinguishable); "
            f"the structured columns score {_fmt(q)} on SDMetrics' quality report."
        )
    share = m.get("privacy.dcr.embedding.dcr_share")
    auc = m.get("privacy.mia.auc")
    leaks = m.get("privacy.canary.verbatim_total")
    eps = m.get("privacy.epsilon")
    parts = [f"the text generator's ε = {_fmt(m.get('privacy.epsilon_text'))}",
             f"the structured columns' ε = {_fmt(m.get('privacy.epsilon_tabular'))}"]
    if m.get("privacy.epsilon_selection") is not None:
        parts.append(f"the DP selection of drafts' ε = {_fmt(m.get('privacy.epsilon_selection'))}")
    guarantee = (
        f"a DP guarantee of ε = {eps:.3g} (δ = {_fmt(m.get('privacy.delta'))}, per {m.get('privacy.unit')}): "
        f"{', '.join(parts[:-1])} and {parts[-1]}, composed ({m.get('privacy.composition')})"
    ) if isinstance(eps, (int, float)) else "no differential-privacy guarantee (non-private models)"
    out["Privacy"] = (
        f"The released dataset carries {guarantee}. Synthetic records are closest to a training record "
        f"{_fmt(share)} of the time ({_interval(m, 'privacy.dcr.embedding.dcr_share')}0.5 means no closer to "
        f"training than to unseen real data); the "
        f"membership attack reaches AUC {_fmt(auc)} (0.5 = guessing); {_fmt(leaks)} canary field(s) leaked verbatim."
    )
    if m.get("privacy.mia.calibrated.auc") is not None:
        out["Privacy"] += (
            f" Calibrated against the base model, the attack reaches AUC {_fmt(m['privacy.mia.calibrated.auc'])}; "
            f"the base model alone already separates the two splits with AUC {_fmt(m.get('privacy.mia.base_model_auc'))}, "
            "which is the part owed to the splits' difference rather than to training."
        )
    ratio = m.get("utility.ratio.lora.macro_f1")
    tf = m.get("utility.ratio.tfidf.macro_f1")
    if ratio is not None or tf is not None:
        out["Utility"] = (
            f"A rating classifier trained on synthetic data reaches {_fmt(ratio)} of the real-trained "
            f"classifier's macro-F1 on real test data (TF-IDF baseline: {_fmt(tf)}); over the majority-class "
            f"floor it recovers {_fmt(m.get('utility.lift.lora.macro_f1'))} of the real classifier's lift "
            f"(TF-IDF: {_fmt(m.get('utility.lift.tfidf.macro_f1'))}); the two TF-IDF models "
            f"rank features with Spearman ρ = {_fmt(m.get('utility.feature_rank_correlation'))}."
        )
    return out


def png(fig) -> str:
    """A matplotlib figure as a base64 data URI, closed afterwards."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figures(plots: Mapping[str, pd.DataFrame], frontier: pd.DataFrame | None) -> dict[str, str]:
    """The report's figures: distributions, NN similarity, canary exposure, privacy–utility."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    dist = plots.get("distributions")
    if dist is not None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
        for ax, feature in zip(axes, ("rating", "length")):
            part = dist[dist["feature"] == feature]
            x = range(len(part))
            ax.bar([i - 0.2 for i in x], part["real"], width=0.4, label="real (train)")
            ax.bar([i + 0.2 for i in x], part["synthetic"], width=0.4, label="synthetic")
            ax.set_xticks(list(x), part["bucket"], rotation=45 if feature == "length" else 0, ha="right" if feature == "length" else "center", fontsize=7)
            ax.set_title(f"{feature} distribution")
            ax.set_ylabel("share")
        axes[0].legend()
        out["Real vs synthetic distributions"] = png(fig)
    nn = plots.get("nn_similarity")
    if nn is not None:
        fig, ax = plt.subplots(figsize=(6, 3.4))
        ax.plot(nn["similarity"], nn["synthetic_to_train"], label="synthetic → nearest train")
        ax.plot(nn["similarity"], nn["test_to_train"], label="real test → nearest train")
        ax.set_xlabel("cosine similarity to nearest real train text")
        ax.set_ylabel("share")
        ax.legend()
        out["Nearest-neighbour similarity"] = png(fig)
    exp = plots.get("canary_exposure")
    if exp is not None and not exp.empty:
        fig, ax = plt.subplots(figsize=(6, 3.4))
        for r, group in exp.groupby("repeat"):
            ax.scatter([r] * len(group), group["exposure"], label=f"inserted {r}×")
        ax.axhline(exp["max_exposure"].max(), ls="--", c="grey", label="maximum (rank 1)")
        ax.set_xlabel("times inserted in training")
        ax.set_ylabel("exposure (bits)")
        ax.legend(fontsize=7)
        out["Canary exposure"] = png(fig)
    if frontier is not None and not frontier.empty:
        out["Privacy–utility frontier"] = png(frontier_figure(frontier))
    return out


def frontier_figure(points: pd.DataFrame):
    """Utility ratio, lift over the majority floor and membership-inference AUC against epsilon: the DP-SGD runs
    as a line, the zero-shot reference (no private text seen) as its own marker, zero-shot drafts chosen by the DP
    selection as another, the non-private run at the right edge.

    `points` is what `frontier.frontier_points` returns. Where several releases share an
    epsilon (repeated runs of one setting), the line joins their means and each release is
    a small dot beside it, so one release's draw does not read as the frontier's shape.
    Utility is drawn for the LoRA
    classifier (solid) and, where logged, the TF-IDF one (dashed): they disagree often
    enough that one alone misleads.

    The utility panel starts at 0 and marks parity with real data (1.0) and the floor a
    classifier that always predicts the majority class reaches, so that a flat line near
    the floor reads as what it is.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_u, ax_l, ax_p) = plt.subplots(1, 3, figsize=(15, 3.8))
    tuned = points["fine_tuned"].fillna(True).astype(bool) if "fine_tuned" in points else pd.Series(True, points.index)
    private = points[points["epsilon"].notna() & tuned].sort_values("epsilon")
    selected = points["selected"].fillna(False).astype(bool) if "selected" in points else pd.Series(False, points.index)
    zero_shot, zero_shot_selected = points[~tuned & ~selected], points[~tuned & selected]
    public = points[points["epsilon"].isna()]
    edge = float(points["epsilon"].max()) * 1.5 if points["epsilon"].notna().any() else 1.0
    panels = ((ax_u, (("utility_ratio", "LoRA"), ("tfidf_ratio", "TF-IDF")), "utility ratio (synthetic / real macro-F1)"),
              (ax_l, (("lora_lift", "LoRA"), ("tfidf_lift", "TF-IDF")), "lift over the majority floor"),
              (ax_p, (("mia_auc", None), ("mia_calibrated_auc", "calibrated attack")), "membership-inference AUC"))
    for ax, series, label in panels:
        for k, (column, what) in enumerate(series):
            if column not in points or points[column].isna().all():
                continue
            suffix = f", {what}" if what else ""
            style, colour = ("o-", "C0") if k == 0 else ("s--", "C1")
            # several releases at one epsilon: the line joins their means, each release is its own dot
            releases = private[["epsilon", column]].dropna()
            means = releases.groupby(releases["epsilon"].round(3))[column].mean()
            ax.plot(means.index, means.to_numpy(), style, color=colour, label=f"DP-SGD{suffix}")
            if len(releases) > len(means):
                ax.scatter(releases["epsilon"], releases[column], s=12, color=colour, alpha=0.6, zorder=2)
            if k == 0:
                for _, row in private.iterrows():
                    ax.annotate(str(row.get("name", "")), (row["epsilon"], row[column]), fontsize=7)
            if zero_shot[column].notna().any():
                ax.scatter(zero_shot["epsilon"], zero_shot[column], marker="D", s=60, color="green" if k == 0 else "lime",
                           edgecolors="black", zorder=3, label=f"zero-shot{suffix}")
            if zero_shot_selected[column].notna().any():
                ax.scatter(zero_shot_selected["epsilon"], zero_shot_selected[column], marker="P", s=80,
                           color="purple" if k == 0 else "violet", edgecolors="black", zorder=3,
                           label=f"zero-shot + DP selection{suffix}")
            if public[column].notna().any():
                ax.scatter([edge] * len(public), public[column], marker="*", s=140, color="red" if k == 0 else "orange",
                           zorder=3, label=f"non-private{suffix}")
        ax.set_xlabel("ε of the release (zero-shot: the tabular model's; star: no DP)")
        ax.set_ylabel(label)
    ax_u.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="real data (parity)")
    floor = points["floor_ratio"].dropna()
    if not floor.empty:
        ax_u.axhline(float(floor.median()), color="grey", linestyle=":", linewidth=1, label="majority class")
    ratios = pd.concat([points["utility_ratio"], points.get("tfidf_ratio", pd.Series(dtype=float))]).dropna()
    ax_u.set_ylim(0, max(1.05, float(ratios.max()) + 0.05 if not ratios.empty else 1.05))
    ax_l.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="real data")
    ax_l.axhline(0.0, color="grey", linestyle=":", linewidth=1, label="majority class")
    ax_p.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    aucs = pd.concat([points["mia_auc"], points["mia_calibrated_auc"]]).dropna()
    ax_p.set_ylim(min(0.4, float(aucs.min()) - 0.05) if not aucs.empty else 0.4, 1.0)
    for ax in (ax_u, ax_l, ax_p):
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def ledger_section(ledger: Mapping[str, Any] | None) -> str:
    """The privacy ledger as a table: every component that reads private records and its guarantee."""
    if not ledger:
        return "<p>No privacy ledger (metrics/privacy_ledger.json) was found for this run.</p>"
    rows = "".join(
        f"<tr class='{'ok' if c['guarantee'] != 'no formal guarantee' else 'bad'}'><td>{html.escape(name)}</td>"
        f"<td>{html.escape(c['reads'])}</td><td>{html.escape(c['releases'])}</td><td>{html.escape(c['mechanism'])}</td>"
        f"<td>{html.escape(c['guarantee'])}</td><td>{_fmt(c.get('epsilon'))}</td><td>{_fmt(c.get('delta'))}</td>"
        f"<td>{_fmt(c.get('unit'))}</td><td>{html.escape(c['reason'])}</td></tr>"
        for name, c in ledger["components"].items()
    )
    return (
        f"<p>The released dataset: ε = {_fmt(ledger.get('epsilon_total'))}, δ = {_fmt(ledger.get('delta_total'))} "
        f"per {_fmt(ledger.get('unit'))} ({_fmt(ledger.get('composition'))} composition). Only the rows marked "
        "with a guarantee are covered by it; the others are statistics for the operator.</p>"
        "<table><tr><th>component</th><th>reads</th><th>releases</th><th>mechanism</th><th>guarantee</th>"
        f"<th>ε</th><th>δ</th><th>unit</th><th>why</th></tr>{rows}</table>"
    )


def render(metrics: Mapping[str, Any], gate: GateResult, plots: Mapping[str, pd.DataFrame],
           champion: Mapping[str, str | None], frontier: pd.DataFrame | None = None,
           ledger: Mapping[str, Any] | None = None) -> str:
    """The whole report page."""
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{_fmt(metrics.get(key))}</td>"
        f"<td>{_fmt(metrics.get(base)) if base else '–'}</td><td>{html.escape(better)}</td></tr>"
        for label, key, base, better in SUMMARY_ROWS if key in metrics
    )
    gate_rows = "".join(
        f"<tr class='{'ok' if ok else 'bad'}'><td>{html.escape(name)}</td><td>{'pass' if ok else 'FAIL'}</td>"
        f"<td>{_fmt(value)}</td><td>{html.escape(limit)}</td></tr>"
        for name, (ok, value, limit) in gate.checks.items()
    )
    status = "PASSED: champion moved to this run's models" if gate.passed else \
        f"FAILED ({', '.join(gate.failed)}): champion left where it was"
    kinds = {"utility": "utility"}
    failed_kinds = sorted({kinds.get(name, "privacy") for name in gate.failed})
    which = f"<p>Failed: the {' and the '.join(failed_kinds)} check{'s' if len(gate.failed) > 1 else ''} " \
        f"({', '.join(gate.failed)}).</p>" if gate.failed else ""
    champ = ", ".join(f"{html.escape(k)} → " + (f"version {html.escape(str(v))}" if v is not None else
                                                 "none yet (no run has passed the gate)")
                      for k, v in champion.items()) or "–"
    verdict = "".join(f"<p><b>{html.escape(k)}.</b> {html.escape(v)}</p>" for k, v in verdicts(metrics).items())
    figs = "".join(f"<h3>{html.escape(t)}</h3><img alt='{html.escape(t)}' src='{uri}'>"
                   for t, uri in figures(plots, frontier).items())
    everything = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in sorted(metrics.items()))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>synthguard evaluation report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}
tr.ok td{{background:#e8f5e9}}tr.bad td{{background:#ffebee}}img{{max-width:100%}}</style></head><body>
<h1>synthguard evaluation report</h1>
<h2>Verdict</h2>{verdict}
<h2>Privacy gate: {html.escape(status)}</h2>{which}
<table><tr><th>check</th><th>result</th><th>observed</th><th>required</th></tr>{gate_rows}</table>
<p>champion after this run: {champ}</p>
<h2>Privacy ledger</h2>{ledger_section(ledger)}
<h2>Summary against real baselines</h2>
<table><tr><th>measure</th><th>synthetic</th><th>real baseline</th><th>better</th></tr>{rows}</table>
<h2>Figures</h2>{figs}
<h2>All metrics</h2><details><summary>show</summary><table>{everything}</table></details>
</body></html>
"""
