"""Benchmark the train stage's models side by side: LoRA classifier vs TF-IDF baseline.

Measures training and inference examples/s on real reviews with the production profile
(params.yaml `train:`), and projects the wall time of the full stage (both sources).

    .venv/bin/python benchmarks/bench_train.py [--rows 256] [--test-rows 512] [--params params.yaml]

Data: the shared sample's Electronics file, extracted into a temporary folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from stages.extract import ExtractParams, SplitParams, run_extract
from stages.params import load_section
from stages.train.baseline import TfidfBaseline
from stages.train.classifier import attach_lora, build_base, fit_lora, keep_base, save_classifier
from stages.train.core import prepare
from stages.train.params import TrainParams
from stages.train.predict import RatingClassifier

SAMPLE = Path(os.environ.get("SYNTHGUARD_SAMPLE_DIR", Path(__file__).resolve().parents[2] / "shared/data/amazon_reviews_2023"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--rows", type=int, default=256, help="training rows (one epoch) per model")
    parser.add_argument("--test-rows", type=int, default=512, help="rows to predict")
    args = parser.parse_args()
    params, seed = load_section(args.params, "train", TrainParams)
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        extract = ExtractParams(
            reviews=str(SAMPLE / "Electronics.10k.jsonl.gz"), meta=None, max_rows=None, chunk_rows=5000, min_text_chars=10,
            categories=(), max_reject_rate=0.05, split=SplitParams(train=0.8, val=0.1, test=0.1),
        )
        run_extract(extract, seed=seed, out_dir=tmp / "data", rejects_path=tmp / "rejects.jsonl")
        train = prepare(pd.read_parquet(tmp / "data" / "train.parquet"), name="train", use_title=params.use_title,
                        max_rows=args.rows, seed=seed)
        test = prepare(pd.read_parquet(tmp / "data" / "test.parquet"), name="test", use_title=params.use_title,
                       max_rows=args.test_rows, seed=seed)
        rows = []
        timer = Timer()
        tfidf = TfidfBaseline(params.tfidf, class_weighting=params.class_weighting, seed=seed).fit(train.texts, train.ratings)
        fit = timer.lap()
        tfidf.predict(test.texts)
        rows.append(("tfidf + logreg", 1, fit, timer.lap()))  # scikit-learn: one thread

        one_epoch = dataclasses.replace(params, epochs=1)
        model, tokenizer = build_base(params.base_model, train.texts, max_length=params.max_length, seed=seed)
        timer.lap()
        keep_base(model, params.base_model, tmp / "clf")
        model = attach_lora(model, one_epoch)
        fit_lora(model, tokenizer, train.texts, train.ratings - 1, one_epoch, seed=seed, desc="bench lora")
        fit = timer.lap()
        save_classifier(model, tokenizer, tmp / "clf", base_model=params.base_model, params=params)
        classifier = RatingClassifier.from_dir(tmp / "clf")
        timer.lap()
        classifier.predict(pd.DataFrame({"text": test.texts}))
        rows.append((f"LoRA {params.base_model}", torch.get_num_threads(), fit, timer.lap()))

    print(f"\ntrain benchmark: {len(train.texts)} training rows (1 epoch), {len(test.texts)} predicted rows, "
          f"max_length {params.max_length}, batch {params.batch_size}, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    # Wall-clock rates suffer when other jobs share the CPU; CPU-seconds per example much less so.
    # "dedicated" divides CPU time by the threads a model uses: the rate on otherwise idle cores.
    print(f"{'model':42s} {'train ex/s':>10s} {'(dedicated)':>11s} {'predict ex/s':>12s} {'(dedicated)':>11s}")
    for name, threads, (fit_wall, fit_cpu), (pred_wall, pred_cpu) in rows:
        print(f"{name:42s} {len(train.texts) / fit_wall:10.1f} {len(train.texts) * threads / fit_cpu:11.1f} "
              f"{len(test.texts) / pred_wall:12.1f} {len(test.texts) * threads / pred_cpu:11.1f}")
    # The full default stage: each source trains max_train_rows x epochs and predicts the test split (~1,000 rows).
    (_, threads, (fit_wall, fit_cpu), (pred_wall, pred_cpu)) = rows[1]
    n, examples = len(params.sources), (params.max_train_rows or 0) * params.epochs
    for label, fit_s, pred_s in (("measured", fit_wall, pred_wall), ("dedicated", fit_cpu / threads, pred_cpu / threads)):
        minutes = n * (examples * fit_s / len(train.texts) + 1000 * pred_s / len(test.texts)) / 60
        print(f"projected LoRA time, default profile ({n} sources x {params.max_train_rows} rows x {params.epochs} "
              f"epochs + ~1000 test rows each), {label} rates: {minutes:.1f} min")


class Timer:
    """Wall and process CPU seconds since the last lap."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        lap = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return lap


if __name__ == "__main__":
    main()
