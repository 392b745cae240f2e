"""Shared fixtures: the project root, hand-written fixtures, and the shared real sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The shared real sample. In CI a missing folder fails the test; locally it skips."""
    value = os.environ.get("SYNTHGUARD_SAMPLE_DIR")
    path = Path(value) if value else None
    if path is None or not (path / "Electronics.10k.jsonl.gz").is_file():
        message = (
            f"SYNTHGUARD_SAMPLE_DIR={value!r} does not hold the shared Amazon Reviews 2023 sample; "
            "export it (make test sets it to ../shared/data/amazon_reviews_2023)."
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path_factory, monkeypatch):
    """Every test that records runs gets its own SQLite store, never the project's."""
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray cluster for the session's ray-engine tests: two workers plus one CPU for Ray Data's reads."""
    import ray

    from stages.ray_cluster import start_local

    start_local(num_cpus=3)
    yield
    ray.shutdown()
