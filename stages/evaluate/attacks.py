"""Anonymeter's three attacks on the structured columns, and the residual-PII scan of synthetic texts."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

BatchAnalyzer = Callable[[Sequence[str]], list[Sequence[Any]]]  # texts -> per text, findings (entity, start, end, score)


def numeric_view(frame: pd.DataFrame) -> pd.DataFrame:
    """Anonymeter-ready copy: datetimes to epoch days, nullable ints/bools to float, categories to str."""
    out = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        series = frame[col]
        if pd.api.types.is_datetime64_any_dtype(series):
            out[col] = (series.astype("int64") / 86_400e9).where(series.notna())
        elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            out[col] = pd.to_numeric(series.astype("Float64"), errors="coerce").astype(float)
        else:
            out[col] = series.astype("object").where(series.notna(), "<null>").astype(str)
    return out.reset_index(drop=True)


def anonymeter_risks(original: pd.DataFrame, synthetic: pd.DataFrame, control: pd.DataFrame, *,
                     n_attacks: int, seed: int) -> dict[str, float]:
    """Singling-out (univariate), linkability and the worst inference risk, each with its CI's upper bound.

    Risk is the attack's success on training rows beyond its success on control rows
    (real rows the generator never saw): 0 means the synthetic data gives no edge.
    Anonymeter's inference attack draws its targets from NumPy's global generator, which
    is seeded here (and restored after); its linkability baseline uses a fresh unseeded
    generator, so that one risk varies a little from run to run.
    """
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        return _anonymeter_risks(original, synthetic, control, n_attacks=n_attacks, seed=seed)
    finally:
        np.random.set_state(saved)


def _anonymeter_risks(original: pd.DataFrame, synthetic: pd.DataFrame, control: pd.DataFrame, *,
                      n_attacks: int, seed: int) -> dict[str, float]:
    from anonymeter.evaluators import InferenceEvaluator, LinkabilityEvaluator, SinglingOutEvaluator

    original, synthetic, control = numeric_view(original), numeric_view(synthetic), numeric_view(control)
    cols = [c for c in original.columns if original[c].nunique(dropna=True) > 1]
    original, synthetic, control = original[cols], synthetic[cols], control[cols]
    n_attacks = min(n_attacks, len(control), len(original))
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anonymeter warns about attacks it could not build; counted below
        so = SinglingOutEvaluator(ori=original, syn=synthetic, control=control, n_attacks=n_attacks, seed=seed)
        so.evaluate(mode="univariate")
        _put(out, "singling_out", so.risk())
        half = len(cols) // 2
        link = LinkabilityEvaluator(ori=original, syn=synthetic, control=control, n_attacks=n_attacks,
                                    aux_cols=(cols[:half], cols[half:]), n_neighbors=10)
        link.evaluate(n_jobs=1)
        _put(out, "linkability", link.risk())
        inference = {}
        for secret in cols:
            aux = [c for c in cols if c != secret]
            ev = InferenceEvaluator(ori=original, syn=synthetic, control=control, aux_cols=aux, secret=secret,
                                    regression=pd.api.types.is_float_dtype(original[secret]), n_attacks=n_attacks)
            ev.evaluate(n_jobs=1)
            inference[secret] = ev.risk()
    worst = max(inference, key=lambda c: inference[c].value)
    _put(out, "inference_max", inference[worst])
    out["inference_mean"] = float(np.mean([r.value for r in inference.values()]))
    out["n_attacks"] = n_attacks
    out["columns"] = len(cols)
    return out


def _put(out: dict, name: str, risk) -> None:
    out[f"{name}_risk"] = float(risk.value)
    out[f"{name}_risk_ci_high"] = float(risk.ci[1])


def residual_pii(texts: Sequence[str], analyze: BatchAnalyzer, *, entities: Sequence[str], threshold: float,
                 raw_texts: Iterable[str]) -> dict[str, int | float]:
    """Scan synthetic texts with the anonymizer's analyzer; count findings and those found in the raw data.

    A found value that also occurs in the raw (pre-anonymization) extracted texts is a
    candidate leak of a real identifier; one that does not is invented by the generator.
    Only counts leave this function, never the values.
    """
    wanted = set(entities)
    per_entity: Counter = Counter()
    values: list[str] = []
    records_with = 0
    for text, findings in zip(texts, analyze(list(texts)), strict=True):
        found = [f for f in findings if f.entity in wanted and f.score >= threshold]
        records_with += bool(found)
        for f in found:
            per_entity[f.entity] += 1
            values.append(text[f.start : f.end].strip().lower())
    corpus = "\n".join(t.lower() for t in raw_texts)
    distinct = sorted(set(v for v in values if v))
    in_raw = sum(1 for v in distinct if v in corpus)
    out: dict[str, int | float] = {
        "records_scanned": len(texts),
        "records_with_pii": records_with,
        "records_with_pii_share": records_with / len(texts) if texts else 0.0,
        "findings": len(values),
        "distinct_values": len(distinct),
        "values_in_raw_data": in_raw,
    }
    out.update({f"entity.{e}": per_entity.get(e, 0) for e in sorted(wanted)})
    return out
