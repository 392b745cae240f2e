"""run_extract on the hand-written fixtures: accounting, join, splits, sources and failures."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import json
import shutil
import threading
from pathlib import Path

import pandas as pd
import pytest

from stages.errors import PipelineInputError
from stages.extract import ExtractParams, SplitParams, run_extract
from stages.schema import COLUMNS
from tests.conftest import FIXTURES

REVIEWS = FIXTURES / "reviews_small.jsonl"
META = FIXTURES / "meta_small.jsonl"
T = 1_600_000_000_000


def make_params(**changes) -> ExtractParams:
    params = ExtractParams(
        reviews=str(REVIEWS), meta=None, max_rows=None, chunk_rows=1000, min_text_chars=10,
        categories=(), max_reject_rate=1.0, split=SplitParams(train=0.8, val=0.1, test=0.1),
    )
    return dataclasses.replace(params, **changes)


def extract(tmp_path: Path, **changes):
    out = tmp_path / "extracted"
    result = run_extract(make_params(**changes), seed=3, out_dir=out, rejects_path=out / "rejects.jsonl")
    frames = {s: pd.read_parquet(out / f"{s}.parquet") for s in ("train", "val", "test")}
    return result, frames, out


def write_reviews(path: Path, n: int, *, users: int = 50, dup_every: int = 0) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for i in range(n):
            j = i - 1 if dup_every and i % dup_every == 0 and i else i
            noise = hashlib.sha256(str(j).encode()).hexdigest()  # keeps gzip from shrinking it to nothing
            record = {"rating": 1 + j % 5, "text": f"Review number {j} about a phone case {noise}.", "asin": f"B{j % 97}",
                      "user_id": f"U{j % users}", "timestamp": T + j}
            fh.write(json.dumps(record) + "\n")
    return path


def test_every_line_is_accounted_for(tmp_path):
    result, frames, _ = extract(tmp_path)
    m = result.metrics
    assert (m["rows_read"], m["rows_kept"], m["rows_rejected"], m["rows_duplicate"], m["rows_filtered"]) == (18, 5, 10, 1, 2)
    assert m["blank_lines"] == 1
    assert m["rejected"] == {
        "invalid_utf8": 1, "malformed_json": 1, "not_an_object": 1, "missing_text": 1, "missing_rating": 1,
        "invalid_rating": 2, "missing_user_id": 1, "missing_timestamp": 0, "timestamp_out_of_range": 1,
        "wrong_type": 1,
    }
    assert m["filtered"] == {"empty_text": 1, "too_short": 1, "category": 0}
    assert sum(len(f) for f in frames.values()) == 5
    assert m["ratings"] == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1}


def test_rejects_keep_the_whole_line_with_source_line_and_reason(tmp_path):
    _, _, out = extract(tmp_path)
    rejects = [json.loads(l) for l in (out / "rejects.jsonl").read_text().splitlines()]
    by_line = {r["line"]: r for r in rejects}
    assert sorted(by_line) == [4, 5, 6, 7, 8, 9, 10, 11, 12, 19]
    assert by_line[4]["reason"] == "malformed_json" and by_line[4]["raw"].startswith('{"rating": 5, "text": "unterm')
    assert by_line[12]["reason"] == "invalid_utf8" and "caf\\xe9" in by_line[12]["raw"]
    assert all(r["source"] == str(REVIEWS) for r in rejects)


def test_outputs_follow_the_record_schema(tmp_path):
    _, frames, _ = extract(tmp_path)
    frame = pd.concat(frames.values())
    assert tuple(frame.columns) == COLUMNS
    assert str(frame["timestamp"].dtype) == "datetime64[ms, UTC]" and str(frame["rating"].dtype) == "int8"
    first = frame.set_index("asin").loc["B0CASE0001"]
    assert first["text"] == 'Fits my phone perfectly.\n\nThe buttons still click "nicely".'
    assert first["title"] == "Great case & screen guard" and first["n_images"] == 2
    assert frame["product_title"].isna().all() and frame["price"].isna().all()  # no metadata given
    assert set(frame["split"]) <= {"train", "val", "test"}
    assert all((f["split"] == s).all() for s, f in frames.items())


def test_metadata_join_on_parent_asin_and_asin(tmp_path):
    result, frames, out = extract(tmp_path, meta=str(META))
    frame = pd.concat(frames.values()).set_index("asin")
    assert frame.loc["B0CASE0001", "price"] == 12.99
    assert frame.loc["B0CASE0001", "main_category"] == "Cell Phones & Accessories"
    assert frame.loc["A4", "product_title"] == "Screen Protector 2-pack"  # joined on asin
    assert pd.isna(frame.loc["A4", "price"])  # "None" in the metadata is no price
    assert result.metrics["meta"] == {"rows_read": 6, "rows_rejected": 1, "reviews_joined": 5}
    rejects = [json.loads(l) for l in (out / "rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects if r["source"] == str(META)] == [4]
    assert set(result.input_hashes) == {"reviews", "meta"}


def test_category_filter_is_counted(tmp_path):
    result, frames, _ = extract(tmp_path, meta=str(META), categories=("Cell Phones & Accessories",))
    assert result.metrics["filtered"]["category"] == 1
    assert result.metrics["rows_kept"] == 4
    assert set(pd.concat(frames.values())["main_category"]) == {"Cell Phones & Accessories"}


def test_split_by_user_is_disjoint_and_deterministic(tmp_path):
    source = write_reviews(tmp_path / "many.jsonl", 2000, users=400)
    _, frames, _ = extract(tmp_path / "a", reviews=str(source))
    users = {s: set(f["user_id"]) for s, f in frames.items()}
    assert not (users["train"] & users["val"] or users["train"] & users["test"] or users["val"] & users["test"])
    assert 0.7 < len(users["train"]) / 400 < 0.9  # fractions hold approximately
    _, again, _ = extract(tmp_path / "b", reviews=str(source))
    assert all(frames[s]["review_id"].tolist() == again[s]["review_id"].tolist() for s in frames)


def test_duplicates_are_found_across_chunks(tmp_path):
    source = write_reviews(tmp_path / "dups.jsonl", 1000, dup_every=7)
    result, frames, _ = extract(tmp_path, reviews=str(source), chunk_rows=100)
    assert result.metrics["rows_duplicate"] == 142
    assert result.metrics["rows_kept"] == 1000 - 142
    assert pd.concat(frames.values())["review_id"].is_unique


def test_gzip_input_gives_the_same_records(tmp_path):
    packed = tmp_path / "reviews.jsonl.gz"
    packed.write_bytes(gzip.compress(REVIEWS.read_bytes()))
    _, plain, _ = extract(tmp_path / "plain")
    _, gz, _ = extract(tmp_path / "gz", reviews=str(packed))
    assert all(plain[s].equals(gz[s]) for s in plain)


def test_max_rows_stops_reading(tmp_path):
    source = write_reviews(tmp_path / "r.jsonl", 500)
    result, _, _ = extract(tmp_path, reviews=str(source), max_rows=120)
    assert result.metrics["rows_read"] == 120 and result.metrics["truncated_at_max_rows"] == 1
    result, _, _ = extract(tmp_path / "all", reviews=str(source), max_rows=500)
    assert result.metrics["truncated_at_max_rows"] == 0


@pytest.fixture
def http_dir(tmp_path):
    """A loopback HTTP server over a temporary folder (no network leaves this machine)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_source_is_streamed_and_capped(tmp_path, http_dir):
    root, base = http_dir
    source = write_reviews(root / "big.jsonl.gz", 100_000)
    assert source.stat().st_size > 4_000_000
    result, frames, _ = extract(tmp_path, reviews=f"{base}/big.jsonl.gz", max_rows=200)
    assert result.metrics["rows_read"] == 200
    assert result.metrics["bytes_read"] < source.stat().st_size / 4  # stopped early, not downloaded whole
    local, local_frames, _ = extract(tmp_path / "local", reviews=str(source), max_rows=200)
    assert all(frames[s].equals(local_frames[s]) for s in frames)


