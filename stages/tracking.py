"""MLflow tracking for stage runs. The only module in the project that imports mlflow.

Every stage run is one MLflow run in experiment `synthguard`, named after the stage and
nested under one parent run per pipeline execution (`dvc repro`, `dvc exp run`): the
parent is keyed by the `pipeline_id` tag and created by whichever stage runs first.
The experiment carries MLflow 3's kind tag for classic ML, so the UI opens on its runs.
The store is `sqlite:///<project root>/mlflow.db` with artifacts under
`<project root>/mlartifacts/`, unless MLFLOW_TRACKING_URI says otherwise (then the
server's or store's own default artifact root applies). Runs that `dvc exp run
--temp/--queue` executes inside `.dvc/tmp/exps/...` resolve the project root to the real
repository, so every run, and every artifact, lands in the same store.

Metrics files are the source of truth; this module mirrors them. Callers pass counts,
scores and params only: never record text, never a secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.errors import PipelineInputError
from stages.io import file_sha256, flatten_metrics, is_number

EXPERIMENT = "synthguard"
# MLflow 3 treats an experiment without this tag as GenAI and opens it on an empty traces page.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
RUN_KIND_TAG = "run_kind"  # "pipeline" on the parent run, "stage" on each stage run
DATASET_DIGEST_CHARS = 16  # MLflow keeps at most 36; the full SHA-256 is the input_hash.<name> tag
_PIPELINE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_EXP_TMP_MARKER = os.sep + os.path.join(".dvc", "tmp", "exps") + os.sep


def project_root(start: str | Path | None = None) -> Path:
    """The repository root that owns the tracking store, seen through DVC's temp copies."""
    here = Path(start or Path.cwd()).resolve()
    text = str(here) + os.sep
    if _EXP_TMP_MARKER in text:
        return Path(text.split(_EXP_TMP_MARKER, 1)[0])
    for candidate in (here, *here.parents):
        if (candidate / "dvc.yaml").is_file():
            return candidate
    return here


def default_tracking_uri(root: Path) -> str:
    """The project's own SQLite store."""
    return f"sqlite:///{root / 'mlflow.db'}"


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI if set, else the project's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(root)


def artifact_location(root: Path, uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: `<root>/mlartifacts` for the project's store.

    Decided on the URI, not on whether MLFLOW_TRACKING_URI is set: `mlflow.set_tracking_uri`
    exports that variable itself, and MLflow's own default (`./mlruns` under the current
    directory) would put a `dvc exp run --temp` run's artifacts in a copy DVC deletes.
    Another store (MLFLOW_TRACKING_URI) keeps its server's default (None).
    """
    return (root / "mlartifacts").as_uri() if uri == default_tracking_uri(root) else None


def pipeline_id() -> str:
    """An id shared by the stage runs of one `dvc repro` / `dvc exp run` execution.

    SYNTHGUARD_PIPELINE_ID wins when set. Otherwise the id is derived from the nearest
    ancestor `dvc` process (its pid and start time), which every stage of one
    execution shares; a stage run outside DVC gets a fresh id.
    """
    explicit = os.environ.get("SYNTHGUARD_PIPELINE_ID")
    if explicit:
        if not _PIPELINE_ID.match(explicit):
            raise PipelineInputError(
                f"SYNTHGUARD_PIPELINE_ID={explicit!r}: use 1-64 letters, digits, '.', '_', ':' or '-'."
            )
        return explicit
    import psutil

    proc = psutil.Process()
    for parent in proc.parents():
        try:
            cmdline = parent.cmdline()
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        if _is_dvc(cmdline):
            seed = f"{parent.pid}-{parent.create_time()}"
            return str(uuid.UUID(hashlib.sha256(seed.encode()).hexdigest()[:32]))
    return str(uuid.uuid4())


def _is_dvc(cmdline: list[str]) -> bool:
    """True for `dvc ...` and `python -m dvc ...` command lines."""
    head = [Path(arg).name for arg in cmdline[:3]]
    return "dvc" in head or ("-m" in cmdline[:3] and "dvc" in cmdline[:4])


def git_commit(root: Path) -> str:
    """The HEAD commit of the working copy, or 'unknown' outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass(frozen=True)
