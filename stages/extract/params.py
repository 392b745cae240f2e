"""The `extract:` section of params.yaml."""

from __future__ import annotations

from dataclasses import dataclass

from stages.errors import ParamsError
from stages.params import bounded


@dataclass(frozen=True)
class SplitParams:
    """Fractions of users (not reviews) assigned to each split; they sum to 1."""

    train: float = bounded(min=0.0, max=1.0)
    val: float = bounded(min=0.0, max=1.0)
    test: float = bounded(min=0.0, max=1.0)

    def __post_init__(self):
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ParamsError(f"train + val + test = {total:g}; the fractions must sum to 1")
        if self.train == 0:
            raise ParamsError("train: 0 leaves nothing to learn from; give it a positive fraction")


@dataclass(frozen=True)
class ExtractParams:
    """Where the raw reviews come from and how they are cleaned, filtered and split."""

    reviews: str  # local .jsonl/.jsonl.gz path or http(s) URL of the raw reviews
    meta: str | None  # product metadata (path or URL), joined on parent_asin; null for none
    max_rows: int | None = bounded(min=1)  # stop reading after this many review lines; null reads all
    chunk_rows: int = bounded(min=100, max=1_000_000)  # rows held in memory at once
    min_text_chars: int = bounded(min=0)  # shorter cleaned texts are filtered out
    categories: tuple[str, ...]  # keep only these main_category values; [] keeps all (needs meta)
    max_reject_rate: float = bounded(min=0.0, max=1.0)  # above this share of rejected lines, fail
    split: SplitParams

    def __post_init__(self):
        if self.categories and self.meta is None:
            raise ParamsError(
                "categories: filtering on main_category needs the product metadata; set extract.meta "
                "or set extract.categories to []"
            )
