"""run_extract: stream raw reviews into clean, user-split Parquet files.

Memory is bounded by `chunk_rows` whatever the input size: lines are parsed a chunk
at a time, exact duplicates are found with a sorted array of 64-bit digests (8 bytes
per kept review), and the split is a keyed hash of the user id, so no per-user state
is held. With metadata, chunks are first spooled to a scratch Parquet file while the
needed product keys are collected; the metadata is then streamed once, keeping only
those keys, and the spool is joined and split.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stages.errors import PipelineInputError
from stages.extract.params import ExtractParams, SplitParams
from stages.extract.records import (
    REJECT_REASONS,
    ProductMeta,
    RecordRejected,
    Review,
    load_object,
    meta_key,
    parse_meta,
    parse_review,
)
from stages.extract.sources import SourceStream, open_source
from stages.io import commit_files, staging_dir
from stages.schema import RATINGS, RECORD_SCHEMA, SPLITS

FILTER_REASONS = ("empty_text", "too_short", "category")
_BASE_FIELDS = [f for f in RECORD_SCHEMA if f.name not in ("product_title", "main_category", "price", "split")]
_BASE_SCHEMA = pa.schema(_BASE_FIELDS)


@dataclass
class ExtractResult:
    """What run_extract reports: the metrics and the SHA-256 of the bytes it read per source."""

    metrics: dict
    input_hashes: dict[str, str]


@dataclass
class _Accounting:
    read: int = 0
    blank_lines: int = 0
    duplicates: int = 0
    truncated_at_max_rows: bool = False
    rejected: Counter = field(default_factory=Counter)
    filtered: Counter = field(default_factory=Counter)
    splits: Counter = field(default_factory=Counter)
    ratings: Counter = field(default_factory=Counter)
    meta_read: int = 0
    meta_joined: int = 0
    meta_rejected: Counter = field(default_factory=Counter)
    first_rejects: list = field(default_factory=list)

    @property
    def kept(self) -> int:
        return sum(self.splits.values())


class _RejectLog:
    """Appends rejected lines, whole, to rejects.jsonl with their source, line and reason."""

    def __init__(self, path: Path, accounting: _Accounting):
        self._handle = open(path, "wb")
        self._accounting = accounting

    def add(self, source: str, line_no: int, rejected: RecordRejected, line: bytes, *, counter: Counter) -> None:
        counter[rejected.reason] += 1
        if len(self._accounting.first_rejects) < 5:
            self._accounting.first_rejects.append(f"{source}:{line_no} {rejected.reason}")
        record = {
            "source": source,
            "line": line_no,
            "reason": rejected.reason,
            "detail": rejected.detail,
            "raw": line.decode("utf-8", "backslashreplace"),
        }
        self._handle.write(orjson.dumps(record) + b"\n")

    def close(self) -> None:
        self._handle.close()


class _SeenDigests:
    """Exact-duplicate detection over 64-bit digests held in one sorted numpy array."""

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)

    def first_occurrences(self, digests: np.ndarray) -> np.ndarray:
        """Mask of digests seen neither earlier in this batch nor in any earlier batch."""
        mask = np.zeros(len(digests), dtype=bool)
        mask[np.unique(digests, return_index=True)[1]] = True
        if len(self._sorted):
            pos = np.minimum(np.searchsorted(self._sorted, digests), len(self._sorted) - 1)
            mask &= self._sorted[pos] != digests
        self._sorted = np.union1d(self._sorted, digests[mask])
        return mask


class _SplitWriters:
    """One Parquet writer per split, each chunk written as a row group."""

    def __init__(self, directory: Path):
        self.paths = {split: directory / f"{split}.parquet" for split in SPLITS}
        self._writers = {split: pq.ParquetWriter(path, RECORD_SCHEMA) for split, path in self.paths.items()}

    def write(self, table: pa.Table) -> None:
        for split in SPLITS:
            part = table.filter(pc.equal(table["split"], split))
            if part.num_rows:
                self._writers[split].write_table(part)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


def assign_splits(user_ids: list[str], seed: int, fractions: SplitParams) -> list[str]:
    """Split by a keyed hash of the user id, so a user's reviews always land together."""
    key = seed.to_bytes(8, "little")
    cut_train, cut_val = fractions.train, fractions.train + fractions.val
    cache: dict[str, str] = {}
    out = []
    for user in user_ids:
        split = cache.get(user)
        if split is None:
            u = int.from_bytes(hashlib.blake2b(user.encode(), digest_size=8, key=key).digest(), "little") / 2**64
            split = "train" if u < cut_train else "val" if u < cut_val else "test"
            cache[user] = split
        out.append(split)
    return out


