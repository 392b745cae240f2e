"""Tracking: the store location, DVC temp copies, tags, and the extract CLI's MLflow run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from stages import tracking
from stages.extract.__main__ import main as extract_main
from stages._cli import run_cli
from stages.errors import PipelineInputError
from stages.io import file_sha256
from tests.conftest import FIXTURES, ROOT


def test_project_root_sees_through_dvc_temp_copies(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".dvc" / "tmp" / "exps" / "tmpab12cd" / "stages").mkdir(parents=True)
    (repo / "dvc.yaml").write_text("stages: {}\n")
    assert tracking.project_root(repo / ".dvc" / "tmp" / "exps" / "tmpab12cd" / "stages") == repo
    assert tracking.project_root(repo) == repo
    (repo / "sub").mkdir()
    assert tracking.project_root(repo / "sub") == repo


def test_default_store_is_the_project_sqlite_file(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking.tracking_uri(tmp_path) == "sqlite:///elsewhere.db"


@pytest.mark.parametrize(
    ("cmdline", "is_dvc"),
    [
        (["/venv/bin/python", "/venv/bin/dvc", "repro"], True),
        (["dvc", "exp", "run"], True),
        (["python", "-m", "dvc", "repro"], True),
        (["/bin/sh", "-c", "python -m stages.extract"], False),
        (["python", "-m", "pytest"], False),
    ],
)
def test_dvc_parent_detection(cmdline, is_dvc):
    assert tracking._is_dvc(cmdline) is is_dvc


def test_pipeline_id_prefers_the_environment(monkeypatch):
    monkeypatch.setenv("SYNTHGUARD_PIPELINE_ID", "run-42")
    assert tracking.pipeline_id() == "run-42"
    monkeypatch.delenv("SYNTHGUARD_PIPELINE_ID")
    assert tracking.pipeline_id() != tracking.pipeline_id()  # outside DVC each call is its own execution


def _runs(kind: str = "stage") -> list:
    """Stage (or pipeline) runs in this test's own store (mlflow keeps the last URI as global state)."""
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["synthguard"], output_format="list")
    return [r for r in runs if r.data.tags.get("run_kind") == kind]


