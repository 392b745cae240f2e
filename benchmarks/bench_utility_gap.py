"""Benchmark: where the synthetic TF-IDF gap comes from, three checks side by side in one run.

The train stage says how far a classifier trained on synthetic records falls short of one
trained on real records; this script asks why, with the train stage's own TF-IDF + logistic
regression (params.yaml's `train` section), every fit scored on the real test split:

1. **The rating mix.** The DP tabular model's noisy rating counts decide how many records of
   each rating a release has (a release of 1,000 can hold 22 two-star records where the real mix
   gives 36). From the pooled records of several releases of one generator (`--synthetic`), sets
   of 1,000 are drawn at the real training split's rating mix and at mixes with a floor per
   rating (`--floors`), `--draws` seeded draws each. If the rating counts limited utility, a
   floor would lift the minority ratings' F1 and the macro-F1.
2. **The length.** Synthetic bodies are short (no release has had a body of 400 characters or
   more). Real training rows are cut to their last full sentence within `--cuts` characters and
   fitted again at the train stage's row count: if length carried the signal, cut real data
   would lose it.
3. **The confusion.** Real-test rating against the prediction of a classifier fitted on real
   rows and of one fitted on each release, row-normalised, drawn side by side (`--plot`), with
   each fit's `--top` most positive word n-grams per rating (what it learned a rating sounds like),
   and the share of bodies per rating that use each of `--words` (whole words, any case), for the
   real test split and each release.

    .venv/bin/python benchmarks/bench_utility_gap.py \\
        --synthetic s30-default=… s31-default=… s32-default=… s33-default=… \\
        --json benchmarks/results/utility_gap.json --plot benchmarks/results/utility_gap.png
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's stages/
sys.path.insert(0, str(ROOT / "benchmarks"))

RATINGS = (1, 2, 3, 4, 5)
SENTENCE_END = re.compile(r"[.!?](?=\s)")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", type=Path, default=ROOT / "data/anonymized/train.parquet")
    p.add_argument("--test", type=Path, default=ROOT / "data/anonymized/test.parquet")
    p.add_argument("--synthetic", nargs="+", required=True, metavar="NAME=PATH",
                   help="releases of one generator, each under a name")
    p.add_argument("--floors", type=float, nargs="+", default=[0.06, 0.10, 0.15, 0.20],
                   help="per-rating minimum shares of a drawn set")
    p.add_argument("--cuts", type=int, nargs="+", default=[100, 200, 400, 1000],
                   help="real bodies cut to their last full sentence within this many characters")
    p.add_argument("--draws", type=int, default=8, help="seeded draws per mix and per cut")
    p.add_argument("--words", nargs="+", default=["but", "not", "great", "okay|ok"],
                   help="words (| for either) whose share of bodies per rating is compared")
    p.add_argument("--top", type=int, default=8, help="n-grams per rating shown for each fit")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--json", type=Path)
    p.add_argument("--plot", type=Path, help="the confusion matrices (PNG)")
    return p.parse_args()


def floored_mix(shares: pd.Series, floor: float, n: int) -> dict[int, int]:
    """Records per rating: every share raised to at least `floor`, the rest scaled down to keep the total at n."""
    if floor * len(RATINGS) > 1:
        raise SystemExit(f"--floors {floor}: five ratings at {floor} exceed the whole set; give at most 0.2")
    shares = shares.reindex(RATINGS, fill_value=0.0) / shares.sum()
    low = shares < floor
    mix = shares.where(~low, floor)
    mix[~low] = shares[~low] * (1 - floor * low.sum()) / shares[~low].sum()
    counts = np.floor(mix * n).astype(int)
    counts[counts.idxmax()] += n - counts.sum()
    return {int(r): int(c) for r, c in counts.items()}


def cut_body(text: str, limit: int) -> str:
    """The text up to its last sentence end within `limit` characters (the first `limit` if none ends there)."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [m.end() for m in SENTENCE_END.finditer(head + " ")]
    return head[:ends[-1]] if ends else head


class Scorer:
    """The train stage's TF-IDF fitted on a frame, scored on the real test split."""

    def __init__(self, test: pd.DataFrame, params):
        from stages.train.predict import review_texts

        self.params, self.texts = params, review_texts
        self.test_texts = review_texts(test, use_title=params.use_title)
        self.test_y = test["rating"].to_numpy(dtype=np.int64)

    def fit(self, frame: pd.DataFrame, seed: int):
        from stages.train.baseline import TfidfBaseline

        model = TfidfBaseline(self.params.tfidf, class_weighting=self.params.class_weighting, seed=seed)
        return model.fit(self.texts(frame, use_title=self.params.use_title), frame["rating"].to_numpy(dtype=np.int64))

    def predict(self, frame: pd.DataFrame, seed: int) -> np.ndarray:
        return self.fit(frame, seed).predict(self.test_texts)

    def report(self, frame: pd.DataFrame, seed: int) -> dict[str, float]:
        from stages.train.metrics import classification_report

        return classification_report(self.test_y, self.predict(frame, seed))


