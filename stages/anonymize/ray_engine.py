"""run_anonymize_ray: the anonymize stage on a Ray cluster, with the local engine's exact output.

The splits are read as Ray Datasets and go through the passes of passes.py, each in
Ray Data actors (`map_batches`, a fixed pool of `ray.num_workers` actors, each loading
the analyzer or the replacer once) or one cluster task:

1. detect: `detect_batch` with the stage's own ReviewAnalyzer; each row carries its
   findings (offsets and types) or its Failure, per text column.
2. merge: one cluster task runs `merge_values` in the local engine's order (split,
   column, row: the first detection types a value) and `identifying_values`, and
   collects the input user ids. Both are raw PII: they stay in the object store,
   passed to the next passes by reference; the driver only ever receives their counts.
3. replace: `Replacer.replace_batch` with the merged values, then the structured rules.
   A row whose text failed a pass is marked with the pass and error and its text
   columns blanked; the driver quarantines it as `run_anonymize` does.
4. `count_reoccurrences` on the combined output (the rows written), on the cluster.

Surrogates are keyed on (key, entity, value) and every actor gets the same merged
values, so a value has the same surrogate on every worker. The driver receives the
anonymized rows and the counts, never a raw text or a detected value.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from stages.anonymize.core import (
    AnonymizeResult,
    _catalog_words,
    empty_quarantine,
    make_analyzer,
    stage_metrics,
    validate_frame,
)
from stages.anonymize.engine import AnalysisStats, Finding, ReviewAnalyzer
from stages.anonymize.operators import _word_matcher
from stages.anonymize.params import AnonymizeParams
from stages.anonymize.passes import Failure, Replacer, count_reoccurrences, detect_batch, identifying_values, merge_values
from stages.anonymize.structured import anonymize_structured
from stages.errors import PipelineInputError
from stages.ray_cluster import MAX_RESTARTS, actor_options, check_capacity, user_errors

SOURCE = "_source"  # index of the split a row came from
FINDINGS = "_findings"  # JSON: per text column, [[entity, start, end, score], ...] or {"stage":, "error":} (a Failure)
FOUND = "_found"  # JSON: the analyzer's per-entity counts of the batch, on its first row
TOUCHED = "_touched"
SWEPT = "_swept"
FAILED_PASS, FAILED_ERROR = "_failed_pass", "_failed_error"  # "" for a row every pass succeeded on
FALLBACKS = "_fallbacks"  # JSON: (entity, value) pairs that needed a surrogate fallback; raw PII, cluster-only
_STATS = tuple(f"_stat_{name}" for name in vars(AnalysisStats()))  # per-batch analyzer counts, on its first row
_DETECTED = (SOURCE, FINDINGS, FOUND, *_STATS)  # the helper columns pass 1 adds
_REPLACED = (SOURCE, TOUCHED, SWEPT, FAILED_PASS, FAILED_ERROR, FALLBACKS)  # the helper columns pass 3 leaves


def _encode(found: list[Finding] | Failure):
    if isinstance(found, Failure):
        return {"stage": found.stage, "error": found.error}
    return [[f.entity, f.start, f.end, f.score] for f in found]


def _decode(raw) -> list[Finding] | Failure:
    if isinstance(raw, dict):
        return Failure(raw["stage"], raw["error"])
    return [Finding(e, s, t, score) for e, s, t, score in raw]


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

    def __init__(self, params: AnonymizeParams, names: list[str], analyzer_factory):
        import dataclasses

        # the actors are the parallelism: no forked spaCy workers inside them
        self.analyzer = analyzer_factory(dataclasses.replace(params, n_process=1))
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
        found = detect_batch(self.analyzer, items)
        findings = [{} for _ in range(n)]
        for k, result in enumerate(found):
            if result:  # a Failure, or a non-empty list of findings
                findings[k % n][columns[k // n]] = _encode(result)
        frame[SOURCE] = sources
        frame[FINDINGS] = [json.dumps(f) for f in findings]
        frame[FOUND] = [json.dumps(dict(self.analyzer.found_))] + ["{}"] * (n - 1) if n else []
        for name, column in zip(vars(self.analyzer.stats_), _STATS):
            frame[column] = _first_row_only(n, getattr(self.analyzer.stats_, name))
        return _with_schema(frame, table.schema)


def _merge_detected(text_columns: tuple[str, ...], n_sources: int, *blocks) -> tuple[dict[str, str], list[str], tuple[int, int]]:
    """Pass 2 task: `merge_values` in the local order, its identifying values, the input user ids and the two counts."""
    per_cell: dict[tuple[int, str], tuple[list, list]] = {}
    user_ids: set[str] = set()
    for block in blocks:
        frame = block.to_pandas()
        users = frame["user_id"] if "user_id" in frame else [None] * len(frame)
        for i, (source, raw, user) in enumerate(zip(frame[SOURCE], frame[FINDINGS], users)):
            if isinstance(user, str) and user:
                user_ids.add(user)
            for column, found in json.loads(raw).items():
                texts, findings = per_cell.setdefault((int(source), column), ([], []))
                texts.append(frame[column].iat[i])
                findings.append(_decode(found))
    texts, findings = [], []
    for source in range(n_sources):
        for column in text_columns:
            cell_texts, cell_findings = per_cell.get((source, column), ([], []))
            texts.extend(cell_texts)
            findings.extend(cell_findings)
    detected = merge_values(texts, findings)
    identifying = identifying_values(detected)
    return identifying, sorted(user_ids), (len(detected), len(identifying))


class _Replace:
    """Pass 3 actor: `Replacer.replace_batch` with the merged values, then the structured rules."""

    def __init__(self, params: AnonymizeParams, key: bytes, shared: list):
        import ray

        self.params, self.key = params, key
        self.replacer = Replacer(params, key=key, identifying=ray.get(shared[0]), sweep=params.sweep_detected_values)
        self._fallbacks_sent = 0

    def __call__(self, table) -> pd.DataFrame:
        batch = table.to_pandas()
        params, n = self.params, len(batch)
        frame = batch.drop(columns=list(_DETECTED))
        touched = [False] * n
        failed: list[Failure | None] = [None] * n
        swept = 0
        findings = [json.loads(f) for f in batch[FINDINGS]]
        columns = [c for c in params.text_columns if c in frame.columns]
        for column in columns:
            values = frame[column].tolist()
            found = [_decode(findings[i].get(column, [])) for i in range(n)]
            for i, done in enumerate(self.replacer.replace_batch(values, found)):
                if isinstance(done, Failure):
                    failed[i] = failed[i] or done
                    continue
                values[i] = done.text
                swept += done.swept
                touched[i] = touched[i] or bool(found[i]) or done.swept > 0
            frame[column] = pd.Series(values, index=frame.index, dtype=object)
        for i in (i for i in range(n) if failed[i]):
            touched[i] = False  # a quarantined record is not counted as written
            for column in columns:
                frame.at[frame.index[i], column] = None  # its text leaves the actor blank
        frame = anonymize_structured(frame, params.structured, self.key)
        new = self.replacer.surrogates.fallback_values_[self._fallbacks_sent:]
        self._fallbacks_sent += len(new)
        frame[SOURCE] = batch[SOURCE].to_numpy()
        frame[TOUCHED] = touched
        frame[SWEPT] = _first_row_only(n, swept)
        frame[FAILED_PASS] = [f.stage if f else "" for f in failed]
        frame[FAILED_ERROR] = [f.error if f else "" for f in failed]
        frame[FALLBACKS] = [json.dumps(new, ensure_ascii=False)] + ["[]"] * (n - 1) if n else []
        return _with_schema(frame, table.schema)


class _Reoccurrences:
    """Pass 4 actor: `count_reoccurrences` of the merged values and the input user ids in the rows written."""

    def __init__(self, shared: list):
        import ray

        identifying, user_ids = ray.get(shared)
        self.matcher = _word_matcher(identifying)  # the Replacer's matcher
        self.inputs = {"input": pd.DataFrame({"user_id": pd.Series(user_ids, dtype=object)})}

    def __call__(self, table) -> pd.DataFrame:
        frame = table.to_pandas()
        frame = frame[frame[FAILED_PASS] == ""].drop(columns=list(_REPLACED))
        return pd.DataFrame({"reoccurrences": [count_reoccurrences({"batch": frame}, self.matcher, self.inputs)]})


def _count_fallbacks(entities: tuple[str, ...], *blocks) -> dict[str, int]:
    """Distinct (entity, value) pairs that needed a surrogate fallback on any actor, per entity (counts only)."""
    pairs = {tuple(p) for block in blocks for raw in block.column(FALLBACKS).to_pylist() for p in json.loads(raw)}
    return dict(Counter(entity for entity, _ in pairs))


def _benchmark(params: AnonymizeParams, seed: int, *blocks) -> dict:
    """The labelled PII benchmark of the local engine, as a cluster task (its sentences are raw text)."""
    from stages.anonymize.benchmark import run_benchmark

    sentences = [t for block in blocks for t in block.column("text").to_pylist()]
    return run_benchmark(sentences, make_analyzer(params), cases=params.benchmark.cases,
                         person_cases=params.benchmark.person_cases, negative_cases=params.benchmark.negative_cases,
                         seed=seed)


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


def run_anonymize_ray(sources: dict[str, Path], params: AnonymizeParams, *, key: bytes, seed: int,
                      analyzer_factory: Callable[[AnonymizeParams], ReviewAnalyzer] = make_analyzer) -> AnonymizeResult:
    """Anonymize the Parquet splits on the connected Ray cluster; the same frames, quarantine and metrics as run_anonymize.

    `analyzer_factory` builds each detect actor's analyzer (as `run_anonymize`'s `analyzer` argument, it must be picklable).
    """
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
            _Detect, fn_constructor_kwargs={"params": params, "names": names, "analyzer_factory": analyzer_factory}, batch_size=params.ray.batch_size,
            batch_format="pyarrow", **actor_options(workers),
        ).materialize()
    analysis_seconds = time.perf_counter() - started
    counts = _to_pandas(detected.select_columns([FOUND, *_STATS]))  # counts only: no text
    stats = AnalysisStats(**{name: int(counts[column].sum()) if len(counts) else 0
                             for name, column in zip(vars(AnalysisStats()), _STATS)})
    found = Counter()
    for raw in counts[FOUND] if len(counts) else ():
        found.update(json.loads(raw))

    bench = None
    if params.benchmark.cases and params.benchmark.split in sources:
        text_refs = per_split[names.index(params.benchmark.split)].select_columns(["text"]).to_arrow_refs()
        bench = ray.remote(_benchmark).options(num_cpus=1, max_retries=MAX_RESTARTS).remote(params, seed, *text_refs)

    text_columns = [c for c in params.text_columns if c in detected.columns()]
    merge_columns = [SOURCE, FINDINGS, *text_columns] + (["user_id"] if "user_id" in detected.columns() else [])
    identifying_ref, user_ids_ref, counts_ref = ray.remote(_merge_detected).options(
        num_returns=3, max_retries=MAX_RESTARTS).remote(
        tuple(params.text_columns), len(names), *detected.select_columns(merge_columns).to_arrow_refs()
    )
    shared = [identifying_ref, user_ids_ref]  # nested refs: the actors fetch them; the driver never does
    anonymized = detected.map_batches(
        _Replace, fn_constructor_kwargs={"params": params, "key": key, "shared": shared},
        batch_size=params.ray.batch_size, batch_format="pyarrow", **actor_options(workers),
    ).materialize()
    reoccurrences = anonymized.map_batches(
        _Reoccurrences, fn_constructor_kwargs={"shared": shared}, batch_size=params.ray.batch_size,
        batch_format="pyarrow", **actor_options(workers),
    ).sum("reoccurrences")
    fallbacks = ray.remote(_count_fallbacks).options(max_retries=MAX_RESTARTS).remote(
        tuple(params.entities), *anonymized.select_columns([FALLBACKS]).to_arrow_refs())

    combined = _to_pandas(anonymized.drop_columns([FALLBACKS]))  # anonymized rows; failed rows' text already blank
    frames, splits, quarantined = {}, {}, []
    for index, name in enumerate(names):
        rows = combined[combined[SOURCE] == index]
        bad = (rows[FAILED_PASS] != "").to_numpy()
        helpers = [c for c in _REPLACED if c != FALLBACKS]
        frames[name] = rows[~bad].drop(columns=helpers).reset_index(drop=True)
        if bad.any():
            aside = rows[bad].drop(columns=helpers)
            for column in text_columns:
                aside[column] = None
            aside["quarantine_source"] = name
            aside["quarantine_pass"] = rows.loc[bad, FAILED_PASS].tolist()
            aside["quarantine_error"] = rows.loc[bad, FAILED_ERROR].tolist()
            quarantined.append(aside)
        splits[name] = (len(rows), int(rows.loc[~bad, TOUCHED].sum()), int(bad.sum()))
    quarantine = pd.concat(quarantined, ignore_index=True) if quarantined else empty_quarantine()
    distinct, distinct_identifying = ray.get(counts_ref)
    metrics = stage_metrics(
        params, stats=stats, found=found, distinct_values=int(distinct),
        distinct_swept=int(distinct_identifying) if params.sweep_detected_values else 0,
        swept=int(combined[SWEPT].sum()) if len(combined) else 0, fallbacks=ray.get(fallbacks),
        reoccurrences=int(reoccurrences or 0), splits=splits,
        seconds=time.perf_counter() - started, analysis_seconds=analysis_seconds,
    )
    if bench is not None:
        from stages.anonymize.benchmark import leak_estimate

        metrics["benchmark"] = ray.get(bench)
        metrics["leak_estimate"] = leak_estimate(metrics["benchmark"])
    return AnonymizeResult(frames=frames, metrics=metrics, quarantine=quarantine)