class InputTable:
    """One input table of a stage, logged as an MLflow dataset (schema and row count, never rows)."""

    key: str  # the run's tag input_hash.<key>
    path: Path  # the file the stage read; its project-relative path names the dataset
    frame: Any  # the DataFrame read from it (for the schema and the row count)
    context: str  # MLflow's dataset context: training, validation, testing, evaluation


def metric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """What MLflow can hold of a (nested) metrics mapping: numbers under dotted names, a flag as 1.0 or 0.0."""
    return {k: float(v) for k, v in flatten_metrics(metrics).items() if is_number(v) or isinstance(v, bool)}


@dataclass
class StageRun:
    """Handle on an active MLflow stage run."""

    run_id: str
    root: Path

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Log `metric_values(metrics)` on this run."""
        import mlflow

        flat = metric_values(metrics)
        if flat:
            mlflow.log_metrics(flat)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Attach a file (a report, a plot) to the run."""
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Add tags to the run."""
        import mlflow

        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_inputs(self, tables: Sequence[InputTable]) -> None:
        """Tag each table's SHA-256 (input_hash.<key>) and log it as a dataset input of the run.

        The dataset has a name (the project-relative path), a digest (the SHA-256's first
        DATASET_DIGEST_CHARS hex digits), a source (the file) and the schema and row count
        MLflow profiles from the frame. No row, so no text, is stored.
        """
        import mlflow

        hashes = {t.key: file_sha256(t.path) for t in tables}
        self.set_tags({f"input_hash.{key}": digest for key, digest in hashes.items()})
        for table in tables:
            path = Path(table.path).resolve()
            try:
                name = path.relative_to(self.root).as_posix()
            except ValueError:
                name = path.name
            dataset = mlflow.data.from_pandas(
                table.frame, source=str(path), name=name, digest=hashes[table.key][:DATASET_DIGEST_CHARS]
            )
            mlflow.log_input(dataset, context=table.context)


@contextlib.contextmanager
def stage_run(
    stage: str,
    *,
    params: Mapping[str, Any],
    input_hashes: Mapping[str, str],
    root: Path | None = None,
) -> Iterator[StageRun]:
    """Open an MLflow run for one stage execution, with the project's standard tags.

    The run is nested under its pipeline's parent run (see pipeline_run), which shows
    RUNNING while a stage runs and FINISHED or FAILED as the last stage left it.
    """
    import mlflow

    root = root or project_root()
    client = _client(root)
    experiment_id = _experiment_id(client, root)
    mlflow.set_experiment(experiment_id=experiment_id)
    common = _common_tags()
    parent = pipeline_run(client, experiment_id, common)
    tags = {
        **common,
        "stage": stage,
        RUN_KIND_TAG: "stage",
        **{f"input_hash.{name}": digest for name, digest in input_hashes.items()},
    }
    client.update_run(parent, status="RUNNING")
    status = "FAILED"
    try:
        with mlflow.start_run(run_name=stage, tags=tags, parent_run_id=parent) as run:
            mlflow.log_params({k: _param_text(v) for k, v in params.items()})
            yield StageRun(run_id=run.info.run_id, root=root)
        status = "FINISHED"
    finally:
        client.set_terminated(parent, status)


def _client(root: Path):
    """An MlflowClient on the project's store (also made the process-wide default)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(root))
    return mlflow.MlflowClient()


