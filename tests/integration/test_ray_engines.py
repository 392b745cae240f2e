"""The ray engines on a local cluster: the same anonymized files and metrics as local, generation that
does not depend on the worker count, and a killed worker (anonymize or generation) that loses and doubles nothing."""

from __future__ import annotations

import json
import os
import signal

import pandas as pd
import pytest
import yaml

from stages._cli import run_cli
from stages.anonymize.__main__ import main as anonymize_main
from stages.extract import ExtractParams, SplitParams, run_extract
from stages.io import file_sha256
from stages.schema import SPLITS
from tests.conftest import ROOT
from tests.unit.synthesize_helpers import quick_params

pytestmark = pytest.mark.integration

TIMINGS = ("seconds", "analysis_seconds", "reviews_per_second")


@pytest.fixture(scope="module")
def extracted(sample_dir, tmp_path_factory):
    """300 real reviews of the multi-category sample (titles, product titles, categories), split by extract."""
    out = tmp_path_factory.mktemp("extracted")
    params = ExtractParams(
        reviews=str(sample_dir / "multi_category.2.7k.reviews.jsonl.gz"),
        meta=str(sample_dir / "multi_category.2.7k.meta.jsonl.gz"), max_rows=300, chunk_rows=300,
        min_text_chars=10, categories=(), max_reject_rate=0.05, split=SplitParams(train=0.8, val=0.1, test=0.1),
    )
    run_extract(params, seed=1, out_dir=out, rejects_path=out / "rejects.jsonl")
    return out


def _params_file(tmp_path, name: str, **anonymize) -> str:
    data = yaml.safe_load((ROOT / "tests" / "params.quick.yaml").read_text())
    data["anonymize"].update(anonymize)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _anonymize(extracted, tmp_path, engine: str, *extra: str) -> tuple[dict, dict]:
    params = _params_file(tmp_path, f"params.{engine}.yaml", engine=engine,
                          ray={"address": None, "num_workers": 2, "batch_size": 40})
    out, metrics = tmp_path / engine, tmp_path / f"{engine}.json"
    code = run_cli(anonymize_main, ["--params", params, "--in-dir", str(extracted), "--out-dir", str(out),
                                    "--metrics", str(metrics), "--key-file", str(tmp_path / "key"), *extra])
    assert code == 0
    files = [f"{s}.parquet" for s in SPLITS] + ["quarantine.jsonl"]
    return {f: file_sha256(out / f) for f in files}, json.loads(metrics.read_text())


def test_ray_anonymize_writes_the_same_files_and_metrics_as_local(extracted, tmp_path, ray_local, capsys):
    (tmp_path / "key").write_text("ray-engine-test-key-0123456789\n")
    local_hashes, local_metrics = _anonymize(extracted, tmp_path, "local", "--no-mlflow")
    ray_hashes, ray_metrics = _anonymize(extracted, tmp_path, "ray")
    # the same bytes: same rows in the same order, same surrogates, same schema
    assert ray_hashes == local_hashes
    assert {k: v for k, v in ray_metrics.items() if k not in TIMINGS} == {
        k: v for k, v in local_metrics.items() if k not in TIMINGS}
    assert local_metrics["rows"] == sum(len(pd.read_parquet(extracted / f"{s}.parquet")) for s in SPLITS)
    assert local_metrics["records_touched"] > 0 and local_metrics["sweep_replacements"] > 0  # the sweep was exercised
    assert ray_metrics["detected_value_reoccurrences"] == 0

    from stages.tracking import stage_run_metrics

    (run,) = stage_run_metrics("anonymize")
    assert run["tags"]["engine"] == "ray" and run["tags"]["ray.num_workers"] == "2"
    assert run["tags"]["ray.address"]
    # no raw text on the driver's output: none of the input's titles or bodies was printed
    printed = capsys.readouterr()
    frames = pd.concat(pd.read_parquet(extracted / f"{s}.parquet") for s in SPLITS)
    texts = [t for t in frames["text"].tolist() + frames["title"].dropna().tolist() if len(t) > 30]
    assert not any(t in printed.out or t in printed.err for t in texts)


def _analyzer_factory(cls):
    """An analyzer_factory building `cls` (a ReviewAnalyzer subclass) as the stage would, one process per actor."""
    def build(params):
        return cls(entities=params.entities, score_threshold=params.score_threshold, batch_size=params.batch_size,
                   n_process=1, ner_chunk_chars=params.ner_chunk_chars, min_english_share=params.min_english_share)
    return build


