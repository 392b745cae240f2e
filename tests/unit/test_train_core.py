"""train: run_train on tiny in-memory data with a tiny BERT built in code, and its input errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from stages.errors import ParamsError, PipelineInputError, SchemaError
from stages.train import LoraParams, TfidfParams, TrainParams, run_train
from stages.train.classifier import class_weights, length_batches
from stages.train.predict import RatingClassifier

# Words that give each rating away, so that even a tiny model has something to learn.
CUES = {1: "awful broken refund", 2: "poor flimsy disappointing", 3: "okay average fine",
        4: "good solid happy", 5: "excellent love perfect"}
FILLER = "the cable charger case works arrived box with".split()


def reviews(n_per_class: int, *, seed: int, ratings=(1, 2, 3, 4, 5)) -> pd.DataFrame:
    """A record-schema-like frame of made-up reviews, n_per_class per rating."""
    rng = np.random.default_rng(seed)
    rows = []
    for rating in ratings:
        for i in range(n_per_class):
            words = list(rng.choice(FILLER, size=5)) + CUES[rating].split()
            rng.shuffle(words)
            rows.append({"review_id": f"r{rating}-{i}", "rating": rating, "title": f"title {i}", "text": " ".join(words)})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def quick_params(**overrides) -> TrainParams:
    base = TrainParams(
        sources=("synthetic", "real"), base_model="builtin:tiny-bert", max_length=32, use_title=True, epochs=3,
        batch_size=8, learning_rate=5e-3, weight_decay=0.0, class_weighting="balanced", max_train_rows=None,
        max_test_rows=None, min_train_rows=20,
        lora=LoraParams(r=4, alpha=8, dropout=0.0, target_modules=("query", "value"), modules_to_save=("pooler",)),
        tfidf=TfidfParams(max_features=500, ngram_max=1, c=1.0, max_iter=200),
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("classifier")
    sources = {"synthetic": reviews(12, seed=1), "real": reviews(12, seed=2)}
    result = run_train(sources, reviews(6, seed=3), quick_params(), seed=0, out_dir=out)
    return result, out


def test_training_on_tiny_data_scores_every_model_per_source(trained):
    result, _ = trained
    m = result.metrics
    assert m["test.rows"] == 30 and m["synthetic.rows"] == 60 and m["real.rows"] == 60
    assert m["synthetic.ratings_absent"] == 0 and m["real.ratings_absent"] == 0
    for source in ("synthetic", "real"):
        for model in ("lora", "tfidf", "majority"):
            for key in ("accuracy", "macro_f1", "binary_accuracy", *(f"f1_{r}" for r in range(1, 6))):
                assert 0.0 <= m[f"{source}.{model}.{key}"] <= 1.0, (source, model, key)
        # The cue words make the task easy: the TF-IDF baseline must beat the majority class.
        assert m[f"{source}.tfidf.accuracy"] > m[f"{source}.majority.accuracy"] + 0.3
        assert m[f"{source}.lora.train_examples"] == 3 * 60
        assert m[f"{source}.lora.trainable_params"] < m[f"{source}.lora.total_params"]
    assert m["ratio.tfidf.accuracy"] == pytest.approx(m["synthetic.tfidf.accuracy"] / m["real.tfidf.accuracy"])
    assert m["ratio.lora.macro_f1"] == pytest.approx(m["synthetic.lora.macro_f1"] / m["real.lora.macro_f1"])
    floor = m["real.majority.macro_f1"]
    for model in ("lora", "tfidf"):
        span = m[f"real.{model}.macro_f1"] - floor
        if span > 0:
            assert m[f"lift.{model}.macro_f1"] == pytest.approx((m[f"synthetic.{model}.macro_f1"] - floor) / span)
        else:  # real data no better than the floor: no lift to recover, so none is reported
            assert m[f"lift.{model}.macro_f1"] is None
    assert m["lift.tfidf.macro_f1"] is not None  # the tiny data set is learnable by TF-IDF (asserted above)
    assert m["train_rows_equal"] == (m["synthetic.rows"] == m["real.rows"])
    assert set(result.predictions) == {(s, k) for s in ("synthetic", "real") for k in ("lora", "tfidf", "majority")}


def test_classifier_folder_reloads_to_the_same_predictions(trained):
    result, out = trained
    folder = out / "synthetic"
    config = json.loads((folder / "classifier.json").read_text())
    assert config["id2label"] == {"0": 1, "1": 2, "2": 3, "3": 4, "4": 5}
    assert config["base_model"] == "builtin:tiny-bert" and config["base_dir"] == "base"
    assert (folder / "adapter" / "adapter_config.json").is_file()
    assert (folder / "tokenizer" / "tokenizer.json").is_file()
    test = reviews(6, seed=3)
    test_texts = (test["title"] + "\n" + test["text"]).tolist()
    reloaded = RatingClassifier.from_dir(folder).predict(pd.DataFrame({"text": test_texts}))
    assert reloaded["rating_pred"].tolist() == result.predictions[("synthetic", "lora")].tolist()
    assert np.allclose(reloaded.filter(like="prob_").sum(axis=1), 1.0, atol=1e-5)


def test_predict_keeps_review_ids_and_needs_a_text_column(trained):
    _, out = trained
    classifier = RatingClassifier.from_dir(out / "real")
    frame = reviews(1, seed=4)
    rated = classifier.predict(frame)
    assert rated["review_id"].tolist() == frame["review_id"].tolist()
    assert set(rated["rating_pred"]) <= {1, 2, 3, 4, 5}
    with pytest.raises(SchemaError, match=r"input has no 'text' column \(columns: \['review', 'rating'\]\)"):
        classifier.predict(pd.DataFrame({"review": ["fine"], "rating": [3]}))


@pytest.mark.parametrize(
    ("sources", "error", "match"),
    [
        # a source below train.min_train_rows
        ({"synthetic": reviews(2, seed=1)}, PipelineInputError, r"source 'synthetic': 10 usable row\(s\).*below train.min_train_rows=20"),
        # one rating only: nothing to tell apart
        ({"synthetic": reviews(24, seed=1, ratings=(5,))}, PipelineInputError, r"source 'synthetic': every training example has rating \[5\]"),
        # a source name run_train does not know
        ({"synthetic": reviews(8, seed=1), "scraped": reviews(8, seed=1)}, ParamsError, r"unknown source\(s\) \['scraped'\]"),
        # a rating outside 1..5
        ({"synthetic": reviews(8, seed=1).assign(rating=6)}, SchemaError, r"rating outside \[1, 2, 3, 4, 5\]"),
        # no text column
        ({"synthetic": reviews(8, seed=1).drop(columns="text")}, SchemaError, r"source 'synthetic': missing column\(s\) \['text'\]"),
    ],
)
def test_bad_sources_fail_before_training(tmp_path, sources, error, match):
    with pytest.raises(error, match=match):
        run_train(sources, reviews(2, seed=3), quick_params(sources=("synthetic",)), seed=0, out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_empty_texts_are_counted_not_trained_on(tmp_path):
    frame = reviews(6, seed=1)
    frame.loc[:3, "text"] = ["", "  ", None, ""]
    result = run_train({"real": frame}, reviews(2, seed=3), quick_params(sources=("real",), epochs=1), seed=0, out_dir=tmp_path)
    assert result.metrics["real.dropped_empty_text"] == 4
    assert result.metrics["real.rows"] == 26 and result.metrics["real.rows_in"] == 30
    assert "ratio.lora.accuracy" not in result.metrics  # one source: nothing to compare


def test_an_absent_rating_is_counted_and_paid_for_in_macro_f1(tmp_path):
    """A sampler that never drew rating 2 gives a classifier that never predicts it: no crash, a lower score."""
    with pytest.warns(UserWarning, match=r"source 'synthetic': no training example with rating \[2\]"):
        result = run_train({"synthetic": reviews(8, seed=1, ratings=(1, 3, 4, 5))}, reviews(6, seed=3),
                           quick_params(sources=("synthetic",)), seed=0, out_dir=tmp_path)
    m = result.metrics
    assert m["synthetic.ratings_absent"] == 1 and m["synthetic.rows"] == 32
    for model in ("lora", "tfidf"):
        assert 2 not in set(result.predictions[("synthetic", model)].tolist())
        assert m[f"synthetic.{model}.f1_2"] == 0.0
        assert m[f"synthetic.{model}.macro_f1"] <= 0.8  # one of five classes scores 0


def test_unknown_source_in_params_names_the_choices():
    with pytest.raises(ParamsError, match=r"sources: unknown source\(s\) \['web'\]; choose from \['synthetic', 'real'\]"):
        quick_params(sources=("synthetic", "web"))


@pytest.mark.parametrize(
    ("base_model", "match"),
    [
        # a folder that does not exist and is no cached hub id
        ("/nonexistent/model", r"train.base_model: cannot load '/nonexistent/model'"),
        # a package that is not installed
        ("package:no_such_model_pkg", r"package 'no_such_model_pkg' is not installed"),
    ],
)
def test_a_base_model_that_cannot_load_is_a_clear_error(tmp_path, base_model, match):
    params = quick_params(sources=("real",), base_model=base_model)
    with pytest.raises(PipelineInputError, match=match):
        run_train({"real": reviews(6, seed=1)}, reviews(2, seed=3), params, seed=0, out_dir=tmp_path)


def test_lora_targets_missing_from_the_base_name_the_key(tmp_path):
    params = quick_params(sources=("real",), lora=LoraParams(r=4, alpha=8, dropout=0.0, target_modules=("q_proj",), modules_to_save=()))
    with pytest.raises(ParamsError, match=r"train.lora.target_modules: \['q_proj'\] do not fit the base model"):
        run_train({"real": reviews(6, seed=1)}, reviews(2, seed=3), params, seed=0, out_dir=tmp_path)


def test_balanced_class_weights_and_length_batches():
    labels = np.array([0] * 6 + [1, 2, 3, 4])
    assert class_weights(labels, "none") is None
    assert class_weights(labels, "balanced").tolist() == pytest.approx([10 / 30, 2, 2, 2, 2])
    # an absent label: k counts the present labels (scikit-learn's rule) and the absent one weighs 0
    assert class_weights(np.array([0, 0, 1, 3]), "balanced").tolist() == pytest.approx([4 / 6, 4 / 3, 0, 4 / 3, 0])
    batches = length_batches([5, 1, 9, 3, 7, 2, 8], 3, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(7))  # every row once
    assert sorted(len(b) for b in batches) == [1, 3, 3]