def _experiment_id(client, root: Path) -> str:
    """The `synthguard` experiment, created on first use with the project's artifact root and kind."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        try:
            return client.create_experiment(
                EXPERIMENT, artifact_location=artifact_location(root, tracking_uri(root)),
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        except MlflowException:  # another process created it first
            experiment = client.get_experiment_by_name(EXPERIMENT)
    if EXPERIMENT_KIND_TAG not in experiment.tags:  # a store from before the tag; a user's own choice stays
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def _common_tags() -> dict[str, str]:
    tags = {"git_commit": git_commit(Path.cwd()), "pipeline_id": pipeline_id()}
    for env, tag in (("DVC_EXP_NAME", "dvc_exp_name"), ("DVC_EXP_BASELINE_REV", "dvc_exp_baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags


def pipeline_run(client, experiment_id: str, tags: Mapping[str, str]) -> str:
    """The parent run of this pipeline execution (tag pipeline_id), created when none exists yet.

    Idempotent: every stage of one execution, and a stage that reruns in it, finds the same
    parent. Should two processes create one at once, both keep the oldest and the
    other is deleted.
    """
    query = f"tags.pipeline_id = '{tags['pipeline_id']}' and tags.{RUN_KIND_TAG} = 'pipeline'"

    def existing() -> list:
        return client.search_runs([experiment_id], query, order_by=["attributes.start_time ASC"], max_results=10)

    found = existing()
    if found:
        return found[0].info.run_id
    name = tags.get("dvc_exp_name") or f"pipeline-{tags['pipeline_id'][:8]}"
    created = client.create_run(experiment_id, run_name=name, tags={**tags, RUN_KIND_TAG: "pipeline"}).info.run_id
    oldest = min(existing(), key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id
    if oldest != created:
        client.delete_run(created)
    return oldest


def log_pipeline_metrics(metrics: Mapping[str, Any], *, root: Path | None = None) -> str:
    """Log numeric metrics (the headline) on this execution's parent run; returns its id."""
    root = root or project_root()
    client = _client(root)
    experiment_id = _experiment_id(client, root)
    parent = pipeline_run(client, experiment_id, _common_tags())
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, v, now, 0) for k, v in metric_values(metrics).items()]
    for start in range(0, len(batch), 500):  # log_batch takes at most 1000 metrics
        client.log_batch(parent, metrics=batch[start:start + 500])
    # The headline runs last, after every other stage of the execution has ended. When it is the only
    # stage that ran (`dvc repro -s headline`, or only its code changed), it created the parent here,
    # and nothing else would end it: the UI would show it running for ever.
    if client.get_run(parent).info.status == "RUNNING":
        client.set_terminated(parent, "FINISHED")
    return parent


def _param_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def _pyfunc_class():
    """Build the pyfunc wrapper class lazily, so that importing this module stays cheap."""
    import importlib

    import mlflow.pyfunc
    import pandas as pd

    def _predict(self, context, model_input, params=None):
        """The wrapped model's predictions for a DataFrame."""
        return self.model_.predict(model_input)

    # Real objects, not this module's postponed (string) annotations, and set before the class
    # exists: MLflow reads the hints when the subclass is created, and warns "Add type hints"
    # without them.
    _predict.__annotations__ = {"model_input": pd.DataFrame, "return": pd.DataFrame}

    class StagePyfunc(mlflow.pyfunc.PythonModel):
        """Serves a stage's plain model class: `Class.load(artifacts) -> obj`, `obj.predict(frame)`."""

        def __init__(self, loader: str):
            self.loader = loader
            self.model_ = None

        def load_context(self, context):
            module, name = self.loader.split(":")
            self.model_ = getattr(importlib.import_module(module), name).load(dict(context.artifacts))

        predict = _predict

    return StagePyfunc


