"""run_anonymize_ray: the anonymize stage on a Ray cluster, with the local engine's exact output.

The splits are read as Ray Datasets and go through three passes of Ray Data actors
(`map_batches`, a fixed pool of `ray.num_workers` actors, each loading the analyzer once):

1. detect: the stage's own ReviewAnalyzer finds the PII of each row's text columns;
   each row carries its findings (offsets and types) and the detected values.
2. merge: one cluster task merges the detected values in the local engine's order
   (split, column, row: the first detection types a value) and collects the input user
   ids. Both are raw PII: they stay in the object store, passed to the next passes by
   reference; the driver only ever receives their count.
3. replace: sweep (when `sweep_detected_values`), the configured operators and the
   structured rules, exactly as `run_anonymize` applies them (the same functions).
4. leak check on the combined output, on the cluster, against the merged values.

Surrogates are keyed on (key, entity, value) and every actor gets the same merged
values, so a value has the same surrogate on every worker. The driver receives the
anonymized rows and the counts, never a raw text or a detected value.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from stages.anonymize.core import (
    AnonymizeResult,
    _catalog_words,
    count_leaks,
    make_analyzer,
    make_replacer,
    stage_metrics,
    sweep_findings,
    validate_frame,
)
from stages.anonymize.engine import AnalysisStats, Finding, resolve_overlaps
from stages.anonymize.operators import _word_matcher
from stages.anonymize.params import AnonymizeParams
from stages.anonymize.structured import anonymize_structured
from stages.errors import PipelineInputError
from stages.ray_cluster import MAX_RESTARTS, actor_options, check_capacity, user_errors

SOURCE = "_source"  # index of the split a row came from
FINDINGS = "_findings"  # JSON: per text column, [[entity, start, end, score], ...]
VALUES = "_values"  # JSON: per text column, [[value, entity], ...]; raw PII, cluster-only
TOUCHED = "_touched"
SWEPT = "_swept"
_STATS = tuple(f"_stat_{name}" for name in vars(AnalysisStats()))  # per-batch analyzer counts, on its first row
_DETECTED = (SOURCE, FINDINGS, VALUES, *_STATS)  # the helper columns pass 1 adds


def _with_schema(frame: pd.DataFrame, schema) -> "pa.Table":
    """The batch as Arrow with its input's column types, so no batch's nulls retype a column."""
    import pyarrow as pa

    fields = [schema.field(c) if c in schema.names else None for c in frame.columns]
    typed = pa.schema([f if f is not None else pa.field(c, pa.Table.from_pandas(frame[[c]], preserve_index=False).schema[0].type)
                       for c, f in zip(frame.columns, fields)])
    return pa.Table.from_pandas(frame, schema=typed, preserve_index=False)


def _first_row_only(n: int, value: int) -> list[int]:
    return [value] + [0] * (n - 1) if n else []


class _Detect:
    """Pass 1 actor: the stage's analyzer, loaded once, over a batch of rows."""

    def __init__(self, params: AnonymizeParams, names: list[str]):
        import dataclasses

        # the actors are the parallelism: no forked spaCy workers inside them
        self.analyzer = make_analyzer(dataclasses.replace(params, n_process=1))
        self.params, self.names = params, names

    def __call__(self, table) -> pd.DataFrame:
        batch = table.to_pandas()  # pyarrow's conversion, as pd.read_parquet does (Ray's own maps nulls to pd.NA)
        sources = batch[SOURCE].to_numpy()
        frame = validate_frame(batch.drop(columns=[SOURCE]), " / ".join(sorted({self.names[s] for s in sources})))
        n = len(frame)
        columns = [c for c in self.params.text_columns if c in frame.columns]
        product = _catalog_words(frame)
        items = [(frame[c].iat[i], product[i] if product else frozenset()) for c in columns for i in range(n)]
        self.analyzer.stats_, self.analyzer.found_ = AnalysisStats(), Counter()
        found = list(self.analyzer.analyze(items))
        findings, values = [{} for _ in range(n)], [{} for _ in range(n)]
        for k, result in enumerate(found):
            column, i = columns[k // n], k % n
            if result:
                text = frame[column].iat[i]
                findings[i][column] = [[f.entity, f.start, f.end, f.score] for f in result]
                values[i][column] = [[text[f.start : f.end], f.entity] for f in result]
        frame[SOURCE] = sources
        frame[FINDINGS] = [json.dumps(f) for f in findings]
        frame[VALUES] = [json.dumps(v, ensure_ascii=False) for v in values]
        for name, column in zip(vars(self.analyzer.stats_), _STATS):
            frame[column] = _first_row_only(n, getattr(self.analyzer.stats_, name))
        return _with_schema(frame, table.schema)


def _merge_detected(text_columns: tuple[str, ...], n_sources: int, *blocks) -> tuple[dict[str, str], list[str], int]:
    """Pass 2 task: detected value -> entity of its first detection (local order), the input user ids, the count."""
    per_cell: dict[tuple[int, str], list] = {}
    user_ids: set[str] = set()
    for block in blocks:
        frame = block.to_pandas()
        for source, raw, user in zip(frame[SOURCE], frame[VALUES], frame["user_id"] if "user_id" in frame else [None] * len(frame)):
            if isinstance(user, str) and user:
                user_ids.add(user)
            for column, pairs in json.loads(raw).items():
                per_cell.setdefault((int(source), column), []).extend(pairs)
    originals: dict[str, str] = {}
    for source in range(n_sources):
        for column in text_columns:
            for value, entity in per_cell.get((source, column), ()):
                originals.setdefault(value, entity)
    return originals, sorted(user_ids), len(originals)


class _Replace:
    """Pass 3 actor: sweep, operators and structured rules with the merged values."""

    def __init__(self, params: AnonymizeParams, key: bytes, shared: list):
        import ray

        originals = ray.get(shared[0])
        self.params, self.key, self.originals = params, key, originals
        self.matcher = _word_matcher(originals)
        self.replace = make_replacer(params, key=key, originals=originals)

    def __call__(self, table) -> pd.DataFrame:
        batch = table.to_pandas()
        params, n = self.params, len(batch)
        frame = batch.drop(columns=list(_DETECTED))
        touched = [False] * n
        swept = 0
        findings = [json.loads(f) for f in batch[FINDINGS]]
        for column in (c for c in params.text_columns if c in frame.columns):
            values = frame[column].tolist()
            for i in range(n):
                text = values[i]
                found = [Finding(e, s, t, score) for e, s, t, score in findings[i].get(column, ())]
                if params.sweep_detected_values and self.matcher is not None and isinstance(text, str):
                    extra = sweep_findings(text, found, self.matcher, self.originals)
                    if extra:
                        swept += len(extra)
                        found = resolve_overlaps(found + extra)
                if found:
                    values[i] = self.replace(text, found)
                    touched[i] = True
            frame[column] = pd.Series(values, index=frame.index, dtype=object)
        frame = anonymize_structured(frame, params.structured, self.key)
        frame[SOURCE] = batch[SOURCE].to_numpy()
        frame[TOUCHED] = touched
        frame[SWEPT] = _first_row_only(n, swept)
        return _with_schema(frame, table.schema)


class _LeakCheck:
    """Pass 4 actor: leaks of the merged values and the input user ids in the combined output."""

    def __init__(self, shared: list):
        import ray

        originals, user_ids = ray.get(shared)
        self.matcher = _word_matcher(originals)
        self.inputs = {"input": pd.DataFrame({"user_id": pd.Series(user_ids, dtype=object)})}

    def __call__(self, table) -> pd.DataFrame:
        frame = table.to_pandas().drop(columns=[SOURCE, TOUCHED, SWEPT])
        return pd.DataFrame({"leaks": [count_leaks({"batch": frame}, self.matcher, self.inputs)]})


def _benchmark(params: AnonymizeParams, seed: int, *blocks) -> dict:
    """The labelled PII benchmark of the local engine, as a cluster task (its sentences are raw text)."""
    from stages.anonymize.benchmark import run_benchmark

    sentences = [t for block in blocks for t in block.column("text").to_pylist()]
    return run_benchmark(sentences, make_analyzer(params), cases=params.benchmark.cases,
                         negative_cases=params.benchmark.negative_cases, seed=seed)


def _to_pandas(dataset) -> pd.DataFrame:
    """The dataset in order, converted by pyarrow as pd.read_parquet would."""
    import pyarrow as pa
    import ray

    refs = dataset.to_arrow_refs()
    return pa.concat_tables(ray.get(refs), promote_options="default").to_pandas() if refs else pd.DataFrame()


def read_splits(sources: dict[str, Path]):
    """The splits as one Ray Dataset, in split order, each row tagged with its split's index."""
    import pyarrow as pa
    import ray

    datasets = []
    for index, path in enumerate(sources.values()):
        if Path(path).suffix.lower() != ".parquet":
            raise PipelineInputError(f"{path}: anonymize.engine ray reads Parquet; convert the input or use engine local")

        def tag(table: pa.Table, index=index) -> pa.Table:
            return table.append_column(SOURCE, pa.array([index] * table.num_rows, pa.int32()))

        if not Path(path).is_file():
            raise PipelineInputError(f"input file {path} does not exist.")
        datasets.append(ray.data.read_parquet(str(path)).map_batches(tag, batch_format="pyarrow", batch_size=None))
    return datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0], datasets


