"""End to end: `dvc repro` and `dvc exp run` in a temporary copy of the project, quick profile."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from stages.ledger import LEDGER, unclaimed_metrics
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
    assert anonymize["detected_value_reoccurrences"] == 0 and "recall_person" in anonymize["benchmark"]
    assert runs["anonymize"]["status"] == "FINISHED"

    # synthesize: records written, the accountant's epsilon within the target, the generator registered.
    assert (dest / "data" / "synthetic" / "reviews.parquet").is_file()
    assert (dest / "models" / "generator" / "canaries.json").is_file()
    synth = json.loads((dest / "metrics" / "synthesize.json").read_text())
    assert synth["dp_enabled"] is True and synth["records_written"] > 0
    assert 0 < synth["epsilon"] <= synth["target_epsilon"]
    assert 0 < synth["epsilon_total"] <= synth["epsilon_text"] + synth["epsilon_tabular"]
    ledger = json.loads((dest / "metrics" / "privacy_ledger.json").read_text())
    assert ledger["epsilon_total"] == synth["epsilon_total"]
    assert {e.component for e in LEDGER} == set(ledger["components"])
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
    assert ev["privacy.epsilon"] == synth["epsilon_total"] and ev["privacy.epsilon_text"] == synth["epsilon"]
    for name in ("extract", "anonymize", "synthesize", "train", "evaluate"):  # every metric has a ledger entry
        path = f"metrics/{name}.json"
        assert unclaimed_metrics(path, json.loads((dest / path).read_text())) == [], path
    assert ev["gate.passed"] == 0 and ev["gate.epsilon"] == 0 and ev["gate.champion_moved"] == 0
    page = (dest / "metrics" / "report.html").read_text()
    assert "data:image/png;base64," in page and "Privacy gate: FAILED" in page and "Privacy ledger" in page
    for name in ("nn_similarity.csv", "rating_distribution.csv", "privacy_utility.json"):
        assert (dest / "metrics" / "plots" / "evaluate" / name).is_file()
    assert runs["evaluate"]["status"] == "FINISHED"
    with sqlite3.connect(dest / "mlflow.db") as db:
        champions = db.execute("select name from registered_model_aliases where alias = 'champion'").fetchall()
    assert champions == []

    # Nothing changed: a second repro reruns only the fingerprint guard.
    second = _run(["dvc", "repro"], dest, env)
    assert "Stage 'extract' didn't change, skipping" in second.stdout


def test_the_utility_check_alone_keeps_champion(project):
    """Every privacy check relaxed, the utility threshold above any run: the gate refuses, champion stays."""
    dest, env = project
    relaxed = ["evaluate.gate.max_epsilon=1000", "evaluate.gate.max_canary_leaks=1000", "evaluate.gate.max_mia_auc=1",
               "evaluate.gate.dcr_share_min=0", "evaluate.gate.dcr_share_max=1", "evaluate.gate.max_residual_pii=100000",
               "evaluate.gate.min_utility_ratio=1000"]
    _run(["dvc", "exp", "run", "-n", "utility-refused", *[a for s in relaxed for a in ("-S", s)], "evaluate"], dest, env)
    ev = json.loads((dest / "metrics" / "evaluate.json").read_text())
    assert ev["gate.utility"] == 0 and ev["gate.failed_checks"] == 1 and ev["gate.passed"] == 0
    assert ev["gate.champion_moved"] == 0
    page = (dest / "metrics" / "report.html").read_text()
    assert "Failed: the utility check (utility)" in page
    with sqlite3.connect(dest / "mlflow.db") as db:
        assert db.execute("select name from registered_model_aliases where alias = 'champion'").fetchall() == []

    # The same run with the utility threshold at 0: every check holds and champion moves.
    relaxed[-1] = "evaluate.gate.min_utility_ratio=0"
    _run(["dvc", "exp", "run", "-n", "all-relaxed", *[a for s in relaxed for a in ("-S", s)], "evaluate"], dest, env)
    ev = json.loads((dest / "metrics" / "evaluate.json").read_text())
    assert ev["gate.passed"] == 1 and ev["gate.champion_moved"] == 1
    with sqlite3.connect(dest / "mlflow.db") as db:
        moved = db.execute("select name, version from registered_model_aliases where alias = 'champion'").fetchall()
    assert sorted(moved) == [("review-generator", 1), ("review-rating-classifier", 1)]  # the synthetic-trained one


def _experiment_metrics(shown: list[dict], name: str) -> dict[str, dict]:
    """`dvc exp show --json` -> {metrics file: its data} of the experiment called `name`."""
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                if rev.get("name") == name:
                    return {path: entry["data"] for path, entry in rev["data"]["metrics"].items()}
    raise AssertionError(f"experiment {name!r} is not in `dvc exp show`")


def test_dvc_exp_run_overrides_and_lists_metrics(project):
    dest, env = project
    # Only the extract target: the whole chain already ran under `dvc repro` above.
    _run(["dvc", "exp", "run", "-n", "cap300", "-S", "extract.max_rows=300", "extract"], dest, env)
    shown = json.loads(_run(["dvc", "exp", "show", "--json"], dest, env).stdout)
    listed = _experiment_metrics(shown, "cap300")
    assert listed["metrics/extract.json"]["rows_kept"] > 0
    # The stages the experiment did not rerun are listed with it too, under the names they write today.
    assert "detected_value_reoccurrences" in listed["metrics/anonymize.json"]
    assert "epsilon_total" in listed["metrics/synthesize.json"]
    assert "privacy.epsilon" in listed["metrics/evaluate.json"]
    assert "budget.epsilon_total" in listed["metrics/headline.json"]
    metrics = json.loads((dest / "metrics" / "extract.json").read_text())
    assert metrics["rows_read"] == 300
    names = [run["tags"].get("dvc_exp_name") for run in _mlflow_runs(dest) if run["name"] == "extract"]
    assert "cap300" in names


def test_dvc_exp_run_temp_logs_into_the_project_store(project):
    """A --temp run executes in .dvc/tmp/exps/...; its MLflow run must land in the project's store."""
    dest, env = project
    _run(["dvc", "exp", "run", "--temp", "-n", "tempcap", "-S", "extract.max_rows=200", "extract"], dest, env)
    runs = [run for run in _mlflow_runs(dest) if run["tags"].get("dvc_exp_name") == "tempcap" and run["name"] == "extract"]
    assert len(runs) == 1 and runs[0]["status"] == "FINISHED"
    assert runs[0]["tags"]["dvc_exp_baseline_rev"]
    assert not list((dest / ".dvc" / "tmp").rglob("mlflow.db"))  # no stray store inside the temp copy