def run_extract(params: ExtractParams, *, seed: int, out_dir: Path, rejects_path: Path) -> ExtractResult:
    """Extract, clean, deduplicate, filter and split the reviews; write splits and rejects atomically."""
    started = time.perf_counter()
    acc = _Accounting()
    hashes: dict[str, str] = {}
    with staging_dir(out_dir) as scratch:
        rejects = _RejectLog(scratch / "rejects.jsonl", acc)
        writers = _SplitWriters(scratch)
        try:
            with open_source(params.reviews, param="extract.reviews", desc="reviews") as stream:
                spool = _spool_or_write(stream, params, seed, acc, rejects, writers, scratch)
                hashes["reviews"] = stream.sha256
                bytes_read = stream.bytes_read
            _check_reviews(params, acc)
            if spool is not None:
                lookup, hashes["meta"] = _load_meta(params.meta, spool[1], acc, rejects)
                for batch in pq.ParquetFile(spool[0]).iter_batches(batch_size=params.chunk_rows):
                    _write_final(pa.Table.from_batches([batch]), lookup, params, seed, acc, writers)
        finally:
            writers.close()
            rejects.close()
        if acc.kept == 0:
            raise PipelineInputError(
                f"extract kept no reviews from {params.reviews}: {_accounting_line(acc)}. "
                "Loosen extract.min_text_chars or extract.categories."
            )
        moves = {path: out_dir / path.name for path in writers.paths.values()}
        moves[scratch / "rejects.jsonl"] = rejects_path
        commit_files(moves)
    seconds = time.perf_counter() - started
    return ExtractResult(metrics=_metrics(acc, seconds, bytes_read), input_hashes=hashes)


def _spool_or_write(
    stream: SourceStream,
    params: ExtractParams,
    seed: int,
    acc: _Accounting,
    rejects: _RejectLog,
    writers: _SplitWriters,
    scratch: Path,
) -> tuple[Path, set[str]] | None:
    """Read all review chunks; join-free runs write splits directly, otherwise spool and collect keys."""
    seen = _SeenDigests()
    spool_writer, keys = None, set()
    if params.meta is not None:
        spool_path = scratch / "spool.parquet"
        spool_writer = pq.ParquetWriter(spool_path, _BASE_SCHEMA)
    try:
        for chunk in _review_chunks(stream, params, acc, rejects):
            table = _dedupe_and_filter(chunk, seen, params, acc)
            if spool_writer is None:
                _write_final(table, None, params, seed, acc, writers)
            else:
                spool_writer.write_table(table)
                keys.update(_join_keys(table))
    finally:
        if spool_writer is not None:
            spool_writer.close()
    return None if spool_writer is None else (spool_path, keys)


