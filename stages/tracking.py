"""MLflow tracking for stage runs. The only module in the project that imports mlflow.

Every stage run is one MLflow run in experiment `synthguard`, named after the stage.
The store is `sqlite:///<project root>/mlflow.db` with artifacts under
`<project root>/mlartifacts/`, unless MLFLOW_TRACKING_URI says otherwise. Runs that
`dvc exp run --temp/--queue` executes inside `.dvc/tmp/exps/...` resolve the project
root to the real repository, so every run lands in the same store.

Metrics files are the source of truth; this module mirrors them. Callers pass counts,
scores and params only: never record text, never a secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.io import flatten_metrics, is_number

EXPERIMENT = "synthguard"
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


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI if set, else the project's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"


def pipeline_id() -> str:
    """An id shared by the stage runs of one `dvc repro` / `dvc exp run` execution.

    SYNTHGUARD_PIPELINE_ID wins when set. Otherwise the id is derived from the nearest
    ancestor `dvc` process (its pid and start time), which every stage of one
    execution shares; a stage run outside DVC gets a fresh id.
    """
    explicit = os.environ.get("SYNTHGUARD_PIPELINE_ID")
    if explicit:
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


@dataclass
class StageRun:
    """Handle on an active MLflow stage run."""

    run_id: str

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Log the numeric leaves of a (nested) metrics mapping under dotted names."""
        import mlflow

        flat = {k: float(v) for k, v in flatten_metrics(metrics).items() if is_number(v)}
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


@contextlib.contextmanager
def stage_run(
    stage: str,
    *,
    params: Mapping[str, Any],
    input_hashes: Mapping[str, str],
    root: Path | None = None,
) -> Iterator[StageRun]:
    """Open an MLflow run for one stage execution, with the project's standard tags."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow

    root = root or project_root()
    mlflow.set_tracking_uri(tracking_uri(root))
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        artifacts = None if os.environ.get("MLFLOW_TRACKING_URI") else (root / "mlartifacts").as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
    mlflow.set_experiment(EXPERIMENT)
    tags = {
        "stage": stage,
        "git_commit": git_commit(Path.cwd()),
        "pipeline_id": pipeline_id(),
        **{f"input_hash.{name}": digest for name, digest in input_hashes.items()},
    }
    for env, tag in (("DVC_EXP_NAME", "dvc_exp_name"), ("DVC_EXP_BASELINE_REV", "dvc_exp_baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    with mlflow.start_run(run_name=stage, tags=tags) as run:
        mlflow.log_params({k: _param_text(v) for k, v in params.items()})
        yield StageRun(run_id=run.info.run_id)


def _param_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def _pyfunc_class():
    """Build the pyfunc wrapper class lazily, so that importing this module stays cheap."""
    import importlib

    import mlflow.pyfunc

    class StagePyfunc(mlflow.pyfunc.PythonModel):
        """Serves a stage's plain model class: `Class.load(artifacts) -> obj`, `obj.predict(frame)`."""

        def __init__(self, loader: str):
            self.loader = loader
            self.model_ = None

        def load_context(self, context):
            module, name = self.loader.split(":")
            self.model_ = getattr(importlib.import_module(module), name).load(dict(context.artifacts))

        def predict(self, context, model_input, params=None):
            return self.model_.predict(model_input)

    return StagePyfunc


def log_registered_model(
    *,
    loader: str,
    artifacts: Mapping[str, str | Path],
    registered_name: str,
    tags: Mapping[str, Any],
    input_example: Any = None,
) -> str:
    """Log a pyfunc model in the active run, register it, tag the version, alias it `candidate`.

    `loader` is "module:Class" for a class with `load(artifacts: dict) -> model` and
    `model.predict(frame)`. Returns the new registered version.
    """
    import mlflow

    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=_pyfunc_class()(loader),
        artifacts={k: str(v) for k, v in artifacts.items()},
        registered_model_name=registered_name,
        input_example=input_example,
    )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(registered_name, version, key, str(value))
    client.set_registered_model_alias(registered_name, "candidate", version)
    return version


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
