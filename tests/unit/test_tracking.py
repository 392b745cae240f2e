"""Tracking: the store location, DVC temp copies, tags, and the extract CLI's MLflow run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pytest
import yaml

from stages import tracking
from stages.extract.__main__ import main as extract_main
from stages._cli import run_cli
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


def _runs() -> list:
    """Runs in this test's own store (mlflow keeps the last URI it was given as global state)."""
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    return mlflow.search_runs(experiment_names=["synthguard"], output_format="list")


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