def test_a_record_that_fails_detection_is_quarantined_alike_by_both_engines(extracted, tmp_path, ray_local):
    """A real analyzer made to raise on one text (as a parser bug would): the same rows, quarantine and metrics."""
    import dataclasses

    from stages.anonymize import AnonymizeParams, run_anonymize
    from stages.anonymize.engine import ReviewAnalyzer
    from stages.anonymize.ray_engine import run_anonymize_ray
    from stages.params import load_section

    marker = "Zq9 unparseable"

    class FailsOn(ReviewAnalyzer):  # defined here, so the actors get it pickled by value
        def _finish(self, entry):
            if isinstance(entry[1], str) and marker in entry[1]:
                raise ValueError("cannot parse")
            return super()._finish(entry)

    failing_analyzer = _analyzer_factory(FailsOn)

    params, seed = load_section(_params_file(tmp_path, "params.yaml", ray={"address": None, "num_workers": 2, "batch_size": 40}),
                                "anonymize", AnonymizeParams)
    params = dataclasses.replace(params, benchmark=dataclasses.replace(params.benchmark, cases=0, person_cases=0))
    sources = {s: tmp_path / f"{s}.parquet" for s in SPLITS}
    frames = {s: pd.read_parquet(extracted / f"{s}.parquet") for s in SPLITS}
    frames["train"].loc[[3, 57], "text"] = [f"My name is Jane Doe and {marker}.", f"Call me at 555-0100, {marker}."]
    for s, frame in frames.items():
        frame.to_parquet(sources[s], index=False)
    frames = {s: pd.read_parquet(path) for s, path in sources.items()}
    key = b"ray-engine-test-key-0123456789"
    local = run_anonymize(frames, params, key=key, seed=seed, analyzer=failing_analyzer(params))
    ray_result = run_anonymize_ray(sources, params, key=key, seed=seed, analyzer_factory=failing_analyzer)
    assert local.metrics["quarantined_records"] == 2
    assert local.quarantine["quarantine_pass"].tolist() == ["detect", "detect"]
    for s in SPLITS:
        pd.testing.assert_frame_equal(ray_result.frames[s].reset_index(drop=True), local.frames[s].reset_index(drop=True))
    pd.testing.assert_frame_equal(ray_result.quarantine, local.quarantine)
    assert {k: v for k, v in ray_result.metrics.items() if k not in TIMINGS} == {
        k: v for k, v in local.metrics.items() if k not in TIMINGS}
    assert marker not in ray_result.quarantine.to_json()


def test_a_killed_anonymize_worker_is_restarted_and_the_output_is_unchanged(extracted, tmp_path, ray_local):
    """A detect actor's process dies (SIGKILL) in its first batch: Ray restarts it, the batch reruns, same output."""
    import dataclasses

    from stages.anonymize import AnonymizeParams
    from stages.anonymize.engine import ReviewAnalyzer
    from stages.anonymize.ray_engine import run_anonymize_ray
    from stages.params import load_section

    tombstone = tmp_path / "killed-once"  # on disk, so the restarted actor does not die again

    class DiesOnce(ReviewAnalyzer):  # defined here, so the actors get it pickled by value
        def analyze(self, items):
            if not tombstone.exists():
                tombstone.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return super().analyze(items)


    params, seed = load_section(_params_file(tmp_path, "params.yaml", ray={"address": None, "num_workers": 2, "batch_size": 40}),
                                "anonymize", AnonymizeParams)
    params = dataclasses.replace(params, benchmark=dataclasses.replace(params.benchmark, cases=0, person_cases=0))
    sources = {s: extracted / f"{s}.parquet" for s in SPLITS}
    key = b"ray-engine-test-key-0123456789"
    undisturbed = run_anonymize_ray(sources, params, key=key, seed=seed, analyzer_factory=_analyzer_factory(ReviewAnalyzer))
    killed = run_anonymize_ray(sources, params, key=key, seed=seed, analyzer_factory=_analyzer_factory(DiesOnce))
    assert tombstone.exists()  # a worker really died
    for s in SPLITS:  # no batch lost or doubled: every split has the undisturbed rows, in order
        pd.testing.assert_frame_equal(killed.frames[s], undisturbed.frames[s])
    pd.testing.assert_frame_equal(killed.quarantine, undisturbed.quarantine)
    assert {k: v for k, v in killed.metrics.items() if k not in TIMINGS} == {
        k: v for k, v in undisturbed.metrics.items() if k not in TIMINGS}


