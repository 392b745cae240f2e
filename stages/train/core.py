"""run_train: fine-tune a LoRA rating classifier and a TF-IDF baseline per source; score them on real test data."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from stages.errors import ParamsError, PipelineInputError, SchemaError
from stages.schema import RATINGS
from stages.train.baseline import TfidfBaseline
from stages.train.classifier import CONFIG_NAME, attach_lora, build_base, fit_lora, keep_base, save_classifier
from stages.train.metrics import classification_report
from stages.train.params import SOURCES, TrainParams
from stages.train.predict import RatingClassifier, review_texts

MODELS = ("lora", "tfidf", "majority")
RATIO_METRICS = ("accuracy", "macro_f1")


@dataclass
class TrainResult:
    """Flat metrics, the test ratings and each model's test predictions, and the classifier folders."""

    metrics: dict[str, float | int | str | None]
    test_ratings: np.ndarray
    predictions: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (source, model) -> ratings
    model_dirs: dict[str, Path] = field(default_factory=dict)


@dataclass
class _Prepared:
    texts: list[str]
    ratings: np.ndarray
    counts: dict[str, int]


def prepare(frame: pd.DataFrame, *, name: str, use_title: bool, max_rows: int | None, seed: int) -> _Prepared:
    """Validate a table's text and rating columns, drop empty texts (counted) and cap rows (seeded sample)."""
    missing = [c for c in ("text", "rating") if c not in frame.columns]
    if missing:
        raise SchemaError(f"{name}: missing column(s) {missing}; expected the record schema (stages/schema.py).")
    ratings = pd.to_numeric(frame["rating"], errors="coerce")
    bad = frame.loc[~ratings.isin(RATINGS), "rating"]
    if len(bad):
        raise SchemaError(
            f"{name}: {len(bad)} row(s) have a rating outside {list(RATINGS)} (e.g. {bad.head(3).tolist()}); "
            "fix the upstream stage's output."
        )
    empty = frame["text"].isna() | (frame["text"].astype(str).str.strip() == "")
    kept = frame.loc[~empty]
    capped = 0
    if max_rows is not None and len(kept) > max_rows:
        capped = len(kept) - max_rows
        kept = kept.sample(n=max_rows, random_state=seed).sort_index()
    return _Prepared(
        texts=review_texts(kept, use_title=use_title, where=name),
        ratings=kept["rating"].to_numpy(dtype=np.int64),
        counts={"rows_in": len(frame), "dropped_empty_text": int(empty.sum()), "capped": capped, "rows": len(kept),
                "ratings_absent": len(set(RATINGS) - set(kept["rating"].astype(int)))},
    )


def check_trainable(data: _Prepared, *, name: str, min_rows: int) -> None:
    """A source needs min_rows rows and at least two ratings; an absent rating is counted, not fatal.

    A synthetic set whose sampler never drew a rare rating is a utility finding: its
    classifier never predicts that rating and macro-F1 over 1..5 on the real test split
    pays for it. So the run goes on and `<source>.ratings_absent` says how many were missing.
    """
    if data.counts["rows"] < min_rows:
        raise PipelineInputError(
            f"{name}: {data.counts['rows']} usable row(s) (of {data.counts['rows_in']}; "
            f"{data.counts['dropped_empty_text']} with empty text) is below train.min_train_rows={min_rows}; "
            "produce more rows upstream or lower train.min_train_rows."
        )
    present = set(data.ratings.tolist())
    absent = [r for r in RATINGS if r not in present]
    if len(present) < 2:
        raise PipelineInputError(
            f"{name}: every training example has rating {sorted(present)}; a classifier needs at least two "
            "ratings. Generate or sample more rows so that other ratings appear."
        )
    if absent:
        warnings.warn(
            f"{name}: no training example with rating {absent}; its classifier will never predict "
            f"{'it' if len(absent) == 1 else 'them'}, and macro-F1 over 1..5 counts that.",
            stacklevel=2,
        )


