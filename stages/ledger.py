"""The privacy ledger: every component that reads private records, what it releases and under what guarantee.

`LEDGER` is the registry. Each entry claims the outputs it produces: DVC output paths and
metrics keys (fnmatch patterns over the flattened keys of a stage's metrics file). The
tests check that every output of dvc.yaml and every key of every metrics file is
claimed, so a component added later without an entry fails them
(`unclaimed_outputs`, `unclaimed_metrics`).

`build_ledger` turns the registry and synthesize's metrics into
metrics/privacy_ledger.json: the DP entries carry the accountants' epsilon/delta and
unit, the others "no formal guarantee" and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

DP = "differential privacy"
POST = "post-processing of DP outputs"
NONE = "no formal guarantee"
NOT_PRIVATE = "reads no private records"


@dataclass(frozen=True)
class LedgerEntry:
    """One component: what private data it reads, what leaves it, and the guarantee that covers that."""

    component: str
    stage: str
    reads: str
    releases: str
    mechanism: str
    guarantee: Literal["differential privacy", "post-processing of DP outputs", "no formal guarantee",
                       "reads no private records"]
    reason: str  # why this guarantee (for NONE: why there is none; for DP: what the budget covers)
    outputs: tuple[str, ...] = ()  # DVC output paths it writes
    metrics: tuple[str, ...] = ()  # "<metrics file>:<key pattern>" it writes
    epsilon_key: str | None = None  # synthesize metrics key holding its epsilon (DP entries)
    delta_key: str | None = None


SYN, EV, TR = "metrics/synthesize.json", "metrics/evaluate.json", "metrics/train.json"

LEDGER: tuple[LedgerEntry, ...] = (
    LedgerEntry(
        "extract.fingerprint", "fingerprint", "the raw source files (bytes)", "a SHA-256 content hash per local source",
        "hash", NONE, "a hash identifies the exact file and reveals nothing else unless the file is guessed; "
        "it stays with the pipeline", outputs=("data/sources.json",)),
    LedgerEntry(
        "extract.records", "extract", "the raw reviews and product metadata",
        "the cleaned, split records (kept inside the pipeline) and exact counts: rows read/kept/rejected, "
        "ratings and rating shares, per-split sizes", "none (exact counts)", NONE,
        "internal statistics for the operator, not part of the released dataset",
        outputs=("data/extracted",), metrics=("metrics/extract.json:*",)),
    LedgerEntry(
        "anonymize.records", "anonymize", "the extracted records, every split",
        "pseudonymised, PII-replaced records (kept inside the pipeline) and exact detection counts and "
        "PII-benchmark scores on real sentences", "Presidio/spaCy detection and replacement", NONE,
        "de-identification is not a formal guarantee: undetected PII and the remaining text stay linkable; "
        "the counts are exact", outputs=("data/anonymized",), metrics=("metrics/anonymize.json:*",)),
    LedgerEntry(
        "synthesize.tabular", "synthesize", "the anonymized train split's structured columns, "
        "at most dp.max_reviews_per_user rows per user",
        "the structured columns of every synthetic record (rating, votes, verified, timestamp, category, images, "
        "price, title/text lengths) and models/tabular", "OpenDP Gaussian mechanism on 2-way marginals (zCDP)", DP,
        "the noisy marginals are the only thing the model keeps; the ratings and lengths the texts are generated "
        "for are drawn from it, so they are covered too",
        outputs=("models/tabular",),
        metrics=(f"{SYN}:epsilon_tabular", f"{SYN}:delta_tabular", f"{SYN}:rho_tabular", f"{SYN}:tabular_*"),
        epsilon_key="epsilon_tabular", delta_key="delta_tabular"),
    LedgerEntry(
        "synthesize.text_generator", "synthesize", "the anonymized train split's titles and texts (bounded per user, "
        "capped at max_train_rows) and the planted canaries",
        "the LoRA adapter (models/generator, registry `review-generator`) and every synthetic title and text",
        "Opacus DP-SGD (Poisson-subsampled Gaussian), RDP/PRV accountant", DP,
        "the accountant's epsilon covers every step, including the empty-batch ones; n_units (the number of "
        "users) enters the sampling rate and is treated as public, as DP-SGD accounting does",
        outputs=("models/generator",),
        metrics=(f"{SYN}:epsilon", f"{SYN}:epsilon_text", f"{SYN}:delta", f"{SYN}:target_epsilon", f"{SYN}:dp_enabled",
                 f"{SYN}:noise_multiplier", f"{SYN}:sample_rate", f"{SYN}:steps", f"{SYN}:max_grad_norm",
                 f"{SYN}:accountant", f"{SYN}:privacy_unit", f"{SYN}:max_reviews_per_user", f"{SYN}:n_units",
                 f"{SYN}:fine_tuned"),
        epsilon_key="epsilon_text", delta_key="delta"),
    LedgerEntry(
        "synthesize.selection", "synthesize", "the training rows the generator saw (bounded per user, with the "
        "canaries): their titles, texts and ratings, through a public sentence encoder",
        "which drafts become the released records (the best-scored of each rating) and, below prompt_trust 1, "
        "the rating a draft the judge reads as another one is released under",
        "OpenDP Gaussian mechanism on the DP rating judge's per-rating statistics (method judge) or on a "
        "nearest-draft vote histogram (method votes), each unit's share clipped to L2 norm 1 (zCDP)",
        DP, "only the noisy statistics decide what is kept; the drafts, the principal axes and the encoder are "
        "DP outputs or public",
        metrics=(f"{SYN}:epsilon_selection", f"{SYN}:delta_selection", f"{SYN}:rho_selection", f"{SYN}:selection_*"),
        epsilon_key="epsilon_selection", delta_key="delta_selection"),
    LedgerEntry(
        "synthesize.release_budget", "synthesize", "nothing beyond the DP models",
        "epsilon_total/delta_total of the released dataset", "composition (basic, or RDP where both are Gaussian)",
        DP, "the composition of synthesize.tabular, synthesize.text_generator and (when enabled) "
        "synthesize.selection over the same privacy unit",
        outputs=("metrics/privacy_ledger.json",),
        metrics=(f"{SYN}:epsilon_total", f"{SYN}:epsilon_total_*", f"{SYN}:delta_total", f"{SYN}:composition"),
        epsilon_key="epsilon_total", delta_key="delta_total"),
    LedgerEntry(
        "synthesize.training_statistics", "synthesize", "the training rows and the real val split",
        "training-loss curve and plot, val loss and perplexity, row counts of each preparation step",
        "none (exact statistics)", NONE, "computed on private rows without noise, for the operator; they leave "
        "with the metrics and the MLflow run, not with the dataset",
        outputs=("metrics/plots/synthesize",),
        metrics=(f"{SYN}:train_*", f"{SYN}:val_*", f"{SYN}:rows_dropped_*", f"{SYN}:seconds.*")),
    LedgerEntry(
        "synthesize.memorisation_filter", "synthesize", "every private train text (and the canaries)",
        "which synthetic texts are kept: a text is dropped when it copies or shares too many n-grams with a "
        "private text; the drop counts and so the number of records written",
        "exact-match and n-gram overlap test", NONE,
        "the drop decision depends on private texts, so the kept set is not a DP output; it can only remove "
        "records, and a dropped text was already a near-copy",
        outputs=("data/synthetic",),
        metrics=(f"{SYN}:dropped_exact_match", f"{SYN}:dropped_ngram_overlap", f"{SYN}:records_written",
                 f"{SYN}:records_target", f"{SYN}:records_surplus_discarded")),
    LedgerEntry(
        "synthesize.pii_filter", "synthesize", "synthetic texts only (the analyzer holds no private data)",
        "which synthetic texts are kept, the PII drop counts", "Presidio analysis of generated text", POST,
        "a function of the DP generator's output alone: no privacy cost",
        metrics=(f"{SYN}:dropped_pii", f"{SYN}:pii_entities_found.*")),
    LedgerEntry(
        "synthesize.assistant_talk_filter", "synthesize", "synthetic texts only (fixed patterns, stages/textchecks.py)",
        "which synthetic texts are kept, the count of texts that answered the prompt instead of being a review",
        "regular-expression test of generated text", POST,
        "a function of the DP generator's output alone: no privacy cost",
        metrics=(f"{SYN}:dropped_assistant_talk",)),
    LedgerEntry(
        "synthesize.seller_talk_filter", "synthesize", "synthetic texts only (fixed patterns, stages/textchecks.py)",
        "which synthetic texts are kept, the count of texts written as the shop instead of a buyer",
        "regular-expression test of generated text", POST,
        "a function of the DP generator's output alone: no privacy cost",
        metrics=(f"{SYN}:dropped_seller_talk",)),
    LedgerEntry(
        "synthesize.prompt_echo_filter", "synthesize", "synthetic texts only (fixed patterns, stages/textchecks.py)",
        "which synthetic texts are kept, the count of texts that carry the request's wording (\"a 5-star product\")",
        "regular-expression test of generated text", POST,
        "a function of the DP generator's output alone: no privacy cost",
        metrics=(f"{SYN}:dropped_prompt_echo",)),
    LedgerEntry(
        "synthesize.voice_judge", "synthesize", "synthetic texts only (the judge is a public sentence encoder with "
        "fixed anchor sentences, stages/synthesize/voice.py)",
        "which synthetic texts are kept, the count of texts read as the shop or another kind of text, not a buyer",
        "sentence-embedding similarity to public anchors", POST,
        "a function of the DP generator's output alone: no privacy cost",
        metrics=(f"{SYN}:dropped_judged_not_review",)),
    LedgerEntry(
        "synthesize.consistency_filter", "synthesize", "synthetic texts and their DP-sampled ratings only (the judge "
        "is a public sentence encoder with fixed anchor sentences)",
        "which synthetic records are kept, the count of records whose text read the opposite of their rating",
        "sentence-embedding similarity to public anchors", POST,
        "a function of the DP models' output alone: no privacy cost",
        metrics=(f"{SYN}:dropped_inconsistent",)),
    LedgerEntry(
        "synthesize.generation", "synthesize", "the two DP models only",
        "parse failures, token counts and throughput of generation", "sampling from the DP models", POST,
        "a function of the DP models and the seed",
        metrics=(f"{SYN}:generated_*", f"{SYN}:generation_*", f"{SYN}:parse_failures", f"{SYN}:dropped_parse")),
    LedgerEntry(
        "synthesize.canaries", "synthesize", "nothing private: the canaries are invented records",
        "the canaries (models/generator/canaries.json) and how many were planted", "audit secrets", NOT_PRIVATE,
        "invented secrets planted to audit the generator; they are released so that anyone can re-run the audit",
        metrics=(f"{SYN}:canaries", f"{SYN}:canary_rows")),
    LedgerEntry(
        "train.real_classifier", "train", "the anonymized train and test splits",
        "the real-trained classifier (registry `review-rating-classifier`, source real) and its test scores",
        "none (ordinary fine-tuning)", NONE, "the utility baseline: trained on private data without DP, so it must "
        "not leave the organisation", outputs=("models/classifier",),
        metrics=(f"{TR}:real.*", f"{TR}:ratio.*", f"{TR}:lift.*", f"{TR}:train_rows_equal", f"{TR}:generator_epsilon",
                 f"{TR}:seconds.*")),
    LedgerEntry(
        "train.synthetic_classifier", "train", "the synthetic records; the real test split for scoring",
        "the synthetic-trained classifier (post-processing of the release) and its scores on the real test split",
        "none for the scores (exact statistics of real test rows)", NONE,
        "the model itself is post-processing of the DP release, but its scores are measured on private test rows",
        outputs=("metrics/plots/train/confusion", "metrics/plots/train/confusion.png"),
        metrics=(f"{TR}:synthetic.*", f"{TR}:test.*")),
    LedgerEntry(
        "evaluate.fidelity", "evaluate", "real train and test splits", "fidelity scores (SDMetrics, MAUVE, "
        "embedding distances, text quality) and the real-vs-synthetic rating and length distributions",
        "none (exact statistics)", NONE, "audit statistics for the operator, computed on private rows",
        outputs=("metrics/plots/evaluate/rating_distribution.csv", "metrics/plots/evaluate/length_distribution.csv",
                 "metrics/plots/evaluate/nn_similarity.csv"),
        metrics=(f"{EV}:fidelity.*", f"{EV}:rows.*", f"{EV}:seconds.*")),
    LedgerEntry(
        "evaluate.privacy_attacks", "evaluate", "real train, test and raw extracted texts; the generator",
        "DCR and its bootstrap interval, membership-inference AUCs, Anonymeter risks, residual-PII counts",
        "empirical attacks", NONE, "attacks measure leakage empirically; their results are exact statistics "
        "of private rows", metrics=(f"{EV}:privacy.dcr.*", f"{EV}:privacy.mia.*", f"{EV}:privacy.anonymeter.*",
                                    f"{EV}:privacy.pii.*")),
    LedgerEntry(
        "evaluate.canary_audit", "evaluate", "the generator and the invented canaries",
        "verbatim/partial canary leaks and exposure", "exposure ranking", NOT_PRIVATE,
        "canaries are invented; the audit reads no private record",
        outputs=("metrics/plots/evaluate/canary_exposure.csv",), metrics=(f"{EV}:privacy.canary.*",)),
    LedgerEntry(
        "evaluate.privacy_budget", "evaluate", "synthesize's metrics", "the release's epsilon/delta as evaluate sees it",
        "copy of the accountants' figures", DP, "the same figures as synthesize.release_budget",
        metrics=(f"{EV}:privacy.epsilon*", f"{EV}:privacy.delta*", f"{EV}:privacy.unit", f"{EV}:privacy.dp_enabled",
                 f"{EV}:privacy.fine_tuned", f"{EV}:privacy.composition"), epsilon_key="epsilon_total", delta_key="delta_total"),
    LedgerEntry(
        "evaluate.utility", "evaluate", "real train split and train's scores", "utility scores and ratios, "
        "TF-IDF feature-importance consistency", "none (exact statistics)", NONE,
        "computed on private rows", outputs=("metrics/plots/evaluate/privacy_utility.json",),
        metrics=(f"{EV}:utility.*",)),
    LedgerEntry(
        "evaluate.gate_and_report", "evaluate", "the metrics above", "the gate's verdict, the registry alias "
        "`champion`, metrics/report.html", "thresholds on the metrics above", NONE,
        "its verdict is a function of non-private statistics, so it inherits their lack of a guarantee",
        outputs=("metrics/report.html",), metrics=(f"{EV}:gate.*",)),
    LedgerEntry(
        "headline", "headline", "the stages' metrics files only", "a copy of the decision figures above "
        "(metrics/headline.json, first in `dvc exp show`)", "copy", NONE,
        "each figure keeps the guarantee of the entry that produced it: the epsilons are the accountants', "
        "the scores and counts are exact statistics", outputs=("metrics/headline.json",)),
)


def flatten(metrics: Mapping, prefix: str = "") -> list[str]:
    """Dotted keys of a nested metrics mapping."""
    keys = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        keys.extend(flatten(value, name + ".") if isinstance(value, Mapping) else [name])
    return keys


def unclaimed_metrics(path: str, metrics: Mapping, ledger: Iterable[LedgerEntry] = LEDGER) -> list[str]:
    """Keys of the metrics file at `path` (e.g. "metrics/evaluate.json") that no ledger entry claims."""
    patterns = [p.split(":", 1)[1] for e in ledger for p in e.metrics if p.split(":", 1)[0] == path]
    return [k for k in flatten(metrics) if not any(fnmatchcase(k, p) for p in patterns)]


def unclaimed_outputs(dvc_stages: Mapping, ledger: Iterable[LedgerEntry] = LEDGER) -> list[str]:
    """Every outs/metrics/plots path of dvc.yaml's stages that no ledger entry claims."""
    claimed = {o for e in ledger for o in e.outputs} | {p.split(":", 1)[0] for e in ledger for p in e.metrics}
    missing = []
    for stage in dvc_stages.values():
        for group in ("outs", "metrics", "plots"):
            for item in stage.get(group, []):
                path = next(iter(item)) if isinstance(item, Mapping) else item
                if path not in claimed:
                    missing.append(path)
    return missing


