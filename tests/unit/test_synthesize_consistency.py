"""The rating-consistency filter: a public judge that drops texts reading the opposite of their rating."""

from __future__ import annotations

import numpy as np
import pytest

from stages.synthesize.consistency import inconsistent, rating_judge
from tests.unit.synthesize_helpers import NoPII, quick_params, records


@pytest.fixture(scope="module")
def judge():
    return rating_judge(quick_params(**{"consistency.enabled": True}).consistency)


def test_the_judge_reads_polar_texts_on_their_side(judge):
    judged = judge.judge([
        "Broke after two days, total junk. I want my money back, do not buy.",
        "Absolutely love it, works perfectly and looks great. Highly recommend!",
    ])
    assert judged[0] < 2.5 < 3.5 < judged[1]
    assert ((judged >= 1) & (judged <= 5)).all()
    assert judge.judge([]).shape == (0,)


def test_only_polar_ratings_on_the_wrong_side_are_inconsistent():
    ratings = [1, 2, 3, 3, 4, 5, 5, 1]
    judged = np.array([3.5, 2.0, 1.0, 5.0, 2.0, 2.6, 4.0, 3.1])
    assert inconsistent(ratings, judged, low_max=3.1, high_min=2.5).tolist() == [
        True, False, False, False, True, False, False, False]


def test_run_synthesize_counts_what_the_filter_drops(judge):
    """The stage with the filter on: every generated record is written or counted, inconsistent ones included."""
    from stages.synthesize import run_synthesize

    # thresholds every judged value crosses: every polar record is dropped, 3-star ones are kept
    params = quick_params(**{"consistency.enabled": True, "consistency.low_max": 1.0, "consistency.high_min": 5.0,
                             "generation.n_records": 10, "generation.oversample": 1.0, "canaries.enabled": False})
    m = run_synthesize(records(120, users=40), records(20, split="val", seed=1000), params, seed=3,
                       analyzer=NoPII(), judge=judge)
    result_ratings = set(m.records["rating"].tolist())
    assert result_ratings <= {3}
    dropped = sum(m.metrics[f"dropped_{k}"] for k in ("parse", "exact_match", "ngram_overlap", "inconsistent", "pii"))
    assert m.metrics["dropped_inconsistent"] > 0
    assert m.metrics["records_written"] + m.metrics["records_surplus_discarded"] + dropped == m.metrics["generated_requested"]
