"""Structured columns: keyed user-id pseudonyms, generalised timestamps, other quasi-identifiers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stages.anonymize.operators import keyed_digest
from stages.anonymize.params import StructuredParams


def pseudonymise_user_id(value, key: bytes):
    """`u_` + 32 hex chars of HMAC-SHA256(key, user id); null stays null."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return "u_" + keyed_digest(key, "user_id", str(value)).hex()[:32]


def generalise_timestamps(ts: pd.Series, granularity: str) -> pd.Series:
    """Floor UTC timestamps to the start of their day, ISO week (Monday) or month; nulls stay null."""
    values = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    mask = np.isnat(values)
    days = values.astype("datetime64[D]")
    if granularity == "day":
        out = days
    elif granularity == "week":
        # 1970-01-01 was a Thursday: (days + 3) % 7 is 0 on Mondays
        out = days - ((days.astype("int64") + 3) % 7).astype("timedelta64[D]")
    elif granularity == "month":
        out = days.astype("datetime64[M]").astype("datetime64[D]")
    else:
        raise ValueError(f"unknown granularity {granularity!r}")
    out = out.astype("datetime64[ms]")
    out[mask] = np.datetime64("NaT")
    return pd.Series(pd.to_datetime(out).tz_localize("UTC"), index=ts.index, name=ts.name).astype("datetime64[ms, UTC]")


def anonymize_structured(frame: pd.DataFrame, params: StructuredParams, key: bytes) -> pd.DataFrame:
    """Apply the structured-column rules to the columns `frame` has (others pass through)."""
    frame = frame.copy()
    if "user_id" in frame:
        if params.user_id == "hmac":
            frame["user_id"] = frame["user_id"].map(lambda v: pseudonymise_user_id(v, key)).astype(object)
        else:
            frame["user_id"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if "timestamp" in frame:
        frame["timestamp"] = generalise_timestamps(frame["timestamp"], params.timestamp_granularity)
    if params.helpful_vote_cap is not None and "helpful_vote" in frame:
        frame["helpful_vote"] = frame["helpful_vote"].clip(upper=params.helpful_vote_cap)
    for column in params.null_columns:
        if column in frame:
            frame[column] = pd.Series([None] * len(frame), index=frame.index, dtype=frame[column].dtype if frame[column].dtype == object else "object")
    return frame
