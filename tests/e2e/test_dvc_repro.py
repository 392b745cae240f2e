"""End to end: `dvc repro` and `dvc exp run` in a temporary copy of the project, quick profile."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def _run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def project(tmp_path_factory, sample_dir) -> tuple[Path, dict]:
    """A git copy of the tracked project files, with the quick profile as params.yaml."""
    dest = tmp_path_factory.mktemp("project") / "synthguard"
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True)
    for rel in tracked.stdout.split():
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    quick = (ROOT / "tests" / "params.quick.yaml").read_text().replace("SAMPLE_DIR", str(sample_dir))
    (dest / "params.yaml").write_text(quick)
    (dest / "dvc.lock").unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}  # the copy's own store
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        MLFLOW_DISABLE_TELEMETRY="true",
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
    )
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        _run(cmd, dest, env)
    return dest, env


def _mlflow_runs(project: Path) -> list[dict]:
    with sqlite3.connect(project / "mlflow.db") as db:
        runs = db.execute("select run_uuid, name, status from runs").fetchall()
        tags = db.execute("select run_uuid, key, value from tags").fetchall()
    out = []
    for run_id, name, status in runs:
        out.append({"name": name, "status": status, "tags": {k: v for r, k, v in tags if r == run_id}})
    return out


def test_dvc_repro_runs_the_pipeline(project):
    dest, env = project
    _run(["dvc", "repro"], dest, env)
    for split in ("train", "val", "test"):
        assert (dest / "data" / "extracted" / f"{split}.parquet").is_file()
    assert (dest / "data" / "extracted" / "rejects.jsonl").is_file()
    metrics = json.loads((dest / "metrics" / "extract.json").read_text())
    assert metrics["rows_read"] == 1500
    assert metrics["rows_read"] == (
        metrics["rows_kept"] + metrics["rows_rejected"] + metrics["rows_duplicate"] + metrics["rows_filtered"]
    )
    runs = {run["name"]: run for run in _mlflow_runs(dest)}
    extract = runs["extract"]
    assert extract["status"] == "FINISHED"
    assert extract["tags"]["stage"] == "extract"
    assert len(extract["tags"]["git_commit"]) == 40
    assert extract["tags"]["pipeline_id"]
    assert len(extract["tags"]["input_hash.reviews"]) == 64

    # anonymize: the splits written, nothing detected left anywhere, the benchmark scored.
    for split in ("train", "val", "test"):
        assert (dest / "data" / "anonymized" / f"{split}.parquet").is_file()
    anonymize = json.loads((dest / "metrics" / "anonymize.json").read_text())
    assert anonymize["leak_count"] == 0 and "recall_person" in anonymize["benchmark"]
    assert runs["anonymize"]["status"] == "FINISHED"

    # synthesize: records written, the accountant's epsilon within the target, the generator registered.
    assert (dest / "data" / "synthetic" / "reviews.parquet").is_file()
    assert (dest / "models" / "generator" / "canaries.json").is_file()
    synth = json.loads((dest / "metrics" / "synthesize.json").read_text())
    assert synth["dp_enabled"] is True and synth["records_written"] > 0
    assert 0 < synth["epsilon"] <= synth["target_epsilon"]
    assert runs["synthesize"]["status"] == "FINISHED"

    # train: a classifier per source scored on the real test split, both registered, the newest candidate.
    train = json.loads((dest / "metrics" / "train.json").read_text())
    for source in ("synthetic", "real"):
        assert (dest / "models" / "classifier" / source / "classifier.json").is_file()
        assert 0 <= train[f"{source}.lora.macro_f1"] <= 1 and 0 <= train[f"{source}.tfidf.accuracy"] <= 1
    assert "ratio.lora.accuracy" in train and "ratio.lora.macro_f1" in train
    assert "lift.lora.macro_f1" in train and "lift.tfidf.macro_f1" in train
    assert (dest / "metrics" / "plots" / "train" / "confusion" / "synthetic_lora.csv").is_file()
    assert runs["train"]["status"] == "FINISHED"
    with sqlite3.connect(dest / "mlflow.db") as db:
        aliases = db.execute("select alias, version from registered_model_aliases where name = 'review-rating-classifier'").fetchall()
    assert aliases == [("candidate", 2)]

    # evaluate: metrics in every group, the report, the plot data; the quick gate (max_epsilon 1) fails.
    ev = json.loads((dest / "metrics" / "evaluate.json").read_text())
    for key in ("fidelity.text.mauve", "fidelity.structured.column_pair_trends", "privacy.dcr.embedding.dcr_share",
                "privacy.mia.auc", "privacy.canary.exposure_mean", "utility.real.tfidf.accuracy"):
        assert ev[key] is not None, key
    assert ev["privacy.epsilon"] == synth["epsilon"]
    assert ev["gate.passed"] == 0 and ev["gate.epsilon"] == 0 and ev["gate.champion_moved"] == 0
    page = (dest / "metrics" / "report.html").read_text()
    assert "data:image/png;base64," in page and "Privacy gate: FAILED" in page
    for name in ("nn_similarity.csv", "rating_distribution.csv", "privacy_utility.json"):
        assert (dest / "metrics" / "plots" / "evaluate" / name).is_file()
    assert runs["evaluate"]["status"] == "FINISHED"
    with sqlite3.connect(dest / "mlflow.db") as db:
        champions = db.execute("select name from registered_model_aliases where alias = 'champion'").fetchall()
    assert champions == []

    # Nothing changed: a second repro reruns only the fingerprint guard.
    second = _run(["dvc", "repro"], dest, env)
    assert "Stage 'extract' didn't change, skipping" in second.stdout


def test_dvc_exp_run_overrides_and_lists_metrics(project):
    dest, env = project
    # Only the extract target: the whole chain already ran under `dvc repro` above.
    _run(["dvc", "exp", "run", "-n", "cap300", "-S", "extract.max_rows=300", "extract"], dest, env)
    shown = json.loads(_run(["dvc", "exp", "show", "--json"], dest, env).stdout)
    text = json.dumps(shown)
    assert "cap300" in text and "rows_kept" in text
    assert "epsilon" in text and "leak_count" in text  # the other stages' metrics are listed too
    metrics = json.loads((dest / "metrics" / "extract.json").read_text())
    assert metrics["rows_read"] == 300
    names = [run["tags"].get("dvc_exp_name") for run in _mlflow_runs(dest) if run["name"] == "extract"]
    assert "cap300" in names


def test_dvc_exp_run_temp_logs_into_the_project_store(project):
    """A --temp run executes in .dvc/tmp/exps/...; its MLflow run must land in the project's store."""
    dest, env = project
    _run(["dvc", "exp", "run", "--temp", "-n", "tempcap", "-S", "extract.max_rows=200", "extract"], dest, env)
    runs = [run for run in _mlflow_runs(dest) if run["tags"].get("dvc_exp_name") == "tempcap"]
    assert len(runs) == 1 and runs[0]["status"] == "FINISHED"
    assert runs[0]["tags"]["dvc_exp_baseline_rev"]
    assert not list((dest / ".dvc" / "tmp").rglob("mlflow.db"))  # no stray store inside the temp copy