def _params_file(tmp_path: Path, **changes) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["extract"].update(reviews=str(FIXTURES / "reviews_small.jsonl"), meta=str(FIXTURES / "meta_small.jsonl"),
                             max_reject_rate=1.0)
    params["extract"].update(changes)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_extract_cli_records_an_mlflow_run_without_record_text(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    monkeypatch.setenv("SYNTHGUARD_PIPELINE_ID", "pipe-1")
    out = tmp_path / "out"
    code = extract_main(["--params", str(_params_file(tmp_path)), "--out-dir", str(out),
                         "--rejects", str(out / "rejects.jsonl"), "--metrics", str(tmp_path / "m.json")])
    assert code == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    (run,) = _runs()
    assert run.info.run_name == "extract" and run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["stage"] == "extract" and tags["dvc_exp_name"] == "exp-test" and tags["pipeline_id"] == "pipe-1"
    assert len(tags["input_hash.reviews"]) == 64 and len(tags["input_hash.meta"]) == 64
    assert "dvc_exp_baseline_rev" not in tags
    assert run.data.params["extract.max_reject_rate"] == "1.0"
    assert run.data.metrics["rows_kept"] == metrics["rows_kept"] == 5
    assert run.data.metrics["rejected.invalid_rating"] == 2
    # Never leak: no review text (rejected or kept) in anything MLflow holds.
    texts = [json.loads(l).get("text") for l in (FIXTURES / "reviews_small.jsonl").read_text(errors="replace").splitlines()[:3]]
    stored = json.dumps([tags, run.data.params, run.data.metrics])
    assert all(t and t[:20] not in stored for t in texts)

    # The stage run is nested under its pipeline's parent, named after the experiment; a rerun
    # of a stage in the same execution finds that parent again instead of making a second one.
    (parent,) = _runs("pipeline")
    assert tags["mlflow.parentRunId"] == parent.info.run_id
    assert parent.info.run_name == "exp-test" and parent.info.status == "FINISHED"
    assert parent.data.tags["pipeline_id"] == "pipe-1"
    assert extract_main(["--params", str(_params_file(tmp_path)), "--out-dir", str(out),
                         "--rejects", str(out / "rejects.jsonl"), "--metrics", str(tmp_path / "m.json")]) == 0
    assert [r.info.run_id for r in _runs("pipeline")] == [parent.info.run_id]
    assert {r.data.tags["mlflow.parentRunId"] for r in _runs()} == {parent.info.run_id}


def test_cli_reports_user_errors_with_exit_code_2(tmp_path, capsys):
    params = _params_file(tmp_path, max_reject_rate=0.01)
    code = run_cli(extract_main, ["--no-mlflow", "--params", str(params), "--out-dir", str(tmp_path / "o")])
    assert code == 2
    assert "error: extract.reviews: 10 of 18 lines" in capsys.readouterr().err
    assert not _runs()


def test_cli_help_documents_inputs_and_outputs(capsys):
    with pytest.raises(SystemExit):
        extract_main(["--help"])
    text = capsys.readouterr().out
    assert "extract.reviews" in text and "--out-dir" in text and "rejects" in text


def _temp_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A project and the `dvc exp run --temp` copy of it that DVC runs stages in."""
    repo = tmp_path / "repo"
    copy = repo / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    copy.mkdir(parents=True)
    for root in (repo, copy):
        (root / "dvc.yaml").write_text("stages: {}\n")
    return repo, copy


def test_artifacts_land_in_mlartifacts_for_new_stores_and_temp_copies(tmp_path, monkeypatch):
    repo, copy = _temp_copy(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the project's own store, as `dvc repro` uses it
    monkeypatch.chdir(copy)
    monkeypatch.setenv("SYNTHGUARD_PIPELINE_ID", "pipe-art")
    (copy / "report.html").write_text("<p>report</p>")
    with tracking.stage_run("evaluate", params={}, input_hashes={}) as run:
        run.log_artifact(copy / "report.html")
    client = mlflow.MlflowClient(tracking.default_tracking_uri(repo))
    experiment = client.get_experiment_by_name("synthguard")
    assert experiment.artifact_location == (repo / "mlartifacts").as_uri()
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert (repo / "mlartifacts" / run.run_id / "artifacts" / "report.html").is_file()
    assert not list(tmp_path.rglob("mlruns")) and not list(copy.rglob("mlflow.db"))


def test_another_store_keeps_its_own_artifact_root(tmp_path):
    assert tracking.artifact_location(tmp_path, "http://127.0.0.1:5000") is None
    assert tracking.artifact_location(tmp_path, tracking.default_tracking_uri(tmp_path)) == (tmp_path / "mlartifacts").as_uri()


def test_a_malformed_pipeline_id_is_refused(monkeypatch):
    monkeypatch.setenv("SYNTHGUARD_PIPELINE_ID", "x' or 1=1")
    with pytest.raises(PipelineInputError, match="SYNTHGUARD_PIPELINE_ID=.*use 1-64 letters"):
        tracking.pipeline_id()


def test_inputs_are_datasets_with_name_digest_and_source_but_no_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHGUARD_PIPELINE_ID", "pipe-data")
    secret = "my neighbour Alice Wexley called about the charger"
    frame = pd.DataFrame({"text": [secret, "fine"], "rating": [5, 1]})
    path = tmp_path / "data" / "anonymized" / "train.parquet"
    path.parent.mkdir(parents=True)
    frame.to_parquet(path)
    with tracking.stage_run("train", params={}, input_hashes={}, root=tmp_path) as run:
        run.log_inputs([tracking.InputTable("real", path, frame, "training")])
    stored = mlflow.MlflowClient().get_run(run.run_id)
    (dataset_input,) = stored.inputs.dataset_inputs
    dataset = dataset_input.dataset
    assert dataset.name == "data/anonymized/train.parquet"
    assert dataset.digest == file_sha256(path)[:16] == stored.data.tags["input_hash.real"][:16]
    assert json.loads(dataset.source)["uri"].endswith("train.parquet")
    assert json.loads(dataset.profile)["num_rows"] == 2
    assert [t.value for t in dataset_input.tags if t.key == "mlflow.data.context"] == ["training"]
    assert "Alice" not in json.dumps([dataset.to_dictionary(), stored.data.tags])


def test_registered_versions_carry_a_signature_a_description_and_the_gate_verdict(tmp_path, monkeypatch, recwarn):
    monkeypatch.setenv("SYNTHGUARD_PIPELINE_ID", "pipe-reg")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "classifier.json").write_text("{}")
    with tracking.stage_run("train", params={}, input_hashes={}, root=tmp_path):
        version = tracking.log_registered_model(
            loader="stages.train.predict:RatingClassifier", artifacts={"model_dir": tmp_path / "model"},
            registered_name="clf", tags={"source": "synthetic"}, description="awaiting the gate",
            signature=({"text": "string", "title": "string?"}, {"rating_pred": "integer"}),
        )
    assert not [str(w.message) for w in recwarn if "type hint" in str(w.message).lower()]
    client = mlflow.MlflowClient()
    assert client.get_model_version("clf", version).description == "awaiting the gate"
    assert tracking.model_version_by_alias("clf", "candidate") == version
    info = mlflow.models.get_model_info(f"models:/clf/{version}")
    assert info.signature.inputs.input_names() == ["text", "title"]
    assert [c.required for c in info.signature.inputs.inputs] == [True, False]

    checks = {"epsilon": (True, 0.9, "<= 1"), "mia_auc": (False, 0.71, "<= 0.6 (strongest attack)"),
              "dcr_share": (False, None, "in [0.4, 0.6]")}
    with tracking.stage_run("evaluate", params={}, input_hashes={}, root=tmp_path):
        tracking.describe_gate_decision({"clf": version}, passed=False, checks=checks, champion={"clf": None})
    text = client.get_model_version("clf", version).description
    assert text.startswith("Privacy gate FAILED (evaluate run ") and "pipeline pipe-reg" in text
    assert "- epsilon: 0.9 <= 1: holds" in text and "- mia_auc: 0.71 <= 0.6 (strongest attack): FAILS" in text
    assert "- dcr_share: not measured in [0.4, 0.6]: FAILS" in text and text.endswith("`champion` stays unset.")


def test_pipeline_metrics_go_on_the_parent_run(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHGUARD_PIPELINE_ID", "pipe-head")
    with tracking.stage_run("evaluate", params={}, input_hashes={}, root=tmp_path):
        pass
    parent = tracking.log_pipeline_metrics({"privacy": {"dcr_share": 0.5}, "label": "text", "ok": True}, root=tmp_path)
    (run,) = _runs("pipeline")
    assert run.info.run_id == parent and run.data.metrics == {"privacy.dcr_share": 0.5, "ok": 1.0}


def test_headline_alone_leaves_no_parent_run_running(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHGUARD_PIPELINE_ID", "pipe-headline-only")
    parent = tracking.log_pipeline_metrics({"budget": {"epsilon_total": 7.9}}, root=tmp_path)
    (run,) = _runs("pipeline")
    assert run.info.run_id == parent and run.info.status == "FINISHED"
    assert run.data.metrics == {"budget.epsilon_total": 7.9}


def test_headline_keeps_a_failed_parent_failed(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHGUARD_PIPELINE_ID", "pipe-failed")
    with pytest.raises(RuntimeError):
        with tracking.stage_run("train", params={}, input_hashes={}, root=tmp_path):
            raise RuntimeError("boom")
    tracking.log_pipeline_metrics({"ok": True}, root=tmp_path)
    (run,) = _runs("pipeline")
    assert run.info.status == "FAILED"


def test_stage_metrics_log_flags_as_one_or_zero_and_skip_text(monkeypatch, tmp_path):
    """The frontier tells the zero-shot reference by `privacy.fine_tuned`: a flag must reach the store."""
    monkeypatch.setenv("SYNTHGUARD_PIPELINE_ID", "pipe-flags")
    with tracking.stage_run("evaluate", params={}, input_hashes={}, root=tmp_path) as run:
        run.log_metrics({"privacy": {"fine_tuned": False, "dp_enabled": True, "epsilon": 1.0}, "label": "text",
                         "missing": float("nan")})
    logged = mlflow.MlflowClient().get_run(run.run_id)
    assert logged.data.metrics == {"privacy.fine_tuned": 0.0, "privacy.dp_enabled": 1.0, "privacy.epsilon": 1.0}
