"""The labelled PII benchmark: cases are seeded, spans are exact, scoring counts what it should."""

from __future__ import annotations

from stages.anonymize.benchmark import ENTITIES, POSITIONS, Case, build_cases, leak_estimate, real_sentences, score_cases
from stages.anonymize.name_shapes import NAME_SHAPES
from stages.anonymize.engine import Finding
from stages.anonymize.operators import luhn_valid

# Hand-written stand-ins for review sentences (the real ones come from the input data at run time).
SENTENCES = [
    "The charger works well and the cable is long enough for my desk.",
    "Battery life is shorter than advertised, but the screen is bright!",
    "I would buy this case again because it survived two drops already.",
    "Sound quality is fine for podcasts, though the bass is a bit weak?",
]


def test_cases_are_seeded_and_spans_point_at_the_injected_values():
    one = build_cases(SENTENCES, cases=48, negative_cases=10, seed=5)
    assert one == build_cases(SENTENCES, cases=48, negative_cases=10, seed=5)
    assert one != build_cases(SENTENCES, cases=48, negative_cases=10, seed=6)
    positives = [c for c in one if c.pii]
    assert len(positives) == 48 and len(one) == 58
    assert {p[0] for c in positives for p in c.pii} == set(ENTITIES)
    assert {p[3] for c in positives for p in c.pii} == set(POSITIONS)
    for case in positives:
        entity, start, end, position, shape = case.pii[0]
        value = case.text[start:end]
        assert value and value == value.strip()
        if position != "middle":  # the real sentence is still there, whole
            assert any(s in case.text for s in SENTENCES)
        if entity == "CREDIT_CARD":
            assert luhn_valid(value)
        if entity == "ORDER_NUMBER":
            assert len(value) == 19 and value[3] == "-" and value[11] == "-"


def test_real_sentences_are_bounded_distinct_and_seeded():
    texts = [" ".join(SENTENCES), None, SENTENCES[0], "short."]
    got = real_sentences(texts, limit=10, seed=1)
    assert sorted(got) == sorted(SENTENCES)
    assert real_sentences(texts, limit=2, seed=1) == real_sentences(texts, limit=2, seed=1)


def test_scoring_table():
    text = "Call 555-123-4567 now, said Bob."
    cases = [
        Case(text, (("PHONE_NUMBER", 5, 17, "middle", ""),), ()),
        Case("Works with my Galaxy S21 fine.", (), ((14, 24),)),
    ]
    # phone found; "Bob" wrongly flagged (a non-PII word changed); the product flagged (negative lost)
    detected = [
        [Finding("PHONE_NUMBER", 5, 17, 0.7), Finding("PERSON", 28, 31, 0.8)],
        [Finding("PERSON", 14, 20, 0.85)],
    ]
    m = score_cases(cases, detected)
    assert m["recall_phone_number"] == 1.0
    assert m["precision"] == round(1 / 3, 4)
    assert m["negatives_kept"] == 0.0
    words_outside = 4 + 6  # "Call now said Bob" + "Works with my Galaxy S21 fine"
    assert m["nonpii_words_changed"] == round(2 / words_outside, 5)
    partial = score_cases(cases[:1], [[Finding("PHONE_NUMBER", 5, 12, 0.7)]])
    assert partial["recall_phone_number"] == 0.0  # a value half removed is not removed


def test_person_cases_cover_every_name_shape_and_bare_phones_have_a_contact_cue():
    built = build_cases(SENTENCES, cases=64, negative_cases=6, seed=3, person_cases=42)
    names = [p for c in built for p in c.pii if p[0] == "PERSON"]
    assert len(names) == 8 + 42
    assert {p[4] for p in names} == set(NAME_SHAPES) and {p[3] for p in names} == set(POSITIONS)
    bare = [(c.text, p) for c in built for p in c.pii if p[0] == "PHONE_NUMBER" and p[4] == "bare"]
    assert bare and all(text[s:e].lstrip("+").isdigit() or " " in text[s:e] for text, (_, s, e, _, _) in bare)
    numbers = [c for c in built if c.negatives and any(c.text[s:e].isdigit() for s, e in c.negatives)]
    assert numbers  # digit runs that must stay: model numbers, quantities, prices


def test_scores_by_shape_and_the_leak_estimate_carry_the_benchmark_size():
    cases = [
        Case("Thanks, maddy927", (("PERSON", 8, 16, "end", "handle"),), ()),
        Case("Jo Li here.", (("PERSON", 0, 5, "start", "first_last"),), ()),
    ]
    m = score_cases(cases, [[Finding("PERSON", 8, 16, 0.8)], []])
    assert m["recall_person_handle"] == 1.0 and m["recall_person_first_last"] == 0.0 and m["recall_all"] == 0.5
    assert leak_estimate(m) == {"benchmark_cases": 2, "pii_missed_share": 0.5, "person_cases": 2, "person_missed_share": 0.5}
