"""Privacy filters (memorised text, PII) and audit canaries."""

from __future__ import annotations

import pytest

from stages.synthesize.canaries import CANARY_USER_PREFIX, make_canaries
from stages.synthesize.core import prepare_training
from stages.synthesize.filters import MemorisationFilter, anonymizer_analyzer, pii_findings
from tests.unit.synthesize_helpers import quick_params, records

TRAINING = [
    "The battery lasts two full days and the screen is bright enough outdoors.",
    "Short one.",
]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # verbatim copy
        (TRAINING[0], "exact_match"),
        # the same text up to case, punctuation and spacing is still a copy
        ("the BATTERY lasts two full days, and the screen is bright enough outdoors!!", "exact_match"),
        # a long span copied inside new text: 4 of 7 four-grams are seen in training (> 0.5)
        ("Honestly the battery lasts two full days and then some", "ngram_overlap"),
        # shares words, but only 1 of 6 four-grams
        ("The battery is fine and the screen is dim.", None),
        # too short to have any n-gram: never an overlap
        ("Great.", None),
    ],
)
def test_memorisation_filter(text, reason):
    memo = MemorisationFilter(TRAINING, n=4, max_overlap=0.5)
    assert memo.reason(text) == reason


def test_ngram_overlap_is_the_share_of_seen_ngrams():
    memo = MemorisationFilter(["a b c d e"], n=3, max_overlap=0.5)
    assert memo.overlap("a b c x y") == pytest.approx(1 / 3)  # abc seen; bcx, cxy not
    assert memo.overlap("a b c d e") == 1.0


@pytest.fixture(scope="module")
def analyzer():
    return anonymizer_analyzer(["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER"], 0.5)


def test_pii_filter_uses_the_anonymizers_analyzer(analyzer):
    texts = [
        "Call me at 415-555-0172 if the charger fails.",  # phone
        "Write to jane.doe@example.com for the receipt.",  # email
        "The charger works with my Samsung tablet.",  # a brand, not a person
        "Solid cable, fast charging.",  # nothing
    ]
    found = pii_findings(texts, analyzer, entities=["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER"], threshold=0.5)
    assert found[0] == ["PHONE_NUMBER"]
    assert found[1] == ["EMAIL_ADDRESS"]
    assert found[2] == [] and found[3] == []


def test_pii_filter_respects_entities_and_threshold():
    class Finding:
        def __init__(self, entity, score):
            self.entity, self.score = entity, score

    fake = lambda texts: [[Finding("PERSON", 0.4), Finding("URL", 0.9)] for _ in texts]  # noqa: E731
    assert pii_findings(["x"], fake, entities=["PERSON"], threshold=0.5) == [[]]  # below threshold; URL not asked
    assert pii_findings(["x"], fake, entities=["PERSON", "URL"], threshold=0.3) == [["PERSON", "URL"]]


def test_canaries_are_unique_fake_records_repeated_as_configured():
    params = quick_params(**{"canaries.count": 3, "canaries.repeats": (1, 10)})
    canaries = make_canaries(params.canaries, seed=5)
    assert len(canaries) == 6
    assert [c["repeat"] for c in canaries] == [1, 1, 1, 10, 10, 10]
    assert len({c["secret"] for c in canaries}) == 6 and len({c["user_id"] for c in canaries}) == 6
    for c in canaries:
        for part in ("name", "phone", "street", "secret"):
            assert c[part] in c["text"]
    assert make_canaries(params.canaries, seed=5) == canaries  # reproducible
    assert make_canaries(params.canaries, seed=6) != canaries


