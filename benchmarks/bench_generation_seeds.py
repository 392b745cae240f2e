"""Benchmark: the spread of synthetic-data utility over generation seeds, one trained generator.

A pipeline run draws its texts with one seed. This script takes the run's saved generator
(`models/generator`) and the structured columns of its released records (DP outputs:
rating, category, length), writes the texts again with several generation seeds, and
scores each set with the train stage's TF-IDF classifier on the real test split, at the
same row count. The spread is what a different seed alone moves the utility by.

What it keeps from the stage: the generator, the decoding params of params.yaml, and the
two filters that read no private data (assistant talk, and the consistency judge when
`synthesize.consistency.enabled`). What it leaves out: the memorisation and PII filters,
which read the private training texts and the anonymizer; they drop a few percent of
records in the stage. Nothing it writes is a release.

    .venv/bin/python benchmarks/bench_generation_seeds.py --seeds 1 2 3 --records 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's stages/


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", type=Path, default=ROOT / "models/generator")
    p.add_argument("--synthetic", type=Path, default=ROOT / "data/synthetic/reviews.parquet",
                   help="the run's released records: their structured columns are the controls")
    p.add_argument("--test", type=Path, default=ROOT / "data/anonymized/test.parquet")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--records", type=int, default=1000, help="records scored per seed (after the filters)")
    return p.parse_args()


def controls_of(records: pd.DataFrame, n: int) -> pd.DataFrame:
    """The generator's control columns for `n` rows drawn from the released records (seeded, with
    replacement when `n` is larger); the length asked for is the released text's own length."""
    frame = records.sample(n=n, replace=n > len(records), random_state=0)
    return pd.DataFrame({
        "rating": frame["rating"].astype(int).to_numpy(),
        "main_category": frame["main_category"].to_numpy(),
        "text_chars": frame["text"].astype(str).str.len().to_numpy(),  # the length bucket the text was asked for
        "product_title": None,
    })


def main() -> None:
    args = parse_args()
    from stages.params import load_section
    from stages.synthesize.consistency import inconsistent, rating_judge
    from stages.synthesize.core import record_text
    from stages.synthesize.generator import ReviewGenerator
    from stages.synthesize.params import SynthesizeParams
    from stages.textchecks import is_assistant_talk
    from stages.train.baseline import TfidfBaseline
    from stages.train.metrics import classification_report
    from stages.train.params import TrainParams
    from stages.train.predict import review_texts

    synth, _ = load_section(args.params, "synthesize", SynthesizeParams)
    train, _ = load_section(args.params, "train", TrainParams)
    records, test = pd.read_parquet(args.synthetic), pd.read_parquet(args.test)
    generator = ReviewGenerator.load_dir(args.generator)
    gen = dataclasses.replace(synth.generation, engine="local")
    judge = rating_judge(synth.consistency) if synth.consistency.enabled else None
    controls = controls_of(records, int(np.ceil(args.records * gen.oversample)))  # as the stage over-generates
    test_texts, test_y = review_texts(test, use_title=train.use_title), test["rating"].to_numpy(dtype=np.int64)
    print(f"generator {args.generator} (fine_tuned {generator.fine_tuned}); {len(controls)} controls from "
          f"{args.synthetic}; backend {gen.backend} {gen.dtype}")

    rows = []
    for seed in args.seeds:
        start = time.perf_counter()
        out = generator.write(controls, gen, seed=seed)
        keep = [i for i, t in enumerate(out["texts"]) if t and not is_assistant_talk(record_text(out, i))]
        talk = sum(1 for t in out["texts"] if t) - len(keep)
        dropped = 0
        if judge is not None:
            c = synth.consistency
            judged = judge.judge([record_text(out, i).strip() for i in keep])  # as the stage's filter reads it
            bad = inconsistent(controls["rating"].to_numpy()[keep], judged, low_max=c.low_max, high_min=c.high_min)
            dropped = int(bad.sum())
            keep = [i for i, b in zip(keep, bad) if not b]
        if len(keep) < args.records:
            raise SystemExit(f"seed {seed}: {len(keep)} records after the filters, fewer than --records "
                             f"{args.records}; lower --records")
        keep = keep[: args.records]
        frame = pd.DataFrame({"rating": controls["rating"].to_numpy()[keep], "title": [out["titles"][i] for i in keep],
                              "text": [out["texts"][i] for i in keep]})
        y = frame["rating"].to_numpy(dtype=np.int64)
        model = TfidfBaseline(train.tfidf, class_weighting=train.class_weighting, seed=0).fit(
            review_texts(frame, use_title=train.use_title), y)
        report = classification_report(test_y, model.predict(test_texts))
        rows.append({"seed": seed, "records": len(keep), "assistant_talk": talk, "inconsistent": dropped,
                     "macro_f1": report["macro_f1"], "seconds": time.perf_counter() - start})
        print(f"seed {seed}: TF-IDF macro-F1 {report['macro_f1']:.3f} on {len(keep)} records "
              f"(dropped: assistant talk {talk}, inconsistent {dropped}; {rows[-1]['seconds']:.0f} s)", flush=True)
    scores = pd.DataFrame(rows)
    print(f"\nTF-IDF macro-F1 over {len(scores)} generation seeds: mean {scores['macro_f1'].mean():.3f}, "
          f"sd {scores['macro_f1'].std():.3f}, range {scores['macro_f1'].min():.3f}-{scores['macro_f1'].max():.3f}")


if __name__ == "__main__":
    main()