def build_ledger(synthesize_metrics: Mapping) -> dict:
    """metrics/privacy_ledger.json: the release's budget, then one record per component."""
    m = synthesize_metrics
    components = {}
    for entry in LEDGER:
        record = {"stage": entry.stage, "reads": entry.reads, "releases": entry.releases,
                  "mechanism": entry.mechanism, "guarantee": entry.guarantee, "reason": entry.reason}
        if entry.epsilon_key == "epsilon_selection" and not m.get("selection_enabled"):
            record.update(guarantee=NOT_PRIVATE, epsilon=None, delta=None,
                          reason="synthesize.selection.enabled is false: the drafts are written as generated")
        elif entry.guarantee == DP and entry.epsilon_key == "epsilon_text" and m.get("fine_tuned") is False:
            record.update(guarantee=NOT_PRIVATE, epsilon=0.0, delta=None, unit=m.get("privacy_unit"),
                          reason="generator.epochs is 0: the zero-shot base model was not trained on any record")
        elif entry.guarantee == DP and entry.epsilon_key:
            if m.get("epsilon_total") is not None:
                record.update(epsilon=m.get(entry.epsilon_key), delta=m.get(entry.delta_key),
                              unit=m.get("privacy_unit"))
            else:
                record.update(guarantee=NONE, epsilon=None, delta=None,
                              reason="synthesize.dp.enabled is false: the non-private baseline")
        components[entry.component] = record
    return {
        "epsilon_total": m.get("epsilon_total"), "delta_total": m.get("delta_total"),
        "composition": m.get("composition"), "unit": m.get("privacy_unit"),
        "max_reviews_per_user": m.get("max_reviews_per_user"), "components": components,
    }
