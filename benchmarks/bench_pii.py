"""Benchmark: the anonymize stage's labelled PII benchmark on the shared sample, with every score it gives.

The stage builds this benchmark from its own train split at run time (metrics/anonymize.json);
this script builds the same kind of benchmark (params.yaml's `anonymize.benchmark` sizes, seed
42) from real sentences of the shared sample's Electronics.10k reviews, so the figures can be
reproduced without running the pipeline. Prints recall per entity, per name shape and per
position, precision, non-PII words changed, negatives kept and the leak estimate; no review
text.

    .venv/bin/python benchmarks/bench_pii.py [--sample DIR] [--seed 42]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd
import yaml

from stages.anonymize.benchmark import build_cases, leak_estimate, real_sentences, score_with
from stages.anonymize.core import make_analyzer
from stages.anonymize.params import AnonymizeParams
from stages.params import parse_section

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=Path, default=Path(os.environ.get("SYNTHGUARD_SAMPLE_DIR", "../shared/data/amazon_reviews_2023")))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    params = parse_section(yaml.safe_load((ROOT / "params.yaml").read_text())["anonymize"], AnonymizeParams, "anonymize")
    b = params.benchmark
    texts = pd.read_json(args.sample / "Electronics.10k.jsonl.gz", lines=True, compression="gzip", dtype=False)["text"].tolist()
    sentences = real_sentences(texts, limit=b.cases + b.person_cases + b.negative_cases, seed=args.seed)
    cases = build_cases(sentences, cases=b.cases, negative_cases=b.negative_cases, seed=args.seed, person_cases=b.person_cases)
    started = time.perf_counter()
    scores = score_with(make_analyzer(params), cases)
    scores["leak_estimate"] = leak_estimate(scores)
    scores["sentences"] = len(sentences)
    scores["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(scores, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