def model_signature(inputs: Mapping[str, str], outputs: Mapping[str, str]):
    """An MLflow signature from column -> type maps ('string', 'long', 'double'; a '?' suffix: optional)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    def schema(columns: Mapping[str, str]) -> Schema:
        return Schema([ColSpec(kind.rstrip("?"), name, required=not kind.endswith("?")) for name, kind in columns.items()])

    return ModelSignature(inputs=schema(inputs), outputs=schema(outputs))


def log_registered_model(
    *,
    loader: str,
    artifacts: Mapping[str, str | Path],
    registered_name: str,
    tags: Mapping[str, Any],
    signature: tuple[Mapping[str, str], Mapping[str, str]],
    description: str,
    input_example: Any = None,
) -> str:
    """Log a pyfunc model in the active run, register it, tag and describe the version, alias it `candidate`.

    `loader` is "module:Class" for a class with `load(artifacts: dict) -> model` and
    `model.predict(frame)`; `signature` is (input columns, output columns), see
    model_signature. Returns the new registered version.
    """
    import mlflow

    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=_pyfunc_class()(loader),
        artifacts={k: str(v) for k, v in artifacts.items()},
        registered_model_name=registered_name,
        signature=model_signature(*signature),
        input_example=input_example,
    )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(registered_name, version, key, str(value))
    client.update_model_version(registered_name, version, description=description)
    client.set_registered_model_alias(registered_name, "candidate", version)
    return version


def describe_gate_decision(
    versions: Mapping[str, str | None],
    *,
    passed: bool,
    checks: Mapping[str, tuple[bool, Any, str]],
    champion: Mapping[str, str | None],
) -> str:
    """Write the gate's verdict, check by check, into the description of each gated model version.

    `checks` maps a check's name to (held, observed value, limit in words), as the gate
    reports them; `champion` is where the alias points after the gate. Returns the text.
    """
    import mlflow

    run = mlflow.active_run()
    run_id = run.info.run_id if run else "none"
    pipeline = mlflow.MlflowClient().get_run(run_id).data.tags.get("pipeline_id", "none") if run else "none"
    lines = [f"Privacy gate {'PASSED' if passed else 'FAILED'} (evaluate run {run_id}, pipeline {pipeline}).", ""]
    for name, (ok, value, limit) in checks.items():
        shown = f"{value:.4g}" if is_number(value) else "not measured"
        lines.append(f"- {name}: {shown} {limit}: {'holds' if ok else 'FAILS'}")
    client = mlflow.MlflowClient()
    for name, version in versions.items():
        if not version:
            continue
        after = champion.get(name)
        moved = "this version is now `champion`." if after == str(version) else (
            f"`champion` stays at version {after}." if after else "`champion` stays unset.")
        text = "\n".join([*lines, "", moved])
        client.update_model_version(name, str(version), description=text)
    return "\n".join(lines)


def set_model_alias(registered_name: str, alias: str, version: str) -> None:
    """Point `alias` at `version` of a registered model."""
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(registered_name, alias, version)


def model_version_by_alias(registered_name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the alias is unset."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(registered_name, alias).version)
    except MlflowException:
        return None


def load_registered_model(uri: str):
    """Load a registered pyfunc model, e.g. 'models:/review-rating-classifier@candidate'."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(uri)


def latest_version_tagged(registered_name: str, key: str, value: str) -> str | None:
    """The newest version of a registered model whose tag `key` equals `value`, or None."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        versions = mlflow.MlflowClient().search_model_versions(f"name = '{registered_name}'")
    except MlflowException:
        return None
    tagged = [int(v.version) for v in versions if (v.tags or {}).get(key) == value]
    return str(max(tagged)) if tagged else None


def stage_run_metrics(stage: str) -> list[dict[str, Any]]:
    """Metrics and tags of every finished run of one stage in the project's store (for cross-run plots)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(project_root()))
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    runs = mlflow.MlflowClient().search_runs(
        [experiment.experiment_id], filter_string=f"tags.stage = '{stage}' and attributes.status = 'FINISHED'"
    )
    return [{"run_id": r.info.run_id, "start_time": r.info.start_time, "tags": dict(r.data.tags),
             "metrics": dict(r.data.metrics)} for r in runs]
