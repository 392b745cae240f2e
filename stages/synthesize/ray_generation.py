"""Generation on a Ray cluster: generator actors, each loading the saved generator once.

The controls are cut into fixed-size batches (`generation.batch_size` rows) addressed by
their global index; batch b is generated with a seed drawn only from (seed, b). So a
record depends on the seed, its batch and its controls, never on how many workers ran
or which of them got the batch. Batches go to the actors round-robin; a worker that dies
is restarted and its pending batches rerun (Ray's actor restarts and task retries), and
the results are gathered by batch index: each index exactly once, or the run fails.

The saved generator (adapter, tokenizer, config) travels to the actors through the object
store, so a remote cluster needs no shared disk; the base model it references must be
loadable there (an HF id, or the same path on every node).
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from stages.ray_cluster import MAX_RESTARTS
from stages.synthesize.generator import ReviewGenerator
from stages.synthesize.params import GenerationParams

CONTROL_COLUMNS = ("rating", "main_category", "text_chars")


def batch_seed(seed: int, index: int) -> int:
    """The generation seed of batch `index`: a function of (seed, index) only."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def write_batch(generator: ReviewGenerator, controls: pd.DataFrame, gen: GenerationParams, *, seed: int) -> dict:
    """Generate one batch of controls with one seed (the single call into the generator)."""
    return generator.write(controls, gen, seed=seed)


def pack_generator(directory: Path) -> bytes:
    """The saved generator folder as a tar archive; a relative base-model path is made absolute."""
    import json

    from stages.synthesize.text import resolve_base_model

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(Path(directory).rglob("*")):
            if not path.is_file():
                continue
            name = str(path.relative_to(directory))
            data = path.read_bytes()
            if name == "config.json":
                config = json.loads(data)
                resolved = resolve_base_model(config["base_model"])
                if Path(resolved).exists():
                    config["base_model"] = str(Path(resolved).resolve())  # workers need not share the cwd
                data = json.dumps(config, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class GeneratorActor:
    """One worker: the generator, loaded once from the packed folder."""

    def __init__(self, packed: bytes):
        self._dir = tempfile.TemporaryDirectory(prefix="synthguard-generator-")
        with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
            tar.extractall(self._dir.name, filter="data")
        self.generator = ReviewGenerator.load_dir(self._dir.name)

    def pid(self) -> int:
        """The worker's process id (the failure test kills it)."""
        return os.getpid()

    def write(self, index: int, controls: pd.DataFrame, gen: GenerationParams, seed: int) -> tuple[int, dict]:
        """Batch `index`, with its own seed."""
        return index, write_batch(self.generator, controls, gen, seed=batch_seed(seed, index))


class GeneratorPool:
    """`num_workers` generator actors on the connected cluster, each with one CPU (or one GPU) slot."""

    def __init__(self, packed: bytes, num_workers: int, *, num_gpus: float = 0):
        import ray

        ref = ray.put(packed)
        remote = ray.remote(GeneratorActor).options(
            num_cpus=0 if num_gpus else 1, num_gpus=num_gpus, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS
        )
        self.actors = [remote.remote(ref) for _ in range(num_workers)]

    def pids(self) -> list[int]:
        """The actors' process ids (once they are up)."""
        import ray

        return ray.get([a.pid.remote() for a in self.actors])

    def write(self, controls: pd.DataFrame, gen: GenerationParams, *, seed: int, progress=None) -> dict:
        """Every batch of `controls`, gathered by batch index into one result shaped like ReviewGenerator.write."""
        import ray

        controls = controls[list(CONTROL_COLUMNS)].reset_index(drop=True)
        starts = range(0, len(controls), gen.batch_size)
        pending = {
            self.actors[b % len(self.actors)].write.remote(b, controls.iloc[s : s + gen.batch_size], gen, seed): b
            for b, s in enumerate(starts)
        }
        results: dict[int, dict] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            index, result = ray.get(done[0])
            assert index == pending.pop(done[0]) and index not in results, f"batch {index} returned twice"
            results[index] = result
            if progress is not None:
                progress.update(len(result["prefixes"]))
        assert sorted(results) == list(range(len(starts))), "a generation batch is missing"
        ordered = [results[b] for b in range(len(starts))]
        merged = {key: [x for r in ordered for x in r[key]] for key in ("titles", "texts", "prefixes")}
        merged.update({key: sum(r[key] for r in ordered) for key in ("parse_failures", "failed", "tokens")})
        return merged

    def close(self) -> None:
        """Stop the actors."""
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)


def write_on_ray(generator: ReviewGenerator, controls: pd.DataFrame, gen: GenerationParams, *, seed: int,
                 progress=None) -> dict:
    """ReviewGenerator.write's result for `controls`, generated by `gen.ray.num_workers` actors."""
    import ray

    if not ray.is_initialized():  # else ray.put would start a default (dashboard, telemetry) cluster
        raise RuntimeError("write_on_ray needs a connected cluster; open stages.ray_cluster.ray_cluster first")
    with tempfile.TemporaryDirectory(prefix="synthguard-generator-") as tmp:
        generator.save(Path(tmp))
        packed = pack_generator(Path(tmp))
    pool = GeneratorPool(packed, gen.ray.num_workers)
    try:
        return pool.write(controls, gen, seed=seed, progress=progress)
    finally:
        pool.close()
