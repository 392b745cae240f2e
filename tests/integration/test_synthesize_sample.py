"""synthesize on a few hundred real reviews (multi-category sample: titles and categories), tiny model."""

from __future__ import annotations

import pandas as pd
import pytest

from stages.extract import ExtractParams, SplitParams, run_extract
from stages.schema import RECORD_SCHEMA
from stages.synthesize import run_synthesize
from stages.synthesize.core import to_arrow
from stages.synthesize.filters import anonymizer_analyzer
from tests.unit.synthesize_helpers import quick_params

pytestmark = pytest.mark.integration


def test_synthesize_on_real_reviews(sample_dir, tmp_path):
    out = tmp_path / "extracted"
    extract = ExtractParams(
        reviews=str(sample_dir / "multi_category.2.7k.reviews.jsonl.gz"),
        meta=str(sample_dir / "multi_category.2.7k.meta.jsonl.gz"), max_rows=400, chunk_rows=400,
        min_text_chars=10, categories=(), max_reject_rate=0.05, split=SplitParams(train=0.8, val=0.1, test=0.1),
    )
    run_extract(extract, seed=1, out_dir=out, rejects_path=out / "rejects.jsonl")
    train, val = pd.read_parquet(out / "train.parquet"), pd.read_parquet(out / "val.parquet")
    params = quick_params(**{"generation.n_records": 8})
    analyzer = anonymizer_analyzer(params.filters.pii_entities, params.filters.pii_score_threshold)
    result = run_synthesize(train, val, params, seed=1, analyzer=analyzer)
    m = result.metrics
    assert m["train_rows_input"] == len(train) and m["val_rows"] == min(32, len(val))
    assert 0 < m["epsilon"] <= 8.0 and m["privacy_unit"] == "user"
    dropped = sum(m[f"dropped_{k}"] for k in ("parse", "exact_match", "ngram_overlap", "assistant_talk", "seller_talk",
                                                "prompt_echo", "judged_not_review", "inconsistent", "pii"))
    assert m["generated_requested"] == 12 == m["records_written"] + dropped + m["records_surplus_discarded"]  # 8 x 1.5
    assert m["records_written"] <= 8
    # the quick profile's DP selection chose them from every surviving draft, composed into the release's epsilon
    assert m["selection_enabled"] is True and m["selection_drafts"] == 12 - dropped
    assert m["epsilon_total_basic"] == pytest.approx(m["epsilon"] + m["epsilon_tabular"] + m["epsilon_selection"])
    recs = result.records
    assert to_arrow(recs).schema.equals(RECORD_SCHEMA)
    # This sample has titles and categories, so both are modelled and conditioned on.
    assert "title_chars" not in result.tabular.null_columns_
    # the DP model's categories come from the public list in params, never from the data
    assert set(recs["main_category"].dropna()) <= set(params.tabular.domain.categories)
    # timestamp has a null bin in the DP model, so its noise can draw a null; every other one is in range
    assert recs["timestamp"].dropna().dt.year.between(1995, 2030).all()
