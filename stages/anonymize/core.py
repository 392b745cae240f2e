"""run_anonymize: detect and replace PII in the free text, pseudonymise and generalise the structured columns.

All splits go through one analyzer pass (one set of spaCy workers). The detected
original values are held in memory only, to keep surrogates from reproducing them, to
sweep their undetected repeats (when `sweep_detected_values`) and to count leaks in the
finished output; they are never written, logged or returned.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from stages.anonymize.engine import Finding, ReviewAnalyzer, resolve_overlaps
from stages.anonymize.operators import Surrogates, _word_matcher, build_operators
from stages.anonymize.params import AnonymizeParams
from stages.anonymize.structured import anonymize_structured
from stages.errors import SchemaError

_STRING_COLUMNS = ("review_id", "user_id", "parent_asin", "asin", "title", "text", "product_title", "main_category", "split")
_PRODUCT_WORDS = re.compile(r"[A-Za-z][A-Za-z'\-]*")


@dataclass
class AnonymizeResult:
    """The anonymized frames (same keys, columns and row order as the input) and the metrics."""

    frames: dict[str, pd.DataFrame]
    metrics: dict


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
    # the record's own catalog words (product title, category): a "name" made of them is a product
    product = {name: _catalog_words(frame) for name, frame in frames.items()}
    items = (
        (frames[name][column].iat[i], product[name][i] if product[name] else frozenset()) for name, column, i in cells
    )
    findings: list[list[Finding]] = []
    for result in tqdm(analyzer.analyze(items), total=len(cells), desc="anonymize: analyse", unit="text", disable=None):
        findings.append(result)
    analysis_seconds = time.perf_counter() - started

    originals: dict[str, str] = {}  # detected value -> entity (first seen); memory only
    for (name, column, i), found in zip(cells, findings):
        text = frames[name][column].iat[i]
        for f in found:
            originals.setdefault(text[f.start : f.end], f.entity)
    swept = 0
    matcher = _word_matcher(originals)
    if params.sweep_detected_values and matcher is not None:
        # a value detected anywhere is removed everywhere: add its undetected repeats as findings
        for n, (name, column, i) in enumerate(cells):
            text = frames[name][column].iat[i]
            if not isinstance(text, str):
                continue
            found = findings[n]
            extra = sweep_findings(text, found, matcher, originals)
            if extra:
                swept += len(extra)
                findings[n] = resolve_overlaps(found + extra)

    replace = make_replacer(params, key=key, originals=originals)
    out = {name: {column: frame[column].tolist() for column in params.text_columns if column in frame} for name, frame in frames.items()}
    touched = {name: np.zeros(len(frame), dtype=bool) for name, frame in frames.items()}
    for (name, column, i), found in zip(cells, findings):
        if found:
            out[name][column][i] = replace(out[name][column][i], found)
            touched[name][i] = True

    result_frames = {}
    for name, frame in frames.items():
        frame = frame.copy()
        for column, values in out[name].items():
            frame[column] = pd.Series(values, index=frame.index, dtype=object)
        result_frames[name] = anonymize_structured(frame, params.structured, key)

    leaks = count_leaks(result_frames, matcher, frames)
    metrics = stage_metrics(
        params, stats=analyzer.stats_, found=analyzer.found_, distinct_values=len(originals), swept=swept, leaks=leaks,
        splits={name: (len(frames[name]), int(touched[name].sum())) for name in frames},
        seconds=time.perf_counter() - started, analysis_seconds=analysis_seconds,
    )
    if params.benchmark.cases and params.benchmark.split in frames:
        from stages.anonymize.benchmark import run_benchmark

        sentences_from = frames[params.benchmark.split]["text"].tolist()
        metrics["benchmark"] = run_benchmark(
            sentences_from, analyzer, cases=params.benchmark.cases, negative_cases=params.benchmark.negative_cases, seed=seed
        )
    return AnonymizeResult(frames=result_frames, metrics=metrics)


def stage_metrics(params: AnonymizeParams, *, stats, found: Counter, distinct_values: int, swept: int, leaks: int,
                  splits: dict[str, tuple[int, int]], seconds: float, analysis_seconds: float) -> dict:
    """The stage's metrics (counts only), whichever engine ran it; `splits` maps name -> (rows, records touched)."""
    n_rows = sum(rows for rows, _ in splits.values())
    return {
        "rows": n_rows,
        "texts_analysed": stats.texts,
        "texts_empty": stats.empty,
        "texts_non_english": stats.non_english,
        "texts_chunked": stats.chunked,
        "records_touched": sum(touched for _, touched in splits.values()),
        "entities_found": {entity: int(found.get(entity, 0)) for entity in params.entities},
        "distinct_values_detected": distinct_values,
        "sweep_replacements": swept,
        "leak_count": leaks,
        "splits": {name: {"rows": rows, "records_touched": touched} for name, (rows, touched) in splits.items()},
        "seconds": round(seconds, 3),
        "analysis_seconds": round(analysis_seconds, 3),
        "reviews_per_second": round(n_rows / seconds, 1) if seconds else None,
    }


def sweep_findings(text: str, found: list[Finding], matcher: re.Pattern, originals: dict[str, str]) -> list[Finding]:
    """Findings for the undetected repeats, in `text`, of values detected anywhere (typed as first detected)."""
    return [
        Finding(originals[m.group()], m.start(), m.end(), 1.0)
        for m in matcher.finditer(text)
        if not any(f.start <= m.start() and m.end() <= f.end for f in found)
    ]


def make_replacer(params: AnonymizeParams, *, key: bytes, originals: dict[str, str]):
    """`replace(text, findings) -> text` with the configured operators; no surrogate reproduces an original."""
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    surrogates = Surrogates(key, forbidden=originals)
    operators = build_operators(params.operators.for_entity, params.entities, key=key, surrogates=surrogates,
                                mask_char=params.mask_char)
    configs = {
        entity: OperatorConfig("custom", {"lambda": (lambda value, e=entity: operators[e](e, value))})
        for entity in params.entities
    }
    engine = AnonymizerEngine()

    def replace(text: str, found: list[Finding]) -> str:
        results = [RecognizerResult(f.entity, f.start, f.end, f.score) for f in found]
        return engine.anonymize(text, results, configs).text

    return replace


def count_leaks(outputs: dict[str, pd.DataFrame], matcher: re.Pattern | None, inputs: dict[str, pd.DataFrame]) -> int:
    """Occurrences, in any string column of the output, of a detected value (as a word) or of an original user id."""
    user_ids = set()
    for frame in inputs.values():
        if "user_id" in frame:
            user_ids.update(v for v in frame["user_id"] if isinstance(v, str) and v)
    count = 0
    for frame in outputs.values():
        for column in frame.columns:
            if frame[column].dtype != object:
                continue
            for value in frame[column]:
                if not isinstance(value, str):
                    continue
                if matcher is not None:
                    count += len(matcher.findall(value))
                if column == "user_id" and value in user_ids:
                    count += 1
    if user_ids:
        ids = re.compile("|".join(map(re.escape, sorted(user_ids, key=len, reverse=True))))
        for frame in outputs.values():
            for column in frame.columns:
                if column != "user_id" and frame[column].dtype == object:
                    count += sum(len(ids.findall(v)) for v in frame[column] if isinstance(v, str))
    return count