# ---------------------------------------------------------------- the MLflow UI on that store


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_ui(project):
    """`mlflow ui` on a free loopback port against the store the runs above filled (as `make ui`)."""
    dest, env = project
    port = _free_port()
    log = dest / "mlflow-ui.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["mlflow", "ui", "--backend-store-uri", f"sqlite:///{dest / 'mlflow.db'}",
             "--default-artifact-root", str(dest / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            cwd=dest, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, f"mlflow ui did not start:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        yield base
    finally:  # the server and its uvicorn worker: the session this test started, by its id
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def _api(base: str, endpoint: str, body: dict | None = None, **query) -> dict:
    url = f"{base}/api/2.0/mlflow/{endpoint}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def test_mlflow_ui_shows_the_pipeline_runs_datasets_and_registry(project, mlflow_ui):
    dest, _ = project
    experiment = _api(mlflow_ui, "experiments/get-by-name", experiment_name="synthguard")["experiment"]
    tags = {t["key"]: t["value"] for t in experiment.get("tags", [])}
    assert tags["mlflow.experimentKind"] == "custom_model_development"  # opens on its runs, not GenAI traces
    assert experiment["artifact_location"] == (dest / "mlartifacts").as_uri()
    runs = _api(mlflow_ui, "runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 500})["runs"]
    by_id = {r["info"]["run_id"]: r for r in runs}

    def tags_of(run):
        return {t["key"]: t["value"] for t in run["data"].get("tags", [])}

    # One parent per execution, every stage run nested under the parent of its pipeline_id.
    parents = {rid: r for rid, r in by_id.items() if tags_of(r).get("run_kind") == "pipeline"}
    stages = [r for r in runs if tags_of(r).get("run_kind") == "stage"]
    assert stages and all(tags_of(r)["mlflow.parentRunId"] in parents for r in stages)
    assert all(tags_of(parents[tags_of(r)["mlflow.parentRunId"]])["pipeline_id"] == tags_of(r)["pipeline_id"] for r in stages)
    children: dict[str, list[str]] = {}
    for run in stages:
        children.setdefault(tags_of(run)["mlflow.parentRunId"], []).append(run["info"]["run_name"])
    repro = [pid for pid, names in children.items() if set(names) >= {"extract", "anonymize", "synthesize", "train", "evaluate"}]
    assert len(repro) == 1, children  # the first `dvc repro` (the second one ran no stage)
    parent = parents[repro[0]]
    repro_stages = [r for r in stages if tags_of(r)["mlflow.parentRunId"] == repro[0]]
    assert parent["info"]["status"] == "FINISHED"
    headline = json.loads((dest / "metrics" / "headline.json").read_text())
    parent_metrics = {m["key"]: m["value"] for m in parent["data"].get("metrics", [])}
    assert parent_metrics["privacy.dcr_share"] == pytest.approx(headline["privacy.dcr_share"])
    assert {tags_of(parents[p]).get("dvc_exp_name") for p in children} >= {"cap300", "tempcap"}

    # Inputs are datasets: name, digest, source; the train run has the anonymized splits and the synthetic set.
    (train,) = [r for r in repro_stages if r["info"]["run_name"] == "train"]
    datasets = {d["dataset"]["name"]: d for d in train["inputs"]["dataset_inputs"]}
    assert set(datasets) == {"data/anonymized/train.parquet", "data/anonymized/test.parquet", "data/synthetic/reviews.parquet"}
    synthetic = datasets["data/synthetic/reviews.parquet"]
    assert len(synthetic["dataset"]["digest"]) == 16 and tags_of(train)["input_hash.synthetic"].startswith(synthetic["dataset"]["digest"])
    assert json.loads(synthetic["dataset"]["source"])["uri"].endswith("data/synthetic/reviews.parquet")
    assert [t["value"] for t in synthetic["tags"] if t["key"] == "mlflow.data.context"] == ["training"]
    raw = (dest / "data" / "extracted" / "train.parquet")
    import pandas as pd

    texts = pd.read_parquet(raw, columns=["text"])["text"].head(20)
    stored = json.dumps(runs)
    assert not [t for t in texts if len(t) > 30 and t[:30] in stored]  # no raw text in anything the UI serves

    # The evaluate run carries the report (and the ledger, where synthesize writes one).
    (evaluate,) = [r for r in repro_stages if r["info"]["run_name"] == "evaluate"]
    files = {f["path"] for f in _api(mlflow_ui, "artifacts/list", run_id=evaluate["info"]["run_id"]).get("files", [])}
    assert "report.html" in files
    if (dest / "metrics" / "privacy_ledger.json").is_file():
        assert "privacy_ledger.json" in files

    # The registry: `candidate` on the newest version, `champion` where the last passing gate
    # (the all-relaxed experiment) put it, and each gated version (the generator, the
    # synthetic-trained classifier) says in its description what that gate decided and why.
    for name, candidate, gated in (("review-rating-classifier", "2", "1"), ("review-generator", "1", "1")):
        model = _api(mlflow_ui, "registered-models/get", name=name)["registered_model"]
        aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
        assert aliases == {"candidate": candidate, "champion": gated}, aliases
        described = _api(mlflow_ui, "model-versions/get", name=name, version=gated)["model_version"]["description"]
        assert described.startswith("Privacy gate PASSED") and described.endswith("this version is now `champion`.")
        assert "- epsilon: " in described and "- utility: " in described and ": FAILS" not in described
    reference = _api(mlflow_ui, "model-versions/get", name="review-rating-classifier", version="2")["model_version"]
    assert "Never a release candidate" in reference["description"]
