"""Benchmark: what the rating-consistency filter adds, at equal row counts, over seeds.

Takes synthetic records written with the filter off (any run's data/synthetic/reviews.parquet
with `synthesize.consistency.enabled: false`), runs the stage's judge on them, and trains the
train stage's TF-IDF classifier on (a) the records the filter keeps and (b) as many records
drawn from all of them, several seeds each, scored on the real test split. Also prints the
judge's false-alarm rate on real test reviews (the share of real polar reviews it would drop)
and its Spearman correlation with the real ratings.

    .venv/bin/python benchmarks/bench_consistency.py --synthetic /tmp/syn-eps8.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--synthetic", type=Path, required=True)
    p.add_argument("--test", type=Path, default=ROOT / "data/anonymized/test.parquet")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args()

    from bench_utility import learning_curves  # noqa: E402 - the same fit and score as the learning curves

    from stages.params import load_section
    from stages.synthesize.consistency import inconsistent, rating_judge
    from stages.synthesize.params import SynthesizeParams
    from stages.train.params import TrainParams

    syn_params, _ = load_section(args.params, "synthesize", SynthesizeParams)
    train_params, _ = load_section(args.params, "train", TrainParams)
    c = syn_params.consistency
    judge = rating_judge(c)
    synthetic, test = pd.read_parquet(args.synthetic), pd.read_parquet(args.test)

    def texts(frame):
        return (frame["title"].fillna("") + "\n" + frame["text"].fillna("")).str.strip().tolist()

    real_judged = judge.judge(texts(test))
    real_bad = inconsistent(test["rating"], real_judged, low_max=c.low_max, high_min=c.high_min)
    polar = test["rating"].isin([1, 2, 4, 5]).to_numpy()
    rho = pd.Series(real_judged).corr(test["rating"].reset_index(drop=True).astype(float), method="spearman")
    print(f"judge on {len(test)} real test reviews: Spearman {rho:.3f}; drops {real_bad[polar].mean():.1%} of real polar reviews")

    judged = judge.judge(texts(synthetic))
    bad = inconsistent(synthetic["rating"], judged, low_max=c.low_max, high_min=c.high_min)
    rho_syn = pd.Series(judged).corr(synthetic["rating"].astype(float), method="spearman")
    print(f"judge on {len(synthetic)} synthetic records: Spearman with the conditioned rating {rho_syn:.3f}; "
          f"drops {bad.mean():.1%} ({int(bad.sum())})")
    for rating in range(1, 6):
        share = synthetic["rating"] == rating
        print(f"  {rating} stars: {int(share.sum())} records, {bad[share.to_numpy()].mean() if share.any() else 0:.1%} dropped")

    kept = synthetic[~bad]
    n = len(kept)
    sources = {"filtered": kept}
    sources.update({f"unfiltered-{s}": synthetic.sample(n=n, random_state=100 + s) for s in args.seeds})
    scores = learning_curves(sources, test, ["all"], [0], train_params.tfidf,
                             class_weighting=train_params.class_weighting, use_title=train_params.use_title)
    unfiltered = scores[scores["source"].str.startswith("unfiltered")]["macro_f1"]
    filtered = float(scores.loc[scores["source"] == "filtered", "macro_f1"].iloc[0])
    print(f"\nTF-IDF macro-F1 on the real test split at {n} training rows:")
    print(f"  consistency filter on : {filtered:.3f}")
    print(f"  filter off (random {n} of {len(synthetic)}, {len(args.seeds)} draws): {unfiltered.mean():.3f} "
          f"(sd {unfiltered.std():.3f}; {', '.join(f'{v:.3f}' for v in unfiltered)})")
    print(f"  difference: {filtered - unfiltered.mean():+.3f}")
    np.set_printoptions(precision=3)


if __name__ == "__main__":
    main()
