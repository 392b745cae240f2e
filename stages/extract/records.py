"""Parsing, validation and cleaning of single review and metadata lines.

This is the per-line hot path of extract, so it avoids pandas and allocates little:
one orjson parse, a handful of type checks, and regex cleaning only when needed.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

# Amazon opened in July 1995; a review after 2100 is a unit error (seconds vs ms, µs).
MIN_TIMESTAMP_MS = 804_556_800_000  # 1995-07-01
MAX_TIMESTAMP_MS = 4_102_444_800_000  # 2100-01-01

REJECT_REASONS = (
    "invalid_utf8",
    "malformed_json",
    "not_an_object",
    "missing_text",
    "missing_rating",
    "invalid_rating",
    "missing_user_id",
    "missing_timestamp",
    "timestamp_out_of_range",
    "wrong_type",
)

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_PRICE = re.compile(r"\d[\d,]*(?:\.\d+)?")


class RecordRejected(Exception):
    """A line that cannot become a record; carries the reject reason and a short detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Review(NamedTuple):
    """One validated, cleaned review, before metadata join and split assignment.

    A NamedTuple rather than a frozen dataclass: one is built per line, and a frozen
    dataclass's __init__ costs several times more.
    """

    review_id: str
    digest: int  # 64-bit content hash, for exact-duplicate detection
    user_id: str
    parent_asin: str | None
    asin: str | None
    rating: int
    title: str | None
    text: str
    timestamp: int
    helpful_vote: int | None
    verified_purchase: bool | None
    n_images: int


def clean_text(text: str) -> str:
    """Turn HTML line breaks and entities into text and normalise whitespace.

    Runs of spaces, tabs and other Unicode spaces become one space, lines are trimmed,
    and runs of blank lines become one blank line (a paragraph break).
    """
    if "<" in text:
        text = _BR.sub("\n", text)
    if "&" in text:
        text = html.unescape(text)
    # isprintable() is False for any whitespace but the ASCII space: most reviews need nothing more.
    if text.isprintable() and "  " not in text:
        return text.strip()
    lines: list[str] = []
    blank = False
    for line in text.splitlines():
        line = " ".join(line.split())
        if not line:
            blank = True
            continue
        if blank and lines:
            lines.append("")
        lines.append(line)
        blank = False
    return "\n".join(lines)


def load_object(line: bytes) -> dict[str, Any]:
    """Decode one JSONL line into a dict, or raise RecordRejected."""
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordRejected("invalid_utf8", f"byte {exc.start}: {exc.reason}") from None
    try:
        obj = orjson.loads(decoded)
    except orjson.JSONDecodeError as exc:
        raise RecordRejected("malformed_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise RecordRejected("not_an_object", f"a JSON {type(obj).__name__}, not an object")
    return obj


def parse_review(line: bytes) -> Review:
    """Validate and clean one raw review line (Amazon Reviews 2023 schema)."""
    obj = load_object(line)
    rating = obj.get("rating")
    if rating is None:
        raise RecordRejected("missing_rating", "no 'rating' field")
    if isinstance(rating, bool) or not isinstance(rating, (int, float)):
        raise RecordRejected("invalid_rating", f"rating is a {type(rating).__name__}, not a number")
    if not (1 <= rating <= 5) or rating != int(rating):
        raise RecordRejected("invalid_rating", f"rating {rating!r} is not one of 1..5")
    text = obj.get("text")
    if text is None:
        raise RecordRejected("missing_text", "no 'text' field")
    user_id = obj.get("user_id")
    if user_id is None or user_id == "":
        raise RecordRejected("missing_user_id", "no 'user_id' field")
    timestamp = obj.get("timestamp")
    if timestamp is None:
        raise RecordRejected("missing_timestamp", "no 'timestamp' field")
    title = obj.get("title")
    asin = obj.get("asin")
    parent_asin = obj.get("parent_asin")
    helpful = obj.get("helpful_vote")
    verified = obj.get("verified_purchase")
    images = obj.get("images")
    _expect_type("text", text, str)
    _expect_type("user_id", user_id, str)
    _expect_type("title", title, str, optional=True)
    _expect_type("asin", asin, str, optional=True)
    _expect_type("parent_asin", parent_asin, str, optional=True)
    _expect_type("verified_purchase", verified, bool, optional=True)
    _expect_type("images", images, list, optional=True)
    if helpful is not None and (isinstance(helpful, bool) or not isinstance(helpful, int) or helpful < 0):
        raise RecordRejected("wrong_type", f"helpful_vote {helpful!r} is not a non-negative integer")
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or timestamp != int(timestamp):
        raise RecordRejected("wrong_type", f"timestamp {timestamp!r} is not an integer of milliseconds")
    timestamp = int(timestamp)
    if not MIN_TIMESTAMP_MS <= timestamp < MAX_TIMESTAMP_MS:
        raise RecordRejected(
            "timestamp_out_of_range", f"timestamp {timestamp} ms is outside 1995-07-01..2100-01-01"
        )
    rating = int(rating)
    text = clean_text(text)
    title = clean_text(title) if title else None
    parent_asin = parent_asin or None
    asin = asin or None
    digest = hashlib.blake2b(
        "\x1f".join(
            (user_id, parent_asin or "", asin or "", str(timestamp), str(rating), title or "", text)
        ).encode(),
        digest_size=8,
    ).digest()
    return Review(
        review_id=digest.hex(),
        digest=int.from_bytes(digest, "little"),
        user_id=user_id,
        parent_asin=parent_asin,
        asin=asin,
        rating=rating,
        title=title or None,
        text=text,
        timestamp=timestamp,
        helpful_vote=helpful,
        verified_purchase=verified,
        n_images=len(images) if images else 0,
    )


def _expect_type(name: str, value: Any, tp: type, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, tp) or (tp is not bool and isinstance(value, bool)):
        raise RecordRejected("wrong_type", f"{name} is a {type(value).__name__}, expected {tp.__name__}")


@dataclass(frozen=True, slots=True)
class ProductMeta:
    """The metadata fields extract joins onto reviews."""

    product_title: str | None
    main_category: str | None
    price: float | None


def meta_key(obj: dict[str, Any]) -> str | None:
    """The key a metadata object joins on: parent_asin, else asin."""
    key = obj.get("parent_asin") or obj.get("asin")
    return key if isinstance(key, str) else None


def parse_meta(obj: dict[str, Any]) -> ProductMeta:
    """The fields extract joins from one metadata object; malformed fields become null."""
    title = obj.get("title")
    category = obj.get("main_category")
    return ProductMeta(
        product_title=(clean_text(title) or None) if isinstance(title, str) else None,
        main_category=category if isinstance(category, str) and category else None,
        price=parse_price(obj.get("price")),
    )


def parse_price(value: Any) -> float | None:
    """A price as float: numbers pass, strings like '$1,299.99' are parsed, anything else is null."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        match = _PRICE.search(value)
        if match:
            return float(match.group().replace(",", ""))
    return None
