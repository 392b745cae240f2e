"""Per-line parsing, validation and cleaning of raw reviews and metadata."""

from __future__ import annotations

import json

import pytest

from stages.extract.records import RecordRejected, clean_text, meta_key, parse_meta, parse_price, parse_review

T = 1_600_000_000_000
BASE = {"rating": 4.0, "text": "Works well with my phone.", "user_id": "U1", "timestamp": T}


def line(**changes) -> bytes:
    record = {**BASE, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"rating": 5, "text": "unterminated', "malformed_json"),  # cut-off JSON
        (b"[1, 2, 3]", "not_an_object"),  # valid JSON, not an object
        (b'"just a string"', "not_an_object"),
        (b'{"rating": 5, "text": "caf\xe9", "user_id": "U", "timestamp": 1}', "invalid_utf8"),  # latin-1 byte
        (line(text=...), "missing_text"),
        (line(rating=...), "missing_rating"),
        (line(rating=None), "missing_rating"),
        (line(rating=0), "invalid_rating"),  # below 1
        (line(rating=6.0), "invalid_rating"),  # above 5
        (line(rating=3.5), "invalid_rating"),  # not a whole star
        (line(rating="5"), "invalid_rating"),  # a string
        (line(rating=True), "invalid_rating"),  # bool is not a number here
        (line(user_id=...), "missing_user_id"),
        (line(user_id=""), "missing_user_id"),
        (line(timestamp=...), "missing_timestamp"),
        (line(timestamp=1_600_000_000), "timestamp_out_of_range"),  # seconds, not ms
        (line(timestamp=1_600_000_000_000_000), "timestamp_out_of_range"),  # microseconds
        (line(timestamp="2020-09-13"), "wrong_type"),
        (line(text=42), "wrong_type"),
        (line(user_id=7), "wrong_type"),
        (line(title=["a"]), "wrong_type"),
        (line(helpful_vote="many"), "wrong_type"),
        (line(helpful_vote=-1), "wrong_type"),
        (line(verified_purchase="yes"), "wrong_type"),
        (line(images="a.jpg"), "wrong_type"),
    ],
)
def test_bad_lines_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(RecordRejected) as info:
        parse_review(raw)
    assert info.value.reason == reason


def test_optional_fields_missing_are_null_never_invented():
    review = parse_review(line())
    assert (review.title, review.asin, review.parent_asin) == (None, None, None)
    assert (review.helpful_vote, review.verified_purchase, review.n_images) == (None, None, 0)
    assert (review.rating, review.user_id, review.timestamp) == (4, "U1", T)


def test_full_record_is_normalised():
    review = parse_review(
        line(title="Good &amp; cheap", images=[{}, {}, {}], asin="B1", parent_asin="P1",
             helpful_vote=2, verified_purchase=True, rating=5.0)
    )
    assert review.title == "Good & cheap" and review.n_images == 3 and review.rating == 5
    assert (review.asin, review.parent_asin, review.helpful_vote, review.verified_purchase) == ("B1", "P1", 2, True)


def test_review_id_is_stable_and_content_sensitive():
    a, b = parse_review(line()), parse_review(line())
    assert a.review_id == b.review_id and a.digest == b.digest and len(a.review_id) == 16
    assert parse_review(line(text="Different text entirely.")).review_id != a.review_id


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Good.<br />Really good.", "Good.\nReally good."),  # HTML line break
        ("One<br><br/>Two", "One\n\nTwo"),  # paragraph break kept as one blank line
        ("A<BR>B", "A\nB"),  # upper-case tag
        ("Tom &amp; Jerry &quot;fit&quot; &#39;ok&#39;", "Tom & Jerry \"fit\" 'ok'"),  # entities
        ("  spaced \t out\u00a0text  ", "spaced out text"),  # tabs, NBSP, edges
        ("a \n\n\n\n b", "a\n\nb"),  # runs of blank lines
        ("x < y and a&b", "x < y and a&b"),  # not HTML: unchanged
        ("<br/>", ""),  # nothing left
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


@pytest.mark.parametrize(
    ("raw", "price"),
    [
        (12.5, 12.5),
        (3, 3.0),
        ("$1,299.99", 1299.99),
        ("from $5", 5.0),
        ("None", None),
        (None, None),
        (True, None),
        (-4.0, None),
        (float("nan"), None),
    ],
)
def test_parse_price(raw, price):
    assert parse_price(raw) == price


def test_meta_joins_on_parent_asin_then_asin():
    assert meta_key({"parent_asin": "P1", "asin": "A1"}) == "P1"
    assert meta_key({"asin": "A1"}) == "A1"
    assert meta_key({"parent_asin": 5}) is None
    meta = parse_meta({"title": "Case &amp; Cover", "main_category": "", "price": "$3"})
    assert (meta.product_title, meta.main_category, meta.price) == ("Case & Cover", None, 3.0)