def assert_nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "extracted").exists()
    assert not list(tmp_path.glob(".extracted.*"))  # no staging left behind


@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        # a path that does not exist
        (lambda d: str(d / "nope.jsonl.gz"), r"extract\.reviews: .*nope\.jsonl\.gz does not exist or is not a file\. Point it at"),
        # an empty file
        (lambda d: str(_write(d / "empty.jsonl", b"")), r"holds no review lines"),
        # only blank lines
        (lambda d: str(_write(d / "blank.jsonl", b"\n\n  \n")), r"holds no review lines"),
        # a gzip file cut short
        (lambda d: str(_write(d / "cut.jsonl.gz", gzip.compress(REVIEWS.read_bytes() * 50)[:-200])),
         r"ends before the gzip stream does: the file is truncated\. Download it again"),
        # gzip magic followed by garbage
        (lambda d: str(_write(d / "bad.jsonl.gz", b"\x1f\x8b" + b"\x00" * 64)), r"is not a valid gzip file"),
        # nothing listening on the port: the offline case
        (lambda d: "http://127.0.0.1:9/reviews.jsonl.gz",
         r"cannot reach http://127\.0\.0\.1:9/reviews\.jsonl\.gz .*dvc exp run -S extract\.reviews=/abs/path"),
    ],
)
def test_bad_sources_stop_with_a_clear_error_and_write_nothing(tmp_path, make_source, message):
    with pytest.raises(PipelineInputError, match=message):
        extract(tmp_path, reviews=make_source(tmp_path))
    assert_nothing_written(tmp_path)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_reject_rate_above_the_limit_stops_the_stage(tmp_path):
    with pytest.raises(PipelineInputError, match=r"10 of 18 lines \(55\.6%\) .* above extract\.max_reject_rate=0\.05 \(.*invalid_rating=2"):
        extract(tmp_path, max_reject_rate=0.05)
    assert_nothing_written(tmp_path)


def test_nothing_kept_is_an_error(tmp_path):
    with pytest.raises(PipelineInputError, match=r"extract kept no reviews .* read=18 kept=0"):
        extract(tmp_path, meta=str(META), categories=("Books",))
    assert_nothing_written(tmp_path)


def test_missing_meta_file_is_named(tmp_path):
    with pytest.raises(PipelineInputError, match=r"extract\.meta: .*meta\.jsonl does not exist"):
        extract(tmp_path, meta=str(tmp_path / "meta.jsonl"))
    assert_nothing_written(tmp_path)


def test_failed_run_keeps_previous_outputs_untouched(tmp_path):
    _, _, out = extract(tmp_path)
    before = (out / "train.parquet").read_bytes()
    with pytest.raises(PipelineInputError):
        extract(tmp_path, max_reject_rate=0.0)
    assert (out / "train.parquet").read_bytes() == before
    shutil.rmtree(out)
