"""Shared builders for the synthesize tests: tiny in-memory records and a quick params object."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import yaml

from stages.params import parse_section
from stages.synthesize.params import SynthesizeParams

ROOT = Path(__file__).resolve().parents[2]

# Invented review snippets (not from any data set), combined into varied texts.
_OPENINGS = ["Works well", "Stopped charging", "Great value", "Arrived late", "Sturdy case", "Poor sound"]
_MIDDLES = ["after two weeks of use", "for the price", "with my tablet", "out of the box", "on long trips"]
_ENDINGS = ["and I would buy it again.", "so I returned it.", "but the cable is short.", "and it looks nice."]
_CATEGORIES = ["Cell Phones & Accessories", "Computers", "All Electronics", None]


def records(n: int, *, users: int | None = None, split: str = "train", seed: int = 0) -> pd.DataFrame:
    """n record-schema rows with invented texts; `users` distinct user ids (default: one each)."""
    users = users or n
    rows = []
    for i in range(n):
        text = f"{_OPENINGS[i % 6]} {_MIDDLES[(i // 6) % 5]} {_ENDINGS[(i // 30) % 4]} Item {i + seed}."
        rows.append({
            "review_id": f"r{seed}-{i}",
            "user_id": f"u{i % users}",
            "parent_asin": None,
            "asin": f"B{i:09d}",
            "rating": 1 + (i * 7 + seed) % 5,
            "title": _OPENINGS[(i + 1) % 6] if i % 3 else None,
            "text": text,
            "timestamp": pd.Timestamp("2021-01-01", tz="UTC") + pd.Timedelta(days=i),
            "helpful_vote": i % 4,
            "verified_purchase": bool(i % 2),
            "n_images": i % 2,
            "product_title": None,
            "main_category": _CATEGORIES[i % 4],
            "price": 10.0 + i % 7,
            "split": split,
        })
    frame = pd.DataFrame(rows)
    frame["rating"] = frame["rating"].astype("int8")
    frame["helpful_vote"] = frame["helpful_vote"].astype("int32")
    frame["n_images"] = frame["n_images"].astype("int32")
    frame["timestamp"] = frame["timestamp"].astype("datetime64[ms, UTC]")
    return frame


def quick_params(**changes) -> SynthesizeParams:
    """tests/params.quick.yaml's synthesize section, with dotted-key overrides ('dp.unit'='record')."""
    raw = yaml.safe_load((ROOT / "tests" / "params.quick.yaml").read_text())["synthesize"]
    params = parse_section(raw, SynthesizeParams, "synthesize")
    for dotted, value in changes.items():
        group, key = dotted.split(".")
        params = dataclasses.replace(params, **{group: dataclasses.replace(getattr(params, group), **{key: value})})
    return params


class NoPII:
    """A stand-in analyzer for tests that are not about PII: it finds nothing."""

    def __call__(self, texts):
        return [[] for _ in texts]
