"""File IO shared by the stages: atomic writes, hashing and tabular reads."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from stages.errors import PipelineInputError

TABLE_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary files
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def staging_dir(final_dir: str | Path) -> Iterator[Path]:
    """Yield a scratch directory next to `final_dir`, removed whatever happens.

    Stages write every output there first and `commit_files` moves them into place
    at the end, so a failed run never leaves half-written outputs behind.
    """
    final_dir = Path(final_dir)
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", suffix=".staging", dir=final_dir.parent))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def commit_files(moves: dict[Path, Path]) -> None:
    """Move finished files (staged path -> final path) into place, each atomically."""
    for src, dst in moves.items():
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON atomically, with sorted keys so that diffs stay readable."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics as one level of dotted keys, the way DVC and MLflow show them."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, name + "."))
        else:
            flat[name] = value
    return flat


def is_number(value: Any) -> bool:
    """A real measurement: an int or float, not a bool and not NaN."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, or of every file below a directory in sorted order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a Parquet, JSONL or CSV file into a DataFrame, keeping row order."""
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(f"input file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".jsonl", ".json"):
        return pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
    if suffix == ".csv":
        return pd.read_csv(path, keep_default_na=True)
    raise PipelineInputError(f"{path}: unsupported file type '{suffix}'; use one of {list(TABLE_SUFFIXES)}.")
