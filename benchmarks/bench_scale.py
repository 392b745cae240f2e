"""Benchmark: the local engines vs the ray engines with 1 and 2 workers, in one run.

Anonymize: the production `anonymize:` params (params.yaml; the labelled benchmark off, it
is not part of the throughput) on N real reviews of the shared multi-category sample,
split by the extract stage. Generation: a generator on the production base model
(SmolLM2-135M GGUF, models/base/) with a fresh LoRA adapter, writing M records from fixed
controls. The local engine runs in this process; each ray row starts a local cluster of
`workers + 1` CPUs (the start-up is timed apart), then runs the stage's own ray code.
Prints reviews/s and generated tokens/s side by side, and the Cell Phones projection.

    .venv/bin/python benchmarks/bench_scale.py [--reviews N] [--records M] [--sample DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

CELL_PHONES_REVIEWS = 21_000_000  # Cell_Phones_and_Accessories, Amazon Reviews 2023 (about)
ROOT = Path(__file__).resolve().parents[1]


def extract(sample: Path, rows: int, out: Path) -> dict[str, Path]:
    from stages.extract import ExtractParams, SplitParams, run_extract

    params = ExtractParams(
        reviews=str(sample / "multi_category.2.7k.reviews.jsonl.gz"), meta=str(sample / "multi_category.2.7k.meta.jsonl.gz"),
        max_rows=rows, chunk_rows=rows, min_text_chars=10, categories=(), max_reject_rate=0.05,
        split=SplitParams(train=0.8, val=0.1, test=0.1),
    )
    run_extract(params, seed=1, out_dir=out, rejects_path=out / "rejects.jsonl")
    return {s: out / f"{s}.parquet" for s in ("train", "val", "test")}


def save_generator(directory: Path):
    from stages.params import load_section
    from stages.synthesize.generator import ReviewGenerator, attach_lora, base_checksum, generator_config
    from stages.synthesize.loading import load_base
    from stages.synthesize.params import SynthesizeParams

    params, seed = load_section(ROOT / "params.yaml", "synthesize", SynthesizeParams)
    base, tokenizer = load_base(params.generator.base_model, seed=seed)
    config = generator_config(params.generator, params.generation, base_sha256=base_checksum(base, params.generator.base_model),
                              seed=seed, base_seed=seed, privacy={"dp_enabled": False}, tokenizer=tokenizer)
    ReviewGenerator(attach_lora(base, params.generator), tokenizer, config).save(directory)
    return params.generation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=2000)
    parser.add_argument("--records", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sample", type=Path, default=Path(os.environ.get("SYNTHGUARD_SAMPLE_DIR", "../shared/data/amazon_reviews_2023")))
    args = parser.parse_args()
    os.chdir(ROOT)  # the base model path in params.yaml is relative to the project

    import ray

    from stages.anonymize.core import run_anonymize
    from stages.anonymize.params import AnonymizeParams
    from stages.anonymize.ray_engine import run_anonymize_ray
    from stages.params import load_section
    from stages.ray_cluster import start_local
    from stages.synthesize.generator import ReviewGenerator
    from stages.synthesize.ray_generation import GeneratorPool, pack_generator

    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    sources = extract(args.sample, args.reviews, tmp / "extracted")
    frames = {s: pd.read_parquet(p) for s, p in sources.items()}
    n_rows = sum(len(f) for f in frames.values())
    params, seed = load_section(ROOT / "params.yaml", "anonymize", AnonymizeParams)
    params = dataclasses.replace(params, benchmark=dataclasses.replace(params.benchmark, cases=0, negative_cases=0))
    key = b"bench-scale-key-0123456789abcdef"
    gen = save_generator(tmp / "generator")
    controls = pd.DataFrame({"rating": [1 + i % 5 for i in range(args.records)],
                             "main_category": ["Cell Phones & Accessories"] * args.records,
                             "text_chars": [60.0 + 13 * i for i in range(args.records)]})
    packed = pack_generator(tmp / "generator")
    print(f"{n_rows} real reviews (3 splits); {args.records} generated records; {os.cpu_count()} CPU cores (shared)")

    rows = []  # (engine, workers, start-up s, anonymize s, reviews/s, generation s, tokens/s)
    header = (f"\n{'engine':<7} {'workers':>7} {'ray start s':>11} {'anonymize s':>11} {'reviews/s':>9} "
              f"{'generate s':>10} {'tokens/s':>8}")

    def show(row) -> None:
        rows.append(row)
        engine, workers, startup, anon_s, rate, gen_s, tps = row
        print(f"{engine:<7} {workers:>7} {startup:>11.1f} {anon_s:>11.1f} {rate:>9.1f} {gen_s:>10.1f} {tps:>8.1f}", flush=True)

    print(header, flush=True)
    start = time.perf_counter()
    local = run_anonymize(frames, params, key=key, seed=seed)
    anon_s = time.perf_counter() - start
    generator = ReviewGenerator.load_dir(tmp / "generator")
    start = time.perf_counter()
    written = generator.write(controls, gen, seed=seed)
    gen_s = time.perf_counter() - start
    show(("local", 1, 0.0, anon_s, n_rows / anon_s, gen_s, written["tokens"] / gen_s))

    for workers in args.workers:
        start = time.perf_counter()
        start_local(num_cpus=workers + 1)
        startup = time.perf_counter() - start
        try:
            ray_params = dataclasses.replace(params, engine="ray", ray=dataclasses.replace(params.ray, num_workers=workers))
            start = time.perf_counter()
            result = run_anonymize_ray(sources, ray_params, key=key, seed=seed)
            anon_s = time.perf_counter() - start
            same = all(result.frames[s].equals(local.frames[s]) for s in sources)
            pool = GeneratorPool(packed, workers)
            pool.pids()  # every actor has loaded the generator: that is start-up, not generation
            start = time.perf_counter()
            out = pool.write(controls, gen, seed=seed)
            gen_s = time.perf_counter() - start
            pool.close()
        finally:
            ray.shutdown()
        assert same, "the ray engine's output differs from the local engine's"
        show(("ray", workers, startup, anon_s, n_rows / anon_s, gen_s, out["tokens"] / gen_s))

    best = max((r for r in rows if r[0] == "ray"), key=lambda r: r[1])
    per_worker = best[4] / best[1]
    print(f"\nprojection (not a measurement): Cell_Phones_and_Accessories, ~{CELL_PHONES_REVIEWS / 1e6:.0f}M reviews, "
          f"anonymize at the measured {per_worker:.1f} reviews/s per ray worker ({best[1]} workers), linear scaling assumed")
    for workers in (1, 8, 64):
        hours = CELL_PHONES_REVIEWS / (per_worker * workers) / 3600
        print(f"  {workers:>3} workers: {hours:8.1f} h")


if __name__ == "__main__":
    main()
