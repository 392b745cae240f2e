"""The record schema that extracted, anonymized and synthetic data share."""

from __future__ import annotations

import pyarrow as pa

RECORD_SCHEMA = pa.schema(
    [
        pa.field("review_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("parent_asin", pa.string()),
        pa.field("asin", pa.string()),
        pa.field("rating", pa.int8(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("text", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC")),
        pa.field("helpful_vote", pa.int32()),
        pa.field("verified_purchase", pa.bool_()),
        pa.field("n_images", pa.int32(), nullable=False),
        pa.field("product_title", pa.string()),
        pa.field("main_category", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("split", pa.string(), nullable=False),
    ]
)

COLUMNS = tuple(RECORD_SCHEMA.names)
SPLITS = ("train", "val", "test")
RATINGS = (1, 2, 3, 4, 5)
