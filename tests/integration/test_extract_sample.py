"""extract on the shared real sample: the Electronics file alone, and the multi-category pair."""

from __future__ import annotations

import pandas as pd
import pytest

from stages.extract import ExtractParams, SplitParams, run_extract
from stages.extract.records import clean_text

pytestmark = pytest.mark.integration


def params(sample_dir, **changes) -> ExtractParams:
    base = dict(
        reviews=str(sample_dir / "Electronics.10k.jsonl.gz"), meta=None, max_rows=None, chunk_rows=2000,
        min_text_chars=10, categories=(), max_reject_rate=0.05, split=SplitParams(train=0.8, val=0.1, test=0.1),
    )
    return ExtractParams(**{**base, **changes})


def multi_category(sample_dir, **changes) -> ExtractParams:
    """The multi-category reviews with their product metadata."""
    return params(
        sample_dir,
        reviews=str(sample_dir / "multi_category.2.7k.reviews.jsonl.gz"),
        meta=str(sample_dir / "multi_category.2.7k.meta.jsonl.gz"),
        **changes,
    )


def load(out):
    return pd.concat([pd.read_parquet(out / f"{s}.parquet") for s in ("train", "val", "test")])


def test_electronics_sample(sample_dir, tmp_path):
    out = tmp_path / "extracted"
    result = run_extract(params(sample_dir), seed=42, out_dir=out, rejects_path=out / "rejects.jsonl")
    m = result.metrics
    # The file holds 10,000 well-formed records (see the sample's README).
    assert m["rows_read"] == 10_000 and m["rows_rejected"] == 0
    assert m["rows_read"] == m["rows_kept"] + m["rows_duplicate"] + m["rows_filtered"]
    assert m["filtered"]["too_short"] > 0 and m["filtered"]["category"] == 0
    frame = load(out)
    assert len(frame) == m["rows_kept"] and frame["review_id"].is_unique
    assert frame["title"].isna().all() and frame["parent_asin"].isna().all()  # absent from this file: null
    assert frame["helpful_vote"].notna().all() and frame["asin"].notna().all()
    assert (frame["text"].str.len() >= 10).all()
    assert not frame["text"].str.contains("<br", case=False).any()
    per_split_users = frame.groupby("user_id")["split"].nunique()
    assert (per_split_users == 1).all()  # no user in two splits
    assert frame["user_id"].nunique() <= 1561
    assert 0.6 < m["rating_share"]["5"] < 0.75  # ratings skewed to 5 stars (67% in the raw file)
    assert (out / "rejects.jsonl").read_text() == ""


def test_multi_category_reviews_with_metadata(sample_dir, tmp_path):
    out = tmp_path / "extracted"
    p = multi_category(sample_dir)
    m = run_extract(p, seed=42, out_dir=out, rejects_path=out / "rejects.jsonl").metrics
    assert m["rows_read"] == 2764
    assert m["rows_read"] == m["rows_kept"] + m["rows_rejected"] + m["rows_duplicate"] + m["rows_filtered"]
    assert m["meta"]["rows_read"] == 2610 and m["meta"]["rows_rejected"] == 0
    frame = load(out)
    assert frame["title"].notna().mean() > 0.95 and frame["parent_asin"].notna().all()
    assert frame["product_title"].notna().mean() > 0.9
    assert frame["main_category"].nunique() > 15
    assert m["meta"]["reviews_joined"] == len(frame)  # every reviewed product has a metadata line


def test_category_filter_keeps_cell_phones_only(sample_dir, tmp_path):
    out = tmp_path / "extracted"
    p = multi_category(sample_dir, categories=("Cell Phones & Accessories",))
    m = run_extract(p, seed=42, out_dir=out, rejects_path=out / "rejects.jsonl").metrics
    frame = load(out)
    assert set(frame["main_category"]) == {"Cell Phones & Accessories"}
    # An independent count from the raw files: Cell Phones reviews whose cleaned text is long enough.
    raw = pd.read_json(sample_dir / "multi_category.2.7k.reviews.jsonl.gz", lines=True)
    meta = pd.read_json(sample_dir / "multi_category.2.7k.meta.jsonl.gz", lines=True)
    joined = raw.merge(meta[["parent_asin", "main_category"]], on="parent_asin", how="left")
    phones = joined[joined["main_category"] == "Cell Phones & Accessories"]
    assert len(phones) == 112
    long_enough = phones["text"].map(clean_text).str.len() >= 10
    assert m["rows_kept"] == long_enough.sum() - m["rows_duplicate"]
    assert m["filtered"]["category"] == 2764 - 112 - _non_category_drops(joined, m)


def _non_category_drops(joined: pd.DataFrame, m: dict) -> int:
    """Reviews outside Cell Phones that an earlier step (dedup, text filters) already removed."""
    others = joined[joined["main_category"] != "Cell Phones & Accessories"]
    return int((others["text"].map(clean_text).str.len() < 10).sum()) + m["rows_duplicate"] + m["rows_rejected"]
