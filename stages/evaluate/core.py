"""run_evaluate: fidelity, privacy and utility of one run's synthetic data, and the privacy gate's verdict.

Inputs come in as data and callables (`EvaluateInputs`), so that every piece can run on
small constructed cases; the CLI loads the pipeline's files and models into it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stages.errors import PipelineInputError, SchemaError
from stages.evaluate import attacks, privacy, structured, text, utility
from stages.evaluate.gate import GateResult, check_gate
from stages.evaluate.params import EvaluateParams

NN_BINS = np.linspace(-0.2, 1.0, 25)


@dataclass
class EvaluateInputs:
    """Everything evaluate looks at. Optional parts (None) are skipped and reported as skipped."""

    train: pd.DataFrame  # the anonymized real train split (what the generator learnt from)
    test: pd.DataFrame  # the anonymized real test split (never seen by any model)
    synthetic: pd.DataFrame  # the synthetic records
    raw_texts: Sequence[str]  # raw extracted texts and titles (only used for membership lookups)
    synthesize_metrics: Mapping[str, Any]
    train_metrics: Mapping[str, Any]
    embed: Callable[[Sequence[str], str], np.ndarray]  # (texts, description) -> unit-length embeddings
    analyze: attacks.BatchAnalyzer | None  # the anonymizer's analyzer (batch)
    canaries: list[dict] = field(default_factory=list)
    mia_members: pd.DataFrame | None = None  # real rows the generator trained on
    # per record: the generator's loss, and the base model's (no adapter; None where there is no base to calibrate by)
    record_losses: Callable[[pd.DataFrame, str], tuple[np.ndarray, np.ndarray | None]] | None = None
    secret_losses: Callable[[Mapping, list[str]], np.ndarray] | None = None  # canary, secrets -> losses
    classify: Callable[[pd.DataFrame], np.ndarray] | None = None  # real-trained classifier -> ratings
    tfidf: Callable[[Sequence[str], np.ndarray], Any] | None = None  # fit a TF-IDF baseline


@dataclass
class EvaluateResult:
    """Flat metrics, the gate's outcome, and the data behind the plots."""

    metrics: dict[str, Any]
    gate: GateResult
    plots: dict[str, pd.DataFrame]


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame.sample(n=n, random_state=seed).reset_index(drop=True) if len(frame) > n else frame.reset_index(drop=True)


def _users(frame: pd.DataFrame) -> np.ndarray:
    """The privacy unit of each real row (its pseudonymised user id; a missing one is its own unit)."""
    users = frame["user_id"].astype("object") if "user_id" in frame.columns else pd.Series([None] * len(frame))
    return np.asarray([u if isinstance(u, str) and u else f"<row {i}>" for i, u in enumerate(users)], dtype=object)


def _texts(frame: pd.DataFrame) -> list[str]:
    return frame["text"].fillna("").astype(str).tolist()


def check_inputs(inputs: EvaluateInputs) -> None:
    """Every table has the columns evaluate reads, and none is empty."""
    for name in ("train", "test", "synthetic"):
        frame = getattr(inputs, name)
        missing = [c for c in ("text", "rating") if c not in frame.columns]
        if missing:
            raise SchemaError(f"{name}: missing column(s) {missing}; it must follow stages/schema.py.")
        if frame.empty:
            raise PipelineInputError(f"{name}: no rows; evaluate needs real train/test rows and synthetic records.")


