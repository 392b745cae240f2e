"""anonymize on a few hundred real reviews of the shared sample: no leaks, benchmark scored."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import yaml

from stages.anonymize.core import run_anonymize
from stages.anonymize.params import AnonymizeParams
from stages.params import parse_section
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reviews(sample_dir) -> pd.DataFrame:
    raw = pd.read_json(sample_dir / "Electronics.10k.jsonl.gz", lines=True, nrows=400, compression="gzip", dtype=False)
    return pd.DataFrame(
        {
            "review_id": [f"r{i}" for i in range(len(raw))],
            "user_id": raw["user_id"].astype(str),
            "text": raw["text"],
            "timestamp": pd.to_datetime(raw["timestamp"], utc=True).astype("datetime64[ms, UTC]"),
        }
    )


def test_real_reviews_leave_no_trace_and_the_benchmark_scores(reviews):
    raw = yaml.safe_load((ROOT / "tests" / "params.quick.yaml").read_text())["anonymize"]
    params = parse_section(raw, AnonymizeParams, "anonymize")
    params = dataclasses.replace(params, benchmark=dataclasses.replace(params.benchmark, cases=160, negative_cases=40))
    frames = {"train": reviews.iloc[:300], "test": reviews.iloc[300:]}
    key = b"integration-key-0123456789"
    result = run_anonymize(frames, params, key=key, seed=11)
    m = result.metrics
    assert m["detected_value_reoccurrences"] == 0
    assert m["rows"] == 400
    assert set(result.frames) == {"train", "test"}
    out = pd.concat(result.frames.values())
    assert out["text"].notna().sum() == reviews["text"].notna().sum()
    assert not set(out["user_id"]) & set(reviews["user_id"])
    bench = m["benchmark"]
    assert bench["cases"] == 160 + params.benchmark.person_cases and bench["negative_cases"] == 40
    assert m["leak_estimate"]["benchmark_cases"] == bench["cases"]
    assert m["leak_estimate"]["person_missed_share"] == round(1 - bench["recall_person"], 4)
    # the structured recognizers must find what was injected; names are scored, not pinned
    for entity in ("email_address", "phone_number", "credit_card", "order_number", "url"):
        assert bench[f"recall_{entity}"] >= 0.95, (entity, bench)
    assert bench["nonpii_words_changed"] <= 0.02
    # unchanged rows stay byte-identical
    untouched = [i for i, t in enumerate(out["text"]) if t == reviews["text"].iloc[i]]
    assert len(untouched) >= 0.7 * len(out)
