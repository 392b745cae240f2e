"""The extract stage: raw Amazon Reviews 2023 JSONL(.gz) to clean, user-split Parquet."""

from stages.extract.core import ExtractResult, run_extract
from stages.extract.params import ExtractParams, SplitParams

__all__ = ["ExtractParams", "ExtractResult", "SplitParams", "run_extract"]