def draw(frame: pd.DataFrame, mix: dict[int, int], seed: int) -> pd.DataFrame:
    """`mix[r]` rows of each rating r, seeded (all of a rating when it has fewer)."""
    rng = np.random.default_rng(seed)
    parts = []
    for rating, count in mix.items():
        pool = np.flatnonzero(frame["rating"].to_numpy() == rating)
        parts.append(rng.choice(pool, size=min(count, len(pool)), replace=False))
    return frame.iloc[np.concatenate(parts)]


def top_terms(model, k: int) -> dict[int, list[str]]:
    """The k n-grams with the largest weight towards each rating in a fitted TF-IDF baseline."""
    names = model.vectorizer_.get_feature_names_out()
    return {int(r): [str(names[j]) for j in np.argsort(-model.model_.coef_[i])[:k]]
            for i, r in enumerate(model.model_.classes_)}


def word_shares(frame: pd.DataFrame, words: list[str]) -> dict[str, dict[int, float]]:
    """Per word (a|b: either), the share of each rating's bodies that use it as a whole word, any case."""
    text = frame["text"].astype(str)
    return {word: {int(r): float(v) for r, v in text.str.contains(rf"\b(?:{word})\b", case=False, regex=True)
                   .groupby(frame["rating"]).mean().items()} for word in words}


def summary(rows: list[dict], key: str) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    return table.groupby(key, sort=False).agg(
        macro_f1=("macro_f1", "mean"), sd=("macro_f1", "std"),
        **{f"f1_{r}": (f"f1_{r}", "mean") for r in RATINGS}).round(3)


def plot(confusions: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib
    from bench_utility import save_figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(confusions), figsize=(3.3 * len(confusions), 3.5), squeeze=False)
    for ax, (name, counts) in zip(axes[0], confusions.items()):
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
        for i in range(5):
            for j in range(5):
                ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
        ax.set_xticks(range(5), RATINGS)
        ax.set_yticks(range(5), RATINGS)
        ax.set_xlabel("predicted stars")
        ax.set_title(f"trained on {name}", fontsize=9)
    axes[0][0].set_ylabel("real test stars (rows sum to 1)")
    save_figure(fig, path)


def main() -> None:
    args = parse_args()
    from bench_utility import majority_floor, synthetic_sources
    from stages.params import load_section
    from stages.train.metrics import confusion_counts
    from stages.train.params import TrainParams

    params, _ = load_section(args.params, "train", TrainParams)
    n = params.max_train_rows
    real, test = pd.read_parquet(args.real), pd.read_parquet(args.test)
    releases = synthetic_sources(args.synthetic)
    scorer = Scorer(test, params)
    real_shares = real["rating"].value_counts(normalize=True)
    floor = majority_floor(real, test)
    print(f"real test split: {len(test)} reviews; majority floor {floor:.3f}; {n} rows per fit")

    mixes = {"real mix": floored_mix(real_shares, 0.0, n)}
    mixes.update({f"floor {f:.2f}": floored_mix(real_shares, f, n) for f in args.floors})
    pool = pd.concat(releases.values(), ignore_index=True)
    mix_rows = [{"mix": name, "counts": mix, "draw": d, **scorer.report(draw(pool, mix, d), d)}
                for name, mix in mixes.items() for d in range(args.draws)]
    print(f"\n1. rating mix: {len(pool)} pooled records of {', '.join(releases)}")
    print(summary(mix_rows, "mix").to_string())

    cut_rows = []
    for limit in [*args.cuts, None]:
        for d in range(args.draws):
            part = real.sample(n=n, random_state=d).copy()
            if limit is not None:
                part["text"] = [cut_body(t, limit) for t in part["text"].astype(str)]
            cut_rows.append({"cut": "whole" if limit is None else f"{limit} chars", "draw": d,
                             "median_chars": float(part["text"].str.len().median()), **scorer.report(part, d)})
    print(f"\n2. length: {n} real rows, bodies cut")
    print(summary(cut_rows, "cut").to_string())

    sources = {"real": real.sample(n=n, random_state=0), **releases}
    confusions, terms = {}, {}
    for name, frame in sources.items():
        model = scorer.fit(frame, 0)
        confusions[name] = confusion_counts(scorer.test_y, model.predict(scorer.test_texts))
        terms[name] = top_terms(model, args.top)
    print("\n3. confusion (rows: real test stars; columns: predicted) and what each fit learned")
    for name, counts in confusions.items():
        fives = counts[4]
        print(f"{name}: real 5-star reviews predicted 5: {fives[4] / fives.sum():.2f}; "
              f"predicted 1-3: {fives[:3].sum() / fives.sum():.2f}\n{counts}")
        for rating, words in terms[name].items():
            print(f"  {rating}: {', '.join(words)}")
    shares = {"real test": word_shares(test, args.words), **{k: word_shares(v, args.words) for k, v in releases.items()}}
    print("\nshare of bodies using each word, per rating 1..5")
    for word in args.words:
        for name, table in shares.items():
            print(f"  {word:<8} {name:<14} " + " ".join(f"{table[word].get(r, float('nan')):.2f}" for r in RATINGS))
    if args.plot:
        plot(confusions, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps({"rows": n, "floor": floor, "releases": list(releases),
                                         "mix": mix_rows, "cut": cut_rows,
                                         "confusion": {k: v.tolist() for k, v in confusions.items()},
                                         "top_terms": terms, "word_shares": shares},
                                        indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