@pytest.mark.parametrize(
    ("unit", "k", "copies"),
    [
        # record unit: every copy goes in
        ("record", 5, {1: 1, 10: 10}),
        # user unit: a canary user is bounded to k like everyone else
        ("user", 5, {1: 1, 10: 5}),
    ],
)
def test_canaries_are_planted_in_the_training_rows(unit, k, copies):
    params = quick_params(**{"dp.unit": unit, "dp.max_reviews_per_user": k, "canaries.count": 2,
                             "generator.max_train_rows": None})
    train = records(50)
    rows, canaries, counts = prepare_training(train, params, seed=0)
    planted = rows[rows["user_id"].str.startswith(CANARY_USER_PREFIX)]
    for c in canaries:
        n = int((planted["user_id"] == c["user_id"]).sum())
        assert n == c["copies_in_training"] == copies[c["repeat"]]
        assert (planted.loc[planted["user_id"] == c["user_id"], "text"] == c["text"]).all()
    assert counts["canary_rows"] == len(planted)
    assert counts["train_rows_used"] == counts["train_rows_real"] + len(planted) == len(rows)


def test_no_canaries_when_off():
    params = quick_params(**{"canaries.enabled": False})
    rows, canaries, counts = prepare_training(records(30), params, seed=0)
    assert canaries == [] and counts["canary_rows"] == 0
    assert not rows["user_id"].str.startswith(CANARY_USER_PREFIX).any()


def test_pipeline_filter_counts_every_drop_and_keeps_the_rest():
    from types import SimpleNamespace

    import pandas as pd

    from stages.synthesize.core import _filter_and_assemble

    class Flag:
        entity, score = "PHONE_NUMBER", 0.9

    analyzer = lambda texts: [[Flag()] if "555" in t else [] for t in texts]  # noqa: E731
    controls = pd.DataFrame({
        "rating": [1, 2, 3, 4, 5, 4, 3, 5], "helpful_vote": [0] * 8, "verified_purchase": [None] * 8,
        "timestamp": pd.to_datetime(["2021-01-01"] * 8), "main_category": ["Computers"] * 8, "n_images": [0] * 8,
        "price": [None] * 8, "title_chars": [None] * 8, "text_chars": [40] * 8,
    })
    written = {
        "titles": ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"],
        "texts": [
            TRAINING[0],  # a copy
            "Honestly the battery lasts two full days and then some",  # long overlap
            "Ring me on 555-0100 about it.",  # PII
            None,  # failed to parse (counted upstream)
            "A fresh sentence about a keyboard.",  # kept
            "Here's a 4-star review of the charger:",  # the model answering the prompt
            "I'm happy to work with you on our products.",  # the shop talking, not a buyer
            "The 5-star product was very good.",  # the request's wording echoed
        ],
    }
    tabular = SimpleNamespace(null_columns_=["verified_purchase", "title_chars"])
    params = quick_params(**{"filters.ngram_n": 4})
    records, counts = _filter_and_assemble(controls, dict(written, titles=list(written["titles"])), tabular,
                                           pd.Series(TRAINING), params, analyzer, None)
    assert counts["dropped"] == {"exact_match": 1, "ngram_overlap": 1, "assistant_talk": 1, "seller_talk": 1,
                                 "prompt_echo": 1, "judged_not_review": 0, "inconsistent": 0, "pii": 1}
    assert counts["pii_entities"] == {"PHONE_NUMBER": 1}
    assert list(records["text"]) == ["A fresh sentence about a keyboard."]
    assert list(records["rating"]) == [5] and records["title"].isna().all()  # no titles in the data: none invented

    # With the assistant-, seller-talk and prompt-echo filters off, those texts are kept (and counted nowhere).
    params = quick_params(**{"filters.ngram_n": 4, "filters.drop_assistant_talk": False,
                             "filters.drop_seller_talk": False, "filters.drop_prompt_echo": False})
    records, counts = _filter_and_assemble(controls, dict(written, titles=list(written["titles"])), tabular,
                                           pd.Series(TRAINING), params, analyzer, None)
    assert all(counts["dropped"][k] == 0 for k in ("assistant_talk", "seller_talk", "prompt_echo"))
    assert list(records["text"]) == ["A fresh sentence about a keyboard.", "Here's a 4-star review of the charger:",
                                     "I'm happy to work with you on our products.", "The 5-star product was very good."]
