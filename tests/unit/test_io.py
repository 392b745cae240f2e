"""Atomic writes, staging and hashing."""

from __future__ import annotations

import pandas as pd
import pytest

from stages.errors import PipelineInputError
from stages.io import atomic_path, commit_files, file_sha256, read_table, staging_dir, write_json


def test_atomic_path_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_on_success(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    write_json(target, {"b": 1, "a": 2})
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_staging_dir_is_removed_and_commit_moves_files(tmp_path):
    final = tmp_path / "final"
    with staging_dir(final) as scratch:
        (scratch / "a.txt").write_text("a")
        commit_files({scratch / "a.txt": final / "a.txt"})
    assert (final / "a.txt").read_text() == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]


def test_file_sha256_of_files_and_directories(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"abc")
    assert file_sha256(tmp_path / "d" / "x") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    before = file_sha256(tmp_path / "d")
    (tmp_path / "d" / "y").write_bytes(b"")
    assert file_sha256(tmp_path / "d") != before


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_read_table_formats_keep_row_order(tmp_path, suffix):
    frame = pd.DataFrame({"text": ["b", "a", "c"], "rating": [2, 1, 3]})
    path = tmp_path / f"t{suffix}"
    {".parquet": lambda: frame.to_parquet(path), ".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     ".csv": lambda: frame.to_csv(path, index=False)}[suffix]()
    assert read_table(path)["text"].tolist() == ["b", "a", "c"]


def test_read_table_errors(tmp_path):
    with pytest.raises(PipelineInputError, match="does not exist"):
        read_table(tmp_path / "missing.parquet")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(PipelineInputError, match=r"unsupported file type '\.xlsx'; use one of"):
        read_table(tmp_path / "t.xlsx")