@pytest.fixture(scope="module")
def packed_generator(tmp_path_factory):
    """A saved tiny-llama generator (untrained LoRA): its folder, and packed as the actors receive it."""
    from stages.synthesize.generator import ReviewGenerator, attach_lora, base_checksum, generator_config
    from stages.synthesize.loading import load_base
    from stages.synthesize.ray_generation import pack_generator

    params = quick_params()
    base, tokenizer = load_base("tiny-llama", seed=5)
    checksum = base_checksum(base, "tiny-llama")
    config = generator_config(params.generator, params.generation, base_sha256=checksum, seed=5, base_seed=5,
                              privacy={"dp_enabled": False}, tokenizer=tokenizer)
    directory = tmp_path_factory.mktemp("generator")
    ReviewGenerator(attach_lora(base, params.generator), tokenizer, config).save(directory)
    return directory, pack_generator(directory)


def _controls(n: int) -> pd.DataFrame:
    return pd.DataFrame({"rating": [1 + i % 5 for i in range(n)],
                         "main_category": [["Cell Phones & Accessories", "Computers", None][i % 3] for i in range(n)],
                         "text_chars": [40.0 + 37 * i for i in range(n)]})


GEN = quick_params(**{"generation.batch_size": 3, "generation.max_new_tokens": 24}).generation


def _generate(packed, workers: int, progress=None) -> dict:
    from stages.synthesize.ray_generation import GeneratorPool

    pool = GeneratorPool(packed, workers)
    try:
        return pool.write(_controls(14), GEN, seed=9, progress=progress)
    finally:
        pool.close()


@pytest.fixture(scope="module")
def one_worker(packed_generator, ray_local) -> dict:
    return _generate(packed_generator[1], 1)


def test_generated_records_do_not_depend_on_the_worker_count(packed_generator, one_worker):
    two = _generate(packed_generator[1], 2)
    assert two == one_worker
    assert len(one_worker["prompts"]) == 14 and one_worker["tokens"] > 0
    assert sum(t is not None for t in one_worker["texts"]) + one_worker["failed"] == 14


def test_a_killed_worker_is_restarted_and_no_batch_is_lost_or_doubled(packed_generator, one_worker):
    from stages.synthesize.ray_generation import GeneratorPool

    pool = GeneratorPool(packed_generator[1], 2)
    victim_pid = pool.pids()[1]

    class KillOnFirstBatch:
        """Progress sink that SIGKILLs the second worker's process when the first batch comes back."""

        updates = 0

        def update(self, n):
            if self.updates == 0:
                os.kill(victim_pid, signal.SIGKILL)
            self.updates += 1

    try:
        progress = KillOnFirstBatch()
        result = pool.write(_controls(14), GEN, seed=9, progress=progress)
        restarted_pid = pool.pids()[1]
    finally:
        pool.close()
    assert restarted_pid != victim_pid  # the process really died and Ray restarted the actor
    assert progress.updates == 5  # ceil(14 / 3) batches, each gathered exactly once
    assert result == one_worker


def test_ray_generation_writes_the_same_records_as_the_local_engine(packed_generator, one_worker):
    from stages.synthesize.generator import ReviewGenerator

    local = ReviewGenerator.load_dir(packed_generator[0]).write(_controls(14), GEN, seed=9)
    assert {k: local[k] for k in one_worker} == one_worker


def test_run_synthesize_on_ray_writes_the_records_of_the_local_engine(ray_local):
    """The whole stage function, fine-tune included, with generation.engine ray: the local records and metrics.

    DP off: OpenDP draws its noise from the OS's secure generator (unseedable by design), so two DP runs
    differ in their structured columns whatever the engine; the seeded SDV model and fine-tune do not.
    """
    from stages.synthesize import run_synthesize
    from tests.unit.synthesize_helpers import NoPII, records

    train, val = records(120, users=40), records(20, split="val", seed=1000)
    local = run_synthesize(train, val, quick_params(**{"dp.enabled": False}), seed=3, analyzer=NoPII())
    on_ray = run_synthesize(train, val, quick_params(**{"dp.enabled": False, "generation.engine": "ray"}), seed=3,
                            analyzer=NoPII())
    pd.testing.assert_frame_equal(on_ray.records, local.records)
    assert len(local.records) > 0
    timed = ("seconds", "generation_tokens_per_second", "train_examples_per_second")
    assert {k: v for k, v in on_ray.metrics.items() if k not in timed} == {
        k: v for k, v in local.metrics.items() if k not in timed}
