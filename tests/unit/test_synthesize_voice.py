"""The voice judge: a public judge that drops drafts written as the shop or as another kind of text."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from stages.synthesize.core import _filter_and_assemble, public_judges
from stages.synthesize.voice import voice_judge
from tests.unit.synthesize_helpers import quick_params

# Invented texts, none of them an anchor of stages/synthesize/voice.py.
BUYERS = [
    "The charger stopped working after a month, so I sent it back for a refund.",
    "Great case, it fits my phone and the buttons still click. Worth the price.",
]
OTHERS = [
    "We appreciate your patience while our support team looks into your order.",  # the shop
    "Long ago a dragon guarded the village and the knights rode out at dawn.",  # another kind of text
]


@pytest.fixture(scope="module")
def voice():
    return voice_judge(quick_params(**{"voice.enabled": True}).voice)


def test_buyers_read_as_buyers_and_the_rest_do_not(voice):
    margins = voice.margins(BUYERS + OTHERS)
    assert margins[:2].min() > 0 > margins[2:].max()
    assert ((margins >= -2) & (margins <= 2)).all()
    assert voice.margins([]).shape == (0,)


def _drafts(texts):
    n = len(texts)
    controls = pd.DataFrame({
        "rating": [4] * n, "helpful_vote": [0] * n, "verified_purchase": [None] * n,
        "timestamp": pd.to_datetime(["2021-01-01"] * n), "main_category": ["Computers"] * n, "n_images": [0] * n,
        "price": [None] * n, "title_chars": [None] * n, "text_chars": [40] * n,
    })
    return controls, {"titles": [None] * n, "texts": list(texts)}


def test_the_stage_filter_drops_and_counts_what_the_judge_reads_as_not_a_review(voice):
    controls, written = _drafts(BUYERS + OTHERS)
    tabular = SimpleNamespace(null_columns_=["verified_purchase", "title_chars"])
    no_pii = lambda texts: [[] for _ in texts]  # noqa: E731
    # the fixed patterns off: the judge alone has to see the shop's voice
    params = quick_params(**{"voice.enabled": True, "filters.drop_seller_talk": False,
                             "filters.drop_assistant_talk": False})
    records, counts = _filter_and_assemble(controls, written, tabular, pd.Series(["unrelated"]), params, no_pii,
                                           None, voice)
    assert counts["dropped"]["judged_not_review"] == 2
    assert list(records["text"]) == BUYERS
    # a margin no text reaches drops them all; without the judge all are kept
    params = quick_params(**{"voice.enabled": True, "voice.min_margin": 2.0})
    _, counts = _filter_and_assemble(controls, _drafts(BUYERS + OTHERS)[1], tabular, pd.Series(["unrelated"]),
                                     params, no_pii, None, voice)
    assert counts["dropped"]["judged_not_review"] == 4
    records, counts = _filter_and_assemble(controls, _drafts(BUYERS + OTHERS)[1], tabular, pd.Series(["unrelated"]),
                                           params, no_pii, None, None)
    assert counts["dropped"]["judged_not_review"] == 0 and len(records) == 4


def test_both_public_judges_share_one_encoder_and_follow_their_switches(voice):
    params = quick_params(**{"voice.enabled": True, "consistency.enabled": True})
    judge, shared = public_judges(params, None, voice)
    assert shared is voice and judge.embedder is voice.embedder
    judge_only, none = public_judges(quick_params(**{"consistency.enabled": True}), judge, voice)
    assert judge_only is judge and none is None
    assert public_judges(quick_params(), judge, voice) == (None, None)
    # the judge's rating read from the shared embeddings is the one it reads from the texts
    texts = BUYERS + OTHERS
    np.testing.assert_allclose(judge.judge(texts), judge.judge_embedded(voice.embedder.encode(texts)), atol=1e-6)