def run_evaluate(inputs: EvaluateInputs, params: EvaluateParams, *, seed: int) -> EvaluateResult:
    """Measure fidelity, privacy and utility; apply the gate (moving no alias: the CLI does that)."""
    check_inputs(inputs)
    p, s = params, params.samples
    metrics: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    plots: dict[str, pd.DataFrame] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        seconds[f"seconds.{name}"] = round(now - clock[0], 2)
        clock[0] = now

    started = clock[0]
    syn = _sample(inputs.synthetic, s.text_records, seed)
    train = _sample(inputs.train, s.text_records, seed)
    test = _sample(inputs.test, s.text_records, seed)
    e_syn, e_train, e_test = (inputs.embed(_texts(f), name) for f, name in
                              ((syn, "synthetic"), (train, "real train"), (test, "real test")))
    lap("embed")

    # ------------------------------------------------ fidelity: text
    f = "fidelity.text."
    metrics[f + "frechet"] = text.frechet_distance(e_syn, e_train)
    metrics[f + "frechet_baseline"] = text.frechet_distance(e_test, e_train)
    mv = dict(clusters=p.fidelity.mauve_clusters, scaling=p.fidelity.mauve_scaling, seed=seed)
    metrics[f + "mauve"] = text.mauve(e_train, e_syn, **mv)
    metrics[f + "mauve_baseline"] = text.mauve(e_train, e_test, **mv)
    nn_syn, nn_test = text.nn_cosine(e_syn, e_train), text.nn_cosine(e_test, e_train)
    metrics[f + "nn_cosine_mean"] = float(nn_syn.mean())
    metrics[f + "nn_cosine_baseline"] = float(nn_test.mean())
    metrics[f + "word_js"] = text.word_js_divergence(_texts(syn), _texts(train))
    metrics[f + "word_js_baseline"] = text.word_js_divergence(_texts(test), _texts(train))
    for key, value in text.length_distance(_texts(syn), _texts(train)).items():
        metrics[f + f"length.{key}"] = value
    metrics[f + "length.ks_baseline"] = text.length_distance(_texts(test), _texts(train))["ks"]
    plots["nn_similarity"] = pd.DataFrame({
        "similarity": np.round((NN_BINS[:-1] + NN_BINS[1:]) / 2, 3),
        "synthetic_to_train": np.histogram(nn_syn, NN_BINS)[0] / max(len(nn_syn), 1),
        "test_to_train": np.histogram(nn_test, NN_BINS)[0] / max(len(nn_test), 1),
    })
    plots["distributions"] = _distributions(syn, train)
    lap("fidelity_text")

    if inputs.classify is not None:
        predicted = inputs.classify(syn)
        for key, value in text.label_fidelity(syn["rating"].to_numpy(int), predicted).items():
            metrics[f"fidelity.label.{key}"] = value
        metrics["fidelity.label.real_test_accuracy"] = inputs.train_metrics.get("real.lora.accuracy")
    lap("label_fidelity")

    vocabulary = text.build_vocabulary(_texts(inputs.train))
    q_syn = _sample(inputs.synthetic, s.quality_records, seed)
    q_real = _sample(inputs.test, len(q_syn), seed)
    for who, frame in (("synthetic", q_syn), ("real", q_real)):
        for key, value in text.quality_report(_texts(frame), vocabulary).items():
            metrics[f"fidelity.quality.{who}.{key}"] = value
    lap("quality")

    # ------------------------------------------------ fidelity: structured
    st_syn = structured.structured_view(_sample(inputs.synthetic, s.structured_records, seed))
    sr_train, sr_test = _sample(inputs.train, s.structured_records, seed), _sample(inputs.test, s.structured_records, seed)
    st_train, st_test = structured.structured_view(sr_train), structured.structured_view(sr_test)
    for key, value in structured.sdmetrics_reports(
        st_train, st_syn, correlation_threshold=p.fidelity.real_correlation_threshold,
        association_threshold=p.fidelity.real_association_threshold,
    ).items():
        metrics[f"fidelity.structured.{key}"] = value
    lap("fidelity_structured")

    # ------------------------------------------------ privacy
    dcr = dict(seed=seed, confidence=p.gate.dcr_confidence, rows_per_unit=p.privacy.dcr_rows_per_user,
               draws=p.privacy.dcr_draws)
    for key, value in privacy.dcr_metrics(e_syn, e_train, e_test, metric="cosine", train_units=_users(train),
                                          holdout_units=_users(test), **dcr).items():
        metrics[f"privacy.dcr.embedding.{key}"] = value
    cols = structured.informative_columns(st_train)
    num = [c for c in structured.NUMERIC if c in cols]
    cat = [c for c in structured.CATEGORICAL if c in cols]
    enc_syn, enc_train, enc_test = privacy.encode_structured(
        [_numeric_time(st_syn), _numeric_time(st_train), _numeric_time(st_test)], numeric=num, categorical=cat)
    for key, value in privacy.dcr_metrics(enc_syn, enc_train, enc_test, metric="manhattan", train_units=_users(sr_train),
                                          holdout_units=_users(sr_test), **dcr).items():
        metrics[f"privacy.dcr.structured.{key}"] = value
    lap("dcr")

    if inputs.record_losses is not None and inputs.mia_members is not None:
        n = min(s.mia_records, len(inputs.mia_members), len(inputs.test))
        members = _sample(inputs.mia_members, n, seed)
        nonmembers = _sample(inputs.test, n, seed + 1)
        member_losses, member_base = inputs.record_losses(members, "mia members")
        nonmember_losses, nonmember_base = inputs.record_losses(nonmembers, "mia non-members")
        result = privacy.membership_inference(member_losses, nonmember_losses)
        if member_base is not None and nonmember_base is not None:
            result.update(privacy.calibrated_membership_inference(member_losses, nonmember_losses, member_base,
                                                                  nonmember_base))
        metrics.update({f"privacy.mia.{k}": v for k, v in result.items()})
    lap("mia")

    plots["canary_exposure"] = pd.DataFrame(columns=["canary_id", "repeat", "exposure", "rank", "max_exposure"])
    if inputs.canaries:
        leaks = privacy.canary_leaks(inputs.canaries, _all_text(inputs.synthetic),
                                     partial_fraction=p.privacy.partial_leak_fraction)
        metrics.update({f"privacy.canary.{k}": v for k, v in leaks.items()})
        if inputs.secret_losses is not None:
            table = privacy.canary_exposures(inputs.canaries, inputs.secret_losses,
                                             references=p.privacy.exposure_references, seed=seed)
            metrics.update({f"privacy.canary.{k}": v for k, v in privacy.summarise_exposures(table).items()})
            plots["canary_exposure"] = table
    else:
        metrics["privacy.canary.canaries"] = 0
    lap("canaries")

    a_cols = cols
    risks = attacks.anonymeter_risks(
        _sample(st_train[a_cols], s.anonymeter_records, seed), st_syn[a_cols],
        _sample(st_test[a_cols], s.anonymeter_records, seed), n_attacks=s.anonymeter_attacks, seed=seed,
    )
    metrics.update({f"privacy.anonymeter.{k}": v for k, v in risks.items()})
    lap("anonymeter")

    if inputs.analyze is not None:
        scan = _all_text(_sample(inputs.synthetic, s.pii_records, seed))
        pii = attacks.residual_pii(scan, inputs.analyze, entities=p.privacy.pii_entities,
                                   threshold=p.privacy.pii_score_threshold, raw_texts=inputs.raw_texts)
        metrics.update({f"privacy.pii.{k}": v for k, v in pii.items()})
    lap("residual_pii")

    sm = inputs.synthesize_metrics
    metrics["privacy.dp_enabled"] = bool(sm.get("dp_enabled", False))
    metrics["privacy.fine_tuned"] = bool(sm.get("fine_tuned", True))
    # The released dataset's budget: the text generator's composed with the tabular model's
    # (null when the release is not private; the zero-shot text model adds nothing).
    dp_on = sm.get("epsilon_total") is not None
    metrics["privacy.epsilon"] = sm.get("epsilon_total") if dp_on else None
    metrics["privacy.delta"] = sm.get("delta_total") if dp_on else None
    metrics["privacy.epsilon_text"] = sm.get("epsilon_text") if dp_on else None
    metrics["privacy.epsilon_tabular"] = sm.get("epsilon_tabular") if dp_on else None
    metrics["privacy.epsilon_selection"] = sm.get("epsilon_selection") if dp_on else None  # null: selection off
    metrics["privacy.composition"] = sm.get("composition")
    metrics["privacy.unit"] = sm.get("privacy_unit")

    # ------------------------------------------------ utility
    metrics.update({f"utility.{k}": v for k, v in utility.train_scores(inputs.train_metrics).items()})
    if inputs.tfidf is not None:
        real_model = inputs.tfidf(_texts(inputs.train), inputs.train["rating"].to_numpy(int))
        syn_model = inputs.tfidf(_texts(inputs.synthetic), inputs.synthetic["rating"].to_numpy(int))
        metrics.update({f"utility.{k}": v for k, v in utility.importance_consistency(
            utility.feature_importance(real_model), utility.feature_importance(syn_model), k=p.utility.top_k_features
        ).items()})
    lap("utility")

    gate = check_gate(metrics, p.gate)
    metrics.update(gate.metrics())
    seconds["seconds.total"] = round(time.perf_counter() - started, 2)
    metrics.update(seconds)
    metrics["rows.synthetic"] = len(inputs.synthetic)
    metrics["rows.train"] = len(inputs.train)
    metrics["rows.test"] = len(inputs.test)
    plots["privacy_utility"] = pd.DataFrame([privacy_utility_point(metrics)])
    # NaN is not JSON (DVC and `json` readers refuse it): an undefined score is null.
    metrics = {k: (None if isinstance(v, float) and v != v else v) for k, v in metrics.items()}
    return EvaluateResult(metrics=metrics, gate=gate, plots=plots)