def run_train(
    sources: Mapping[str, pd.DataFrame], test: pd.DataFrame, params: TrainParams, *, seed: int, out_dir: Path
) -> TrainResult:
    """Train and score one LoRA classifier, one TF-IDF baseline and a majority baseline per source.

    `sources` maps each name in params.sources to its training table; every model is scored
    on `test` (the real test split). Classifier folders go to out_dir/<source>/.
    """
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise ParamsError(f"unknown source(s) {unknown}; train.sources accepts {list(SOURCES)}.")
    absent = [s for s in params.sources if s not in sources]
    if absent:
        raise PipelineInputError(f"train.sources lists {absent} but no training table was given for it.")
    prepared = {}
    for name in params.sources:  # validate every input before the slow part starts
        prepared[name] = prepare(
            sources[name], name=f"source '{name}'", use_title=params.use_title, max_rows=params.max_train_rows, seed=seed
        )
        check_trainable(prepared[name], name=f"source '{name}'", min_rows=params.min_train_rows)
    held_out = prepare(test, name="test split", use_title=params.use_title, max_rows=params.max_test_rows, seed=seed)
    if held_out.counts["rows"] == 0:
        raise PipelineInputError("test split: no usable rows; the real test split must not be empty.")

    metrics: dict = {f"test.{k}": v for k, v in held_out.counts.items()}
    result = TrainResult(metrics=metrics, test_ratings=held_out.ratings)
    for name, data in prepared.items():
        metrics.update({f"{name}.{k}": v for k, v in data.counts.items()})
        predictions, timings = _train_source(name, data, held_out, params, seed=seed, out_dir=out_dir / name)
        result.model_dirs[name] = out_dir / name
        for model, predicted in predictions.items():
            result.predictions[(name, model)] = predicted
            metrics.update({f"{name}.{model}.{k}": v for k, v in classification_report(held_out.ratings, predicted).items()})
        metrics.update({f"{name}.{k}": v for k, v in timings.items()})
    if {"synthetic", "real"} <= set(prepared):
        metrics.update(comparison(metrics))
    return result


def comparison(metrics: dict) -> dict:
    """Synthetic against real: the plain ratio, and the lift over the majority-class floor.

    lift = (synthetic - majority) / (real - majority), the majority floor being that of the
    real training data: a synthetic set that teaches nothing scores 0 however close the
    plain ratio looks. Both compare like with like only when both sources trained on as
    many rows (`train_rows_equal`); the stage writes enough synthetic rows for that.
    """
    out: dict = {}
    for model in ("lora", "tfidf"):
        for metric in RATIO_METRICS:
            real = metrics[f"real.{model}.{metric}"]
            out[f"ratio.{model}.{metric}"] = metrics[f"synthetic.{model}.{metric}"] / real if real else None
        floor = metrics["real.majority.macro_f1"]
        span = metrics[f"real.{model}.macro_f1"] - floor
        out[f"lift.{model}.macro_f1"] = (metrics[f"synthetic.{model}.macro_f1"] - floor) / span if span > 0 else None
    out["train_rows_equal"] = metrics["synthetic.rows"] == metrics["real.rows"]
    return out


def _train_source(name: str, data: _Prepared, test: _Prepared, params: TrainParams, *, seed: int, out_dir: Path):
    """Fit the three models of one source; return test predictions per model and timings."""
    predictions, timings = {}, {}
    majority = int(np.bincount(data.ratings, minlength=max(RATINGS) + 1).argmax())
    predictions["majority"] = np.full(len(test.ratings), majority, dtype=np.int64)
    timings["majority.rating"] = majority

    tfidf = TfidfBaseline(params.tfidf, class_weighting=params.class_weighting, seed=seed).fit(data.texts, data.ratings)
    started = time.perf_counter()
    predictions["tfidf"] = tfidf.predict(test.texts)
    timings["tfidf.fit_seconds"] = tfidf.fit_seconds_
    timings["tfidf.train_examples_per_second"] = len(data.texts) / tfidf.fit_seconds_
    timings["tfidf.predict_examples_per_second"] = len(test.texts) / (time.perf_counter() - started)

    model, tokenizer = build_base(params.base_model, data.texts, max_length=params.max_length, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    keep_base(model, params.base_model, out_dir)
    model = attach_lora(model, params)
    trainable, total = model.get_nb_trainable_parameters()
    stats = fit_lora(model, tokenizer, data.texts, data.ratings - 1, params, seed=seed, desc=f"train {name}")
    save_classifier(model, tokenizer, out_dir, base_model=params.base_model, params=params)
    classifier = RatingClassifier(model, tokenizer, _read_config(out_dir))
    started = time.perf_counter()
    predictions["lora"] = classifier.predict(pd.DataFrame({"text": test.texts}))["rating_pred"].to_numpy(np.int64)
    timings.update(
        {
            "lora.train_seconds": stats.seconds,
            "lora.train_examples": stats.examples,
            "lora.train_examples_per_second": stats.examples_per_second,
            "lora.predict_examples_per_second": len(test.texts) / (time.perf_counter() - started),
            "lora.final_loss": stats.final_loss,
            "lora.trainable_params": int(trainable),
            "lora.total_params": int(total),
        }
    )
    return predictions, timings


def _read_config(out_dir: Path) -> dict:
    import json

    return json.loads((out_dir / CONFIG_NAME).read_text(encoding="utf-8"))
