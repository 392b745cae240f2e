"""Fidelity metrics on constructed cases whose right answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.evaluate import structured, text, utility
from stages.train.baseline import TfidfBaseline
from stages.train.params import TfidfParams


def _cloud(seed: int, n: int = 200, dim: int = 8, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)) + shift


def test_frechet_is_zero_for_identical_sets_and_grows_with_a_shift():
    a = _cloud(0)
    assert text.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    near, far = text.frechet_distance(a, _cloud(1)), text.frechet_distance(a, _cloud(1, shift=3.0))
    assert near < 2.0  # two samples of one Gaussian
    assert far == pytest.approx(near + 8 * 9.0, rel=0.1)  # ||mu||^2 = dim * 3^2


def test_mauve_is_one_for_identical_sets_and_near_zero_for_disjoint_ones():
    a = _cloud(0)
    assert text.mauve(a, a, clusters=None, scaling=5.0, seed=0) == pytest.approx(1.0, abs=1e-3)
    assert text.mauve(a, _cloud(1, shift=10.0), clusters=None, scaling=5.0, seed=0) < 0.05
    same_dist = text.mauve(a, _cloud(1), clusters=None, scaling=5.0, seed=0)
    assert 0.7 < same_dist <= 1.0


def test_mauve_from_histograms_extremes():
    p = np.array([0.5, 0.5, 0.0, 0.0])
    assert text.mauve_from_histograms(p, p, scaling=5.0) == pytest.approx(1.0, abs=1e-3)
    assert text.mauve_from_histograms(p, p[::-1], scaling=5.0) < 0.05


def test_nn_cosine_is_one_for_copies():
    a = _cloud(0)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    assert np.allclose(text.nn_cosine(a, a), 1.0)
    assert text.nn_cosine(-a[:5], a[:1]).max() < 1.0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (["the cat sat"], ["the cat sat"], 0.0),  # identical corpora
        (["red green"], ["blue yellow"], 1.0),  # no shared word
        (["a a b"], ["a b b"], None),  # in between
    ],
)
def test_word_js_divergence(a, b, expected):
    value = text.word_js_divergence(a, b)
    if expected is None:
        assert 0.0 < value < 1.0
    else:
        assert value == pytest.approx(expected, abs=1e-9)


def test_length_distance_identical_and_disjoint():
    short, long = ["one two"] * 10, ["w " * 50] * 10
    assert text.length_distance(short, short)["ks"] == 0.0
    far = text.length_distance(short, long)
    assert far["ks"] == 1.0 and far["wasserstein_words"] == pytest.approx(48.0)


VOCAB = text.build_vocabulary(["Great phone, works well. It stopped working after a week of use."])


@pytest.mark.parametrize(
    ("sample", "problems"),
    [
        ("Great phone, works well.", set()),  # clean review
        ("", {"empty"}),  # nothing at all
        ("   ...  ", {"empty"}),  # punctuation only
        ("It stopped working after a wee", {"truncated", "abrupt_ending"}),  # cut mid-word
        ("It stopped working after a week", {"abrupt_ending"}),  # no final punctuation, whole word
        ("works well works well works well works well.", {"repeated_phrase"}),  # generation loop
        ("Great phone \x00\x01\x02\x03 \ufffd\ufffd.", {"non_text_chars"}),  # control / replacement chars
        ("Here's a 5-star review of the phone: Great phone, works well.", {"assistant_talk", "prompt_echo"}),
        ("The 5-star product was very good.", {"prompt_echo"}),  # the request's wording
        ("Great phone, and our customers love it.", {"seller_talk"}),  # the shop, not a buyer
    ],
)
def test_quality_flags(sample, problems):
    flags = text.quality_flags(sample, VOCAB)
    assert {name for name, bad in flags.items() if bad} == problems


def test_quality_report_gibberish_share_counts_out_of_vocabulary_words():
    report = text.quality_report(["great phone", "xqzt vbnm"], VOCAB)
    assert report["gibberish_share"] == pytest.approx(0.5)
    assert report["texts"] == 2


def test_label_fidelity():
    result = text.label_fidelity(np.array([1, 2, 3, 5]), np.array([1, 2, 4, 1]))
    assert result == {"accuracy": 0.5, "within_one": 0.75}


def _records(seed: int, n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rating = rng.integers(1, 6, n)
    return pd.DataFrame({
        "rating": rating.astype("int8"),
        "title": [f"title {i}" for i in range(n)],
        "text": ["word " * int(k) for k in rating * 5 + rng.integers(0, 3, n)],
        "timestamp": pd.to_datetime(rng.integers(1.5e9, 1.7e9, n), unit="s", utc=True),
        "helpful_vote": rng.integers(0, 4, n).astype("int32"),
        "verified_purchase": rng.random(n) > 0.3,
        "n_images": rng.integers(0, 2, n).astype("int32"),
        "main_category": rng.choice(["Cell Phones", "Electronics"], n),
        "price": rng.random(n) * 50,
    })


def test_sdmetrics_scores_identical_tables_near_one_and_pair_trends_are_not_nan():
    real = structured.structured_view(_records(0))
    same = structured.sdmetrics_reports(real, real.copy(), correlation_threshold=0.0, association_threshold=0.0)
    assert same["column_shapes"] == pytest.approx(1.0, abs=1e-6)
    assert same["column_pair_trends"] == pytest.approx(1.0, abs=1e-6)
    shuffled = real.copy()
    shuffled["text_chars"] = shuffled["text_chars"].sample(frac=1.0, random_state=1).to_numpy()
    broken = structured.sdmetrics_reports(real, shuffled, correlation_threshold=0.0, association_threshold=0.0)
    assert broken["column_shapes"] == pytest.approx(1.0, abs=1e-6)  # marginals unchanged
    assert broken["column_pair_trends"] < same["column_pair_trends"]  # rating-length link destroyed


def test_feature_importance_consistency_identical_and_unrelated_models():
    texts = ["awful broken junk"] * 10 + ["great love perfect"] * 10 + ["fine okay average"] * 10
    ratings = np.array([1] * 10 + [5] * 10 + [3] * 10)
    params = TfidfParams(max_features=100, ngram_max=1, c=1.0, max_iter=200)
    real = utility.feature_importance(TfidfBaseline(params, class_weighting="none", seed=0).fit(texts, ratings))
    same = utility.importance_consistency(real, dict(real), k=5)
    assert same["feature_rank_correlation"] == pytest.approx(1.0)
    assert same["feature_topk_overlap"] == 1.0
    other = {f"zz{i}": float(i + 1) for i in range(9)}
    disjoint = utility.importance_consistency(real, other, k=5)
    assert disjoint["feature_topk_overlap"] == 0.0
    assert disjoint["feature_shared_vocabulary"] == 0 and np.isnan(disjoint["feature_rank_correlation"])


def test_feature_rank_correlation_is_near_zero_for_unrelated_and_minus_one_for_reversed_models():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(2000)]
    real = dict(zip(vocab, rng.random(2000).tolist()))
    unrelated = dict(zip(vocab, rng.random(2000).tolist()))
    # no selection bias: the top-k lists of two unrelated models do not make them anti-correlated
    assert abs(utility.importance_consistency(real, unrelated, k=50)["feature_rank_correlation"]) < 0.1
    reversed_ = {f: -v for f, v in real.items()}
    assert utility.importance_consistency(real, reversed_, k=50)["feature_rank_correlation"] == pytest.approx(-1.0)


def test_train_scores_copies_the_train_metrics_and_marks_missing_ones():
    scores = utility.train_scores({"real.lora.accuracy": 0.6, "ratio.lora.macro_f1": 0.8})
    assert scores["real.lora.accuracy"] == 0.6 and scores["ratio.lora.macro_f1"] == 0.8
    assert scores["synthetic.tfidf.accuracy"] is None
