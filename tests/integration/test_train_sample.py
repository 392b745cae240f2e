"""train on the shared real sample (a few hundred rows, quick profile): CLI, registry, pyfunc = CLI predict."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from stages._cli import run_cli
from stages.extract import ExtractParams, SplitParams, run_extract
from stages.io import file_sha256
from stages.train.__main__ import main as train_main
from stages.tracking import load_registered_model, model_version_by_alias
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(sample_dir, tmp_path_factory):
    """Extracted sample splits standing in for the anonymized data; val stands in for synthetic."""
    root = tmp_path_factory.mktemp("train_data")
    params = ExtractParams(
        reviews=str(sample_dir / "multi_category.2.7k.reviews.jsonl.gz"),
        meta=str(sample_dir / "multi_category.2.7k.meta.jsonl.gz"), max_rows=2000, chunk_rows=1000,
        min_text_chars=10, categories=(), max_reject_rate=0.05, split=SplitParams(train=0.7, val=0.15, test=0.15),
    )
    run_extract(params, seed=3, out_dir=root / "anonymized", rejects_path=root / "rejects.jsonl")
    synthetic = pd.read_parquet(root / "anonymized" / "val.parquet").assign(split="synthetic")
    synthetic.to_parquet(root / "synthetic.parquet", index=False)
    quick = yaml.safe_load((ROOT / "tests" / "params.quick.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({"seed": quick["seed"], "train": quick["train"]}))
    (root / "synthesize.json").write_text(json.dumps({"dp_enabled": True, "epsilon": 7.0, "epsilon_total": 7.5, "target_epsilon": 8.0, "delta": 1e-5}))
    return root


@pytest.fixture(scope="module")
def trained(data):
    """One CLI run into a store of its own (the autouse per-test store would vanish after the first test)."""
    args = [
        "--params", str(data / "params.yaml"), "--synthetic", str(data / "synthetic.parquet"),
        "--anonymized-dir", str(data / "anonymized"), "--generator-metrics", str(data / "synthesize.json"),
        "--models-dir", str(data / "models"), "--metrics", str(data / "train.json"), "--plots-dir", str(data / "plots"),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{data / 'mlflow.db'}")
        assert run_cli(train_main, args) == 0
    return data


@pytest.fixture
def store(trained, monkeypatch):
    """Point MLflow at the module's store for this test."""
    import mlflow

    uri = f"sqlite:///{trained / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient()


def test_cli_writes_models_metrics_and_plots(trained):
    metrics = json.loads((trained / "train.json").read_text())
    for source in ("synthetic", "real"):
        assert (trained / "models" / source / "classifier.json").is_file()
        for model in ("lora", "tfidf", "majority"):
            assert 0 <= metrics[f"{source}.{model}.macro_f1"] <= 1
            plot = pd.read_csv(trained / "plots" / "confusion" / f"{source}_{model}.csv")
            assert list(plot.columns) == ["actual", "predicted"] and len(plot) == metrics["test.rows"]
    assert metrics["test.rows"] == 200  # train.max_test_rows in the quick profile
    assert metrics["ratio.lora.accuracy"] == pytest.approx(metrics["synthetic.lora.accuracy"] / metrics["real.lora.accuracy"])
    assert metrics["generator_epsilon"] == "7.5"
    assert (trained / "plots" / "confusion.png").stat().st_size > 10_000


def test_each_source_is_a_registered_version_and_the_newest_is_candidate(trained, store):
    versions = {str(v.version): v for v in store.search_model_versions("name='review-rating-classifier'")}
    assert sorted(versions) == ["1", "2"]
    assert model_version_by_alias("review-rating-classifier", "candidate") == "2"
    tags = {versions[v].tags["source"]: versions[v].tags for v in versions}
    assert tags["synthetic"]["generator_epsilon"] == "7.5"
    assert tags["synthetic"]["dataset_hash.train"] == file_sha256(trained / "synthetic.parquet")
    assert tags["real"]["dataset_hash.train"] == file_sha256(trained / "anonymized" / "train.parquet")
    assert tags["real"]["dataset_hash.test"] == file_sha256(trained / "anonymized" / "test.parquet")


def test_registered_pyfunc_predicts_what_the_cli_predicts(trained, store, tmp_path):
    reviews = pd.read_parquet(trained / "anonymized" / "test.parquet").head(40)
    reviews.to_json(tmp_path / "reviews.jsonl", orient="records", lines=True)
    out = tmp_path / "rated.parquet"
    args = ["predict", "--model", str(trained / "models" / "synthetic"), "--input", str(tmp_path / "reviews.jsonl"), "--output", str(out)]
    assert run_cli(train_main, args) == 0
    cli = pd.read_parquet(out)
    versions = store.search_model_versions("name='review-rating-classifier'")
    version = next(v.version for v in versions if v.tags["source"] == "synthetic")
    served = load_registered_model(f"models:/review-rating-classifier/{version}").predict(reviews)
    assert served["review_id"].tolist() == cli["review_id"].tolist() == reviews["review_id"].tolist()
    assert served["rating_pred"].tolist() == cli["rating_pred"].tolist()
    pd.testing.assert_frame_equal(served.filter(like="prob_"), cli.filter(like="prob_"), check_exact=False, rtol=1e-6)


def test_predict_input_without_text_column_is_a_clear_error(trained, tmp_path, capsys):
    pd.DataFrame({"body": ["great"], "rating": [5]}).to_csv(tmp_path / "bad.csv", index=False)
    args = ["predict", "--model", str(trained / "models" / "real"), "--input", str(tmp_path / "bad.csv")]
    assert run_cli(train_main, args) == 2
    assert "input has no 'text' column (columns: ['body', 'rating'])" in capsys.readouterr().err


def test_missing_anonymized_input_fails_before_training(data, tmp_path, capsys):
    args = ["--params", str(data / "params.yaml"), "--no-mlflow", "--synthetic", str(data / "synthetic.parquet"),
            "--anonymized-dir", str(tmp_path / "nowhere"), "--models-dir", str(tmp_path / "models")]
    assert run_cli(train_main, args) == 2
    assert f"input file {tmp_path / 'nowhere' / 'test.parquet'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()
