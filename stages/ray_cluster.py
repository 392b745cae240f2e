"""The Ray cluster the ray engines run on: start a quiet local one, or connect to an existing one.

`address: null` starts a local cluster sized by `num_workers` (one CPU slot per worker
actor, plus one for Ray Data's read and merge tasks) and stops it afterwards. Any other
address (`auto`, `HOST:PORT` of a head node, `ray://HOST:10001` for Ray Client, as a
KubeRay head service exposes) is connected to and left running. A process that already
has Ray initialised (a test session's cluster) reuses it.

Ray stays quiet and offline: no dashboard, no usage stats, and worker output is not
forwarded to the driver, so nothing a worker prints (the raw text it handles) reaches
the stage's log. Only counts and the address, without credentials, leave this module.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from stages.errors import ParamsError
from stages.params import bounded

# A worker process that dies (OOM kill, lost node) is restarted and its batch rerun this
# often; a batch that keeps killing its worker fails the run instead of looping forever.
MAX_RESTARTS = 3
CONNECT_TIMEOUT_S = 5.0
_QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_USAGE_STATS_PROMPT_ENABLED": "0",
    "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
    # Ray starts local workers at nice 15: on a shared box they would crawl behind any other process
    "RAY_worker_niceness": "0",
}


@dataclass(frozen=True)
class RayParams:
    """Where the ray engine runs (the `ray:` sub-section of a stage that has `engine: ray`)."""

    address: str | None  # null: start a local cluster; else `auto`, HOST:PORT or ray://HOST:PORT
    num_workers: int = bounded(min=1, max=4096)  # worker actors (each loads the model once)


@dataclass(frozen=True)
class ClusterInfo:
    """What a stage records about the cluster it ran on (safe to log: no credentials)."""

    address: str
    num_workers: int
    started_here: bool

    def tags(self, engine: str = "ray") -> dict[str, str]:
        """MLflow tags of a ray-engine stage run."""
        return {"engine": engine, "ray.address": self.address, "ray.num_workers": str(self.num_workers),
                "ray.local_cluster": str(self.started_here).lower()}


def redact_address(address: str) -> str:
    """The address without user:password@ (a Ray Client URL may carry them)."""
    return re.sub(r"(?<=://)[^/@]*@", "", address)


def quiet_environment() -> None:
    """Environment that turns Ray's telemetry and chatter off (also inherited by local workers)."""
    os.environ.update(_QUIET_ENV)


def _check_reachable(address: str, param: str) -> None:
    """Fail fast, naming the param, when HOST:PORT does not accept connections (ray.init would hang)."""
    target = address.split("://", 1)[-1].rsplit("@", 1)[-1].split("/", 1)[0]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ParamsError(
            f"{param}: {redact_address(address)!r} is not a Ray address; use null (start a local cluster), "
            "'auto', HOST:PORT of a head node, or ray://HOST:10001"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ParamsError(
            f"{param}: the Ray cluster at {redact_address(address)!r} is unreachable ({type(exc).__name__}: "
            f"{exc.strerror or exc}); start it (`ray start --head`, or a KubeRay RayCluster), fix the address, "
            "or set it to null to run on a local cluster"
        ) from None


@contextlib.contextmanager
def ray_cluster(params: RayParams, *, param: str) -> Iterator[ClusterInfo]:
    """Connect to (or start) the cluster `params` names for the duration of the block.

    `param` is the dotted params key of the address (e.g. `anonymize.ray.address`),
    named in every connection error.
    """
    quiet_environment()
    import ray

    if params.address is not None and params.address != "auto":
        _check_reachable(params.address, param)
    if ray.is_initialized():
        yield ClusterInfo(address=_current_address(ray), num_workers=params.num_workers, started_here=False)
        return
    common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    try:
        if params.address is None:
            ray.init(address="local", num_cpus=params.num_workers + 1, **common)
        else:
            ray.init(address=params.address, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ParamsError(
            f"{param}: could not connect to the Ray cluster at {redact_address(str(params.address))!r} "
            f"({type(exc).__name__}); check that it runs and that this Ray version ({ray.__version__}) matches it"
        ) from None
    try:
        _configure_data()
        yield ClusterInfo(address=_current_address(ray), num_workers=params.num_workers,
                          started_here=params.address is None)
    finally:
        ray.shutdown()


def start_local(num_cpus: int) -> None:
    """Start a quiet local cluster in this process (what the tests share); stop it with ray.shutdown()."""
    quiet_environment()
    import ray

    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, configure_logging=True)
    _configure_data()


def _configure_data() -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    context.execution_options.preserve_order = True  # outputs keep the input's row order
    context.enable_progress_bars = False  # the stage shows its own; Ray's would interleave in DVC's log
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    # max_restarts / max_task_retries have no named map_batches parameter in this Ray yet
    warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")


def _current_address(ray) -> str:
    context = ray.get_runtime_context()
    return redact_address(str(getattr(context, "gcs_address", None) or "local"))


def actor_options(num_workers: int) -> dict:
    """Ray Data map_batches options: a fixed pool of `num_workers` one-CPU actors, restarted on death."""
    return dict(concurrency=num_workers, num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)


def check_capacity(num_workers: int, *, param: str) -> None:
    """Fail, naming the param, when the cluster cannot hold the actor pool and one CPU for Ray Data's reads.

    Ray Data schedules the pool first; with no CPU left, its read tasks would wait forever.
    """
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 0))
    if cpus < num_workers + 1:
        raise ParamsError(
            f"{param}: {num_workers} workers need {num_workers + 1} CPUs (one per worker, one for reading) "
            f"but the Ray cluster has {cpus}; lower {param} or add nodes"
        )


@contextlib.contextmanager
def engine_cluster(engine: str, params: RayParams, *, param: str) -> Iterator[ClusterInfo | None]:
    """The cluster of a stage whose `engine` is ray (see ray_cluster); None, and nothing started, for local."""
    if engine != "ray":
        yield None
        return
    with ray_cluster(params, param=param) as info:
        yield info


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Re-raise a SynthguardError that a Ray task or actor raised as itself, so the CLI reports it (exit 2)."""
    from stages.errors import SynthguardError

    try:
        yield
    except Exception as exc:
        seen, pending = set(), [exc]
        while pending:
            err = pending.pop()
            if id(err) in seen or err is None:
                continue
            seen.add(id(err))
            if isinstance(err, SynthguardError):
                raise type(err)(str(err)) from None
            pending += [getattr(err, "cause", None), err.__cause__]
        raise