def privacy_utility_point(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The run's point on the privacy–utility plane (epsilon: null for a non-private run)."""
    ratio = metrics.get("utility.ratio.lora.macro_f1")
    if ratio is None:
        ratio = metrics.get("utility.ratio.tfidf.macro_f1")
    return {
        "epsilon": metrics.get("privacy.epsilon"),
        "utility_ratio": ratio,
        "mia_auc": metrics.get("privacy.mia.auc"),
        "dcr_share": metrics.get("privacy.dcr.embedding.dcr_share"),
    }


def _all_text(frame: pd.DataFrame) -> list[str]:
    """Title and body of each record, joined, so a leak in either is seen."""
    title = frame["title"].fillna("").astype(str) if "title" in frame.columns else ""
    return (title + "\n" + frame["text"].fillna("").astype(str)).tolist()


def _numeric_time(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    if "timestamp" in out.columns:
        out["timestamp"] = attacks.numeric_view(frame[["timestamp"]])["timestamp"].to_numpy()
    return out


def _distributions(syn: pd.DataFrame, real: pd.DataFrame) -> pd.DataFrame:
    """Rating shares and word-count decile shares, real vs synthetic, in one long table for DVC plots."""
    rows = []
    for rating in range(1, 6):
        rows.append({"feature": "rating", "bucket": str(rating), "x": float(rating),
                     "real": float((real["rating"] == rating).mean()), "synthetic": float((syn["rating"] == rating).mean())})
    lr = real["text"].fillna("").str.split().str.len()
    ls = syn["text"].fillna("").str.split().str.len()
    edges = np.unique(np.round(np.quantile(lr, np.linspace(0, 1, 11))))
    edges[0], edges[-1] = -np.inf, np.inf
    for lo, hi in zip(edges[:-1], edges[1:]):
        label = f"words <= {hi:g}" if np.isfinite(hi) else f"words > {lo:g}"
        upper = hi if np.isfinite(hi) else float(max(lr.max(), ls.max() if len(ls) else 0))
        rows.append({"feature": "length", "bucket": label, "x": float(upper), "real": float(((lr > lo) & (lr <= hi)).mean()),
                     "synthetic": float(((ls > lo) & (ls <= hi)).mean())})
    return pd.DataFrame(rows)
