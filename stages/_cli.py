"""Command-line plumbing shared by every stage: common options and error reporting."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from stages.errors import SynthguardError


def stage_parser(stage: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every stage takes."""
    parser = argparse.ArgumentParser(
        prog=f"python -m stages.{stage}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    parser.add_argument(
        "--no-mlflow", action="store_true", help="do not record an MLflow run (metrics files are still written)"
    )
    return parser


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a stage's main; a SynthguardError prints its message and exits 2, anything else raises."""
    try:
        return main(argv)
    except SynthguardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


class _Untracked:
    """Stands in for an MLflow run under --no-mlflow: the same calls, recorded nowhere."""

    def log_metrics(self, metrics) -> None:
        """Nothing to log to."""

    def log_artifact(self, path, artifact_path=None) -> None:
        """Nothing to log to."""

    def set_tags(self, tags) -> None:
        """Nothing to log to."""

    def log_inputs(self, tables) -> None:
        """Nothing to log to."""


@contextlib.contextmanager
def tracked_stage(stage: str, args: argparse.Namespace, params: Mapping[str, Any]) -> Iterator[Any]:
    """The stage's MLflow run (see stages.tracking), or a no-op under --no-mlflow."""
    if args.no_mlflow:
        yield _Untracked()
        return
    from stages.tracking import stage_run

    with stage_run(stage, params=params, input_hashes={}) as run:
        yield run