def run_anonymize_ray(sources: dict[str, Path], params: AnonymizeParams, *, key: bytes, seed: int) -> AnonymizeResult:
    """Anonymize the Parquet splits on the connected Ray cluster; the same frames and metrics as run_anonymize."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("run_anonymize_ray needs a connected cluster; open stages.ray_cluster.ray_cluster first")
    started = time.perf_counter()
    names = list(sources)
    workers = params.ray.num_workers
    check_capacity(workers, param="anonymize.ray.num_workers")
    data, per_split = read_splits(sources)
    with user_errors():  # a bad input column fails as the local engine's SchemaError
        detected = data.map_batches(
            _Detect, fn_constructor_kwargs={"params": params, "names": names}, batch_size=params.ray.batch_size,
            batch_format="pyarrow", **actor_options(workers),
        ).materialize()
    analysis_seconds = time.perf_counter() - started
    counts = _to_pandas(detected.select_columns([FINDINGS, *_STATS]))  # offsets, types and counts: no text
    stats = AnalysisStats(**{name: int(counts[column].sum()) if len(counts) else 0
                             for name, column in zip(vars(AnalysisStats()), _STATS)})
    found = Counter()
    for raw in counts[FINDINGS] if len(counts) else ():
        for per_column in json.loads(raw).values():
            found.update(f[0] for f in per_column)

    bench = None
    if params.benchmark.cases and params.benchmark.split in sources:
        text_refs = per_split[names.index(params.benchmark.split)].select_columns(["text"]).to_arrow_refs()
        bench = ray.remote(_benchmark).options(num_cpus=1, max_retries=MAX_RESTARTS).remote(params, seed, *text_refs)

    merge_columns = [SOURCE, VALUES] + (["user_id"] if "user_id" in detected.columns() else [])
    merged = ray.remote(_merge_detected).options(num_returns=3, max_retries=MAX_RESTARTS).remote(
        tuple(params.text_columns), len(names), *detected.select_columns(merge_columns).to_arrow_refs()
    )
    originals_ref, user_ids_ref, count_ref = merged
    shared = [originals_ref, user_ids_ref]  # nested refs: the actors fetch them; the driver never does
    anonymized = detected.map_batches(
        _Replace, fn_constructor_kwargs={"params": params, "key": key, "shared": shared},
        batch_size=params.ray.batch_size, batch_format="pyarrow", **actor_options(workers),
    ).materialize()
    leaks = anonymized.map_batches(
        _LeakCheck, fn_constructor_kwargs={"shared": shared}, batch_size=params.ray.batch_size,
        batch_format="pyarrow", **actor_options(workers),
    ).sum("leaks")

    combined = _to_pandas(anonymized)
    frames, splits = {}, {}
    for index, name in enumerate(names):
        rows = combined[combined[SOURCE] == index]
        frames[name] = rows.drop(columns=[SOURCE, TOUCHED, SWEPT]).reset_index(drop=True)
        splits[name] = (len(rows), int(rows[TOUCHED].sum()))
    metrics = stage_metrics(
        params, stats=stats, found=found, distinct_values=int(ray.get(count_ref)), swept=int(combined[SWEPT].sum()),
        leaks=int(leaks or 0), splits=splits, seconds=time.perf_counter() - started, analysis_seconds=analysis_seconds,
    )
    if bench is not None:
        metrics["benchmark"] = ray.get(bench)
    return AnonymizeResult(frames=frames, metrics=metrics)
