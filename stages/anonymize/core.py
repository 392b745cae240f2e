"""run_anonymize: detect and replace PII in the free text, pseudonymise and generalise the structured columns.

All splits go through the passes of passes.py in turn: detect per batch, merge the
detected values, replace per batch, then count re-occurrences. The detected original
values are held in memory only, to keep surrogates from reproducing them, to sweep
their undetected repeats (when `sweep_detected_values`) and to count their
re-occurrences in the finished output; they are never written, logged or returned.
A record whose text fails a pass is quarantined: left out of its frame and returned
aside with its text columns blank, counted in the metrics.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from stages.anonymize.engine import ReviewAnalyzer
from stages.anonymize.passes import Failure, Replacer, count_reoccurrences, detect_batch, identifying_values, merge_values
from stages.anonymize.params import AnonymizeParams
from stages.anonymize.structured import anonymize_structured
from stages.errors import SchemaError

_STRING_COLUMNS = ("review_id", "user_id", "parent_asin", "asin", "title", "text", "product_title", "main_category", "split")
_PRODUCT_WORDS = re.compile(r"[A-Za-z][A-Za-z'\-]*")
PASS_BATCH = 4096  # texts per detect/replace batch (a batch is one task for the analyzer's workers)


@dataclass
class AnonymizeResult:
    """The anonymized frames (same keys, columns and row order as the input, less quarantined rows), the metrics,
    and the quarantined records (structured columns anonymized, text columns blank; `quarantine_*` say where and why)."""

    frames: dict[str, pd.DataFrame]
    metrics: dict
    quarantine: pd.DataFrame


def validate_frame(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Check the columns the stage reads; raise SchemaError naming the column and the fix."""
    if "text" not in frame.columns:
        raise SchemaError(f"{name}: no 'text' column; the input needs the review body in a column named 'text'.")
    frame = frame.copy()
    for column in _STRING_COLUMNS:
        if column in frame.columns:
            bad = frame[column].map(lambda v: not (v is None or isinstance(v, str) or (isinstance(v, float) and np.isnan(v))))
            if bad.any():
                example = frame.loc[bad, column].iloc[0]
                raise SchemaError(
                    f"{name}: column '{column}' must hold strings or nulls; row {int(np.flatnonzero(bad.to_numpy())[0])} "
                    f"holds a {type(example).__name__}. Fix the input or drop the column."
                )
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    if "timestamp" in frame.columns and not isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype):
        ts = frame["timestamp"]
        try:
            if pd.api.types.is_numeric_dtype(ts):
                parsed = pd.to_datetime(ts, unit="ms", utc=True)
            else:
                parsed = pd.to_datetime(ts, utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise SchemaError(
                f"{name}: column 'timestamp' must hold timestamps (datetime, epoch milliseconds or ISO 8601 text): {exc}"
            ) from None
        frame["timestamp"] = parsed.astype("datetime64[ms, UTC]")
    return frame


def _product_words(row_title) -> frozenset[str]:
    return frozenset(w.lower() for w in _PRODUCT_WORDS.findall(row_title)) if isinstance(row_title, str) else frozenset()


def _catalog_words(frame: pd.DataFrame) -> list[frozenset[str]] | None:
    columns = [c for c in ("product_title", "main_category") if c in frame]
    if not columns:
        return None
    return [frozenset().union(*(_product_words(frame[c].iat[i]) for c in columns)) for i in range(len(frame))]


def make_analyzer(params: AnonymizeParams, nlp=None) -> ReviewAnalyzer:
    """The stage's analyzer for `params`."""
    return ReviewAnalyzer(
        entities=params.entities,
        score_threshold=params.score_threshold,
        batch_size=params.batch_size,
        n_process=params.n_process,
        ner_chunk_chars=params.ner_chunk_chars,
        min_english_share=params.min_english_share,
        nlp=nlp,
    )


def _batches(values: Iterable, size: int) -> Iterator[list]:
    iterator = iter(values)
    return iter(lambda: list(itertools.islice(iterator, size)), [])


def run_anonymize(
    frames: dict[str, pd.DataFrame],
    params: AnonymizeParams,
    *,
    key: bytes,
    seed: int,
    analyzer: ReviewAnalyzer | None = None,
) -> AnonymizeResult:
    """Anonymize every frame; benchmark the analyzer on the split named in params. Pure: no files, no mlflow."""
    started = time.perf_counter()
    frames = {name: validate_frame(frame, name) for name, frame in frames.items()}
    analyzer = analyzer or make_analyzer(params)
    cells = [
        (name, column, i)
        for name, frame in frames.items()
        for column in params.text_columns
        if column in frame.columns
        for i in range(len(frame))
    ]
    texts = [frames[name][column].iat[i] for name, column, i in cells]
    # the record's own catalog words (product title, category): a "name" made of them is a product
    product = {name: _catalog_words(frame) for name, frame in frames.items()}
    items = [(text, product[name][i] if product[name] else frozenset()) for text, (name, _, i) in zip(texts, cells)]

    # pass 1: detect, batch by batch
    findings = []
    with tqdm(total=len(cells), desc="anonymize: detect", unit="text", disable=None) as bar:
        for batch in _batches(items, PASS_BATCH):
            findings.extend(detect_batch(analyzer, batch))
            bar.update(len(batch))
    analysis_seconds = time.perf_counter() - started

    # pass 2: merge the detected values of every batch (memory only)
    detected = merge_values(texts, findings)
    identifying = identifying_values(detected)

    # pass 3: replace, batch by batch
    replacer = Replacer(params, key=key, identifying=identifying, sweep=params.sweep_detected_values)
    replaced = []
    with tqdm(total=len(cells), desc="anonymize: replace", unit="text", disable=None) as bar:
        for batch in _batches(range(len(cells)), PASS_BATCH):
            replaced.extend(replacer.replace_batch([texts[n] for n in batch], [findings[n] for n in batch]))
            bar.update(len(batch))

    failures: dict[tuple[str, int], Failure] = {}
    out = {name: {column: frame[column].tolist() for column in params.text_columns if column in frame} for name, frame in frames.items()}
    touched = {name: np.zeros(len(frame), dtype=bool) for name, frame in frames.items()}
    swept = 0
    for (name, column, i), found, done in zip(cells, findings, replaced):
        if isinstance(done, Failure):
            failures.setdefault((name, i), done)
            continue
        out[name][column][i] = done.text
        swept += done.swept
        touched[name][i] |= bool(found) or done.swept > 0

    result_frames, quarantined = {}, []
    for name, frame in frames.items():
        frame = frame.copy()
        for column, values in out[name].items():
            frame[column] = pd.Series(values, index=frame.index, dtype=object)
        frame = anonymize_structured(frame, params.structured, key)
        bad = np.zeros(len(frame), dtype=bool)
        bad[[i for fname, i in failures if fname == name]] = True
        if bad.any():
            aside = frame[bad].copy()
            for column in out[name]:
                aside[column] = None  # redacted whole
            aside["quarantine_source"] = name
            aside["quarantine_pass"] = [failures[(name, i)].stage for i in np.flatnonzero(bad)]
            aside["quarantine_error"] = [failures[(name, i)].error for i in np.flatnonzero(bad)]
            quarantined.append(aside)
            touched[name] = touched[name][~bad]
            frame = frame[~bad]
        result_frames[name] = frame
    quarantine = pd.concat(quarantined, ignore_index=True) if quarantined else empty_quarantine()

    # pass 4: what replacement left of the detected values (it cannot see a missed one)
    reoccurrences = count_reoccurrences(result_frames, replacer.matcher, frames)
    metrics = stage_metrics(
        params, stats=analyzer.stats_, found=analyzer.found_, distinct_values=len(detected),
        distinct_swept=len(identifying) if replacer.sweep else 0, swept=swept,
        fallbacks=replacer.surrogates.fallbacks_, reoccurrences=reoccurrences,
        splits={name: (len(frames[name]), int(touched[name].sum()), len(frames[name]) - len(result_frames[name]))
                for name in frames},
        seconds=time.perf_counter() - started, analysis_seconds=analysis_seconds,
    )
    if params.benchmark.cases and params.benchmark.split in frames:
        from stages.anonymize.benchmark import leak_estimate, run_benchmark

        sentences_from = frames[params.benchmark.split]["text"].tolist()
        metrics["benchmark"] = run_benchmark(
            sentences_from, analyzer, cases=params.benchmark.cases, person_cases=params.benchmark.person_cases,
            negative_cases=params.benchmark.negative_cases, seed=seed,
        )
        metrics["leak_estimate"] = leak_estimate(metrics["benchmark"])
    return AnonymizeResult(frames=result_frames, metrics=metrics, quarantine=quarantine)


def empty_quarantine() -> pd.DataFrame:
    """The quarantine frame of a run with no failing record."""
    return pd.DataFrame(columns=["quarantine_source", "quarantine_pass", "quarantine_error"])


def stage_metrics(params: AnonymizeParams, *, stats, found: Mapping[str, int], distinct_values: int, distinct_swept: int,
                  swept: int, fallbacks: Mapping[str, int], reoccurrences: int, splits: dict[str, tuple[int, int, int]],
                  seconds: float, analysis_seconds: float) -> dict:
    """The stage's metrics (counts only), whichever engine ran it; `splits` maps name -> (rows, touched, quarantined)."""
    n_rows = sum(rows for rows, _, _ in splits.values())
    quarantined = sum(q for _, _, q in splits.values())
    return {
        "rows": n_rows,
        "rows_written": n_rows - quarantined,
        "quarantined_records": quarantined,
        "texts_analysed": stats.texts,
        "texts_empty": stats.empty,
        "texts_non_english": stats.non_english,
        "texts_chunked": stats.chunked,
        "records_touched": sum(touched for _, touched, _ in splits.values()),
        "entities_found": {entity: int(found.get(entity, 0)) for entity in params.entities},
        "distinct_values_detected": distinct_values,
        "distinct_values_swept": distinct_swept,
        "sweep_replacements": swept,
        "surrogate_fallbacks": {entity: int(fallbacks.get(entity, 0)) for entity in params.entities},
        "detected_value_reoccurrences": reoccurrences,
        "splits": {name: {"rows": rows, "records_touched": touched, "quarantined": q}
                   for name, (rows, touched, q) in splits.items()},
        "seconds": round(seconds, 3),
        "analysis_seconds": round(analysis_seconds, 3),
        "reviews_per_second": round(n_rows / seconds, 1) if seconds else None,
    }