def _review_chunks(
    stream: SourceStream, params: ExtractParams, acc: _Accounting, rejects: _RejectLog
) -> Iterator[list[Review]]:
    chunk: list[Review] = []
    for line_no, line in enumerate(stream, 1):
        if not line.strip():
            acc.blank_lines += 1
            continue
        if params.max_rows is not None and acc.read >= params.max_rows:
            acc.truncated_at_max_rows = True
            break
        acc.read += 1
        try:
            chunk.append(parse_review(line))
        except RecordRejected as rejected:
            rejects.add(stream.name, line_no, rejected, line, counter=acc.rejected)
            continue
        if len(chunk) >= params.chunk_rows:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _dedupe_and_filter(chunk: list[Review], seen: _SeenDigests, params: ExtractParams, acc: _Accounting) -> pa.Table:
    keep = seen.first_occurrences(np.fromiter((r.digest for r in chunk), dtype=np.uint64, count=len(chunk)))
    acc.duplicates += int((~keep).sum())
    rows = []
    for review, unique in zip(chunk, keep):
        if not unique:
            continue
        if not review.text:
            acc.filtered["empty_text"] += 1
        elif len(review.text) < params.min_text_chars:
            acc.filtered["too_short"] += 1
        else:
            rows.append(review)
    columns = {name: [getattr(r, name) for r in rows] for name in _BASE_SCHEMA.names}
    columns["timestamp"] = pa.array(columns["timestamp"], pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    return pa.table(columns, schema=_BASE_SCHEMA)


def _join_keys(table: pa.Table) -> list[str | None]:
    return [p or a for p, a in zip(table["parent_asin"].to_pylist(), table["asin"].to_pylist())]


def _write_final(
    table: pa.Table,
    lookup: dict[str, ProductMeta] | None,
    params: ExtractParams,
    seed: int,
    acc: _Accounting,
    writers: _SplitWriters,
) -> None:
    """Join metadata, apply the category filter, assign splits and write."""
    n = table.num_rows
    metas = [None] * n if lookup is None else [lookup.get(k) for k in _join_keys(table)]
    acc.meta_joined += n - metas.count(None)
    table = table.append_column("product_title", pa.array([m and m.product_title for m in metas], pa.string()))
    table = table.append_column("main_category", pa.array([m and m.main_category for m in metas], pa.string()))
    table = table.append_column("price", pa.array([m and m.price for m in metas], pa.float64()))
    if params.categories:
        keep = pc.is_in(table["main_category"], value_set=pa.array(params.categories))
        keep = pc.fill_null(keep, False)
        table = table.filter(keep)
        acc.filtered["category"] += n - table.num_rows
    splits = assign_splits(table["user_id"].to_pylist(), seed, params.split)
    table = table.append_column("split", pa.array(splits, pa.string())).select(RECORD_SCHEMA.names)
    acc.splits.update(splits)
    acc.ratings.update(table["rating"].to_pylist())
    writers.write(table.cast(RECORD_SCHEMA))


def _load_meta(source: str, keys: set, acc: _Accounting, rejects: _RejectLog) -> tuple[dict, str]:
    """Stream the metadata once, keeping only the products the reviews refer to."""
    lookup: dict[str, ProductMeta] = {}
    with open_source(source, param="extract.meta", desc="metadata") as stream:
        for line_no, line in enumerate(stream, 1):
            if not line.strip():
                continue
            acc.meta_read += 1
            try:
                obj = load_object(line)
            except RecordRejected as rejected:
                rejects.add(stream.name, line_no, rejected, line, counter=acc.meta_rejected)
                continue
            key = meta_key(obj)
            if key in keys and key not in lookup:
                lookup[key] = parse_meta(obj)
        digest = stream.sha256
    if acc.meta_read == 0:
        raise PipelineInputError(f"extract.meta: {source} holds no metadata lines; fix the file or set extract.meta to null.")
    return lookup, digest


def _check_reviews(params: ExtractParams, acc: _Accounting) -> None:
    if acc.read == 0:
        raise PipelineInputError(
            f"extract.reviews: {params.reviews} holds no review lines. Point it at a non-empty "
            ".jsonl/.jsonl.gz file of Amazon Reviews 2023 records."
        )
    rejected = sum(acc.rejected.values())
    rate = rejected / acc.read
    if rate > params.max_reject_rate:
        reasons = ", ".join(f"{r}={n}" for r, n in acc.rejected.most_common())
        raise PipelineInputError(
            f"extract.reviews: {rejected} of {acc.read} lines ({rate:.1%}) of {params.reviews} were rejected, "
            f"above extract.max_reject_rate={params.max_reject_rate:g} ({reasons}; first: "
            f"{'; '.join(acc.first_rejects)}). Check that the file is Amazon Reviews 2023 JSONL, "
            "or raise extract.max_reject_rate."
        )


def _accounting_line(acc: _Accounting) -> str:
    return (
        f"read={acc.read} kept={acc.kept} rejected={sum(acc.rejected.values())} "
        f"duplicates={acc.duplicates} filtered={sum(acc.filtered.values())}"
    )


def _metrics(acc: _Accounting, seconds: float, bytes_read: int) -> dict:
    rejected, filtered = sum(acc.rejected.values()), sum(acc.filtered.values())
    # Nothing is dropped silently: every line read is accounted for exactly once.
    assert acc.read == acc.kept + rejected + acc.duplicates + filtered, _accounting_line(acc)
    metrics = {
        "rows_read": acc.read,
        "rows_kept": acc.kept,
        "rows_rejected": rejected,
        "rows_duplicate": acc.duplicates,
        "rows_filtered": filtered,
        "blank_lines": acc.blank_lines,
        "truncated_at_max_rows": int(acc.truncated_at_max_rows),
        "reject_rate": rejected / acc.read,
        "rejected": {reason: acc.rejected[reason] for reason in REJECT_REASONS},
        "filtered": {reason: acc.filtered[reason] for reason in FILTER_REASONS},
        "splits": {split: acc.splits[split] for split in SPLITS},
        "ratings": {str(r): acc.ratings[r] for r in RATINGS},
        "rating_share": {str(r): acc.ratings[r] / acc.kept for r in RATINGS},
        "seconds": round(seconds, 3),
        "rows_per_second": round(acc.read / seconds, 1) if seconds else 0.0,
        "bytes_read": bytes_read,
    }
    if acc.meta_read:
        metrics["meta"] = {
            "rows_read": acc.meta_read,
            "rows_rejected": sum(acc.meta_rejected.values()),
            "reviews_joined": acc.meta_joined,
        }
    return metrics
