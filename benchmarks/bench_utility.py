"""Benchmark: TF-IDF learning curves of real and synthetic training data, with the spread over seeds.

The train stage scores one classifier per source at one size (`train.max_train_rows`). At
these sizes a single macro-F1 is noisy, and a ratio at one size hides how far a source is
from what more rows would give. This script fits the train stage's own TF-IDF + logistic
regression (`train.tfidf`, `train.class_weighting`, `train.use_title` of params.yaml) on
seeded subsamples of each source at each size, several seeds per size, and scores every fit
on the same real test split. Sources are the anonymized real training split and any number
of synthetic record files (each experiment's `data/synthetic/reviews.parquet`).

Prints mean and standard deviation of macro-F1 per (source, size), the ratio and the lift
over the majority floor against real data at the same size, and draws the curves.

    .venv/bin/python benchmarks/bench_utility.py \\
        --synthetic dp-eps8=/tmp/syn-eps8.parquet zero-shot=/tmp/syn-zs.parquet \\
        --sizes 250 500 1000 all --seeds 0 1 2 --plot benchmarks/results/learning_curve.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's stages/


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", type=Path, default=ROOT / "data/anonymized/train.parquet")
    p.add_argument("--test", type=Path, default=ROOT / "data/anonymized/test.parquet")
    p.add_argument("--synthetic", nargs="*", default=[f"synthetic={ROOT / 'data/synthetic/reviews.parquet'}"],
                   metavar="NAME=PATH", help="synthetic record files, each under a name")
    p.add_argument("--sizes", nargs="+", default=["250", "500", "1000", "all"],
                   help="training rows per fit; 'all' takes every row of the source")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--plot", type=Path, help="write the learning curves here (PNG)")
    p.add_argument("--json", type=Path, help="write every (source, size, seed) score here")
    return p.parse_args()


def _size(value: str, available: int) -> int | None:
    """The row count a size asks for; None when the source has fewer rows than asked (the point is skipped)."""
    if value == "all":
        return available
    n = int(value)
    return n if n <= available else None


def learning_curves(sources: dict[str, pd.DataFrame], test: pd.DataFrame, sizes: list[str], seeds: list[int],
                    tfidf, *, class_weighting: str, use_title: bool) -> pd.DataFrame:
    """One row per (source, size, seed): the macro-F1 on `test` of TF-IDF trained on a seeded subsample."""
    from stages.train.baseline import TfidfBaseline
    from stages.train.metrics import classification_report
    from stages.train.predict import review_texts

    test_texts, test_y = review_texts(test, use_title=use_title), test["rating"].to_numpy(dtype=np.int64)
    rows = []
    for name, frame in sources.items():
        frame = frame[frame["text"].notna() & (frame["text"].astype(str).str.strip() != "")]
        for size in sizes:
            n = _size(size, len(frame))
            if n is None:
                continue
            for seed in seeds if n < len(frame) else seeds[:1]:  # 'all' is the same rows whatever the seed
                part = frame.sample(n=n, random_state=seed)
                y = part["rating"].to_numpy(dtype=np.int64)
                if len(set(y.tolist())) < 2:
                    continue
                model = TfidfBaseline(tfidf, class_weighting=class_weighting, seed=seed).fit(
                    review_texts(part, use_title=use_title), y)
                report = classification_report(test_y, model.predict(test_texts))
                rows.append({"source": name, "size": size, "rows": n, "seed": seed,
                             "macro_f1": report["macro_f1"], "accuracy": report["accuracy"]})
    return pd.DataFrame(rows)


def majority_floor(train: pd.DataFrame, test: pd.DataFrame) -> float:
    from stages.train.metrics import classification_report

    top = int(train["rating"].mode().iloc[0])
    return classification_report(test["rating"].to_numpy(), np.full(len(test), top))["macro_f1"]


def scored_at(sources: dict[str, pd.DataFrame], test: pd.DataFrame, rows: int, seeds: list[int], train_params
              ) -> tuple[pd.DataFrame, float]:
    """The train stage's TF-IDF fitted on `rows` rows of each source per seed: (`summarise`'s table, majority floor).

    One row per source (macro_f1, sd, fits), with ratio and lift against `sources["real"]` at the same rows.
    """
    scores = learning_curves(sources, test, [str(rows)], seeds, train_params.tfidf,
                             class_weighting=train_params.class_weighting, use_title=train_params.use_title)
    floor = majority_floor(sources["real"], test)
    return summarise(scores, floor), floor


def summarise(scores: pd.DataFrame, floor: float) -> pd.DataFrame:
    """Mean and spread per (source, size), with ratio and lift against real data at the same size."""
    table = scores.groupby(["source", "size"], sort=False).agg(
        rows=("rows", "first"), fits=("seed", "size"), macro_f1=("macro_f1", "mean"), sd=("macro_f1", "std")).reset_index()
    real = table[table["source"] == "real"].set_index("size")["macro_f1"]
    table["ratio"] = [m / real[s] if s in real.index and s != "all" else np.nan for s, m in zip(table["size"], table["macro_f1"])]
    table["lift"] = [(m - floor) / (real[s] - floor) if s in real.index and s != "all" else np.nan
                     for s, m in zip(table["size"], table["macro_f1"])]
    return table


def plot(scores: pd.DataFrame, floor: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, group in scores.groupby("source", sort=False):
        stats = group.groupby("rows")["macro_f1"].agg(["mean", "std"]).reset_index()
        ax.errorbar(stats["rows"], stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3, label=name)
    ax.axhline(floor, color="grey", linestyle="--", linewidth=1, label=f"majority floor ({floor:.3f})")
    ax.set_xscale("log")
    ticks = sorted(scores["rows"].unique())
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("training rows (log scale)")
    ax.set_ylabel("macro-F1 on the real test split")
    ax.set_title("TF-IDF learning curves: real vs synthetic training data")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    """Lay out, write (PNG, 120 dpi, folders made) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def synthetic_sources(items: list[str]) -> dict[str, pd.DataFrame]:
    """NAME=PATH arguments -> {name: records}; a missing path or the reserved name 'real' is an error."""
    sources = {}
    for item in items:
        name, _, path = item.partition("=")
        if not path or name == "real":
            raise SystemExit(f"--synthetic {item!r}: give NAME=PATH with a name other than 'real', "
                             "e.g. dp-eps8=/tmp/syn.parquet")
        sources[name] = pd.read_parquet(path)
    return sources


def main() -> None:
    args = parse_args()
    from stages.params import load_section
    from stages.train.params import TrainParams

    params, _ = load_section(args.params, "train", TrainParams)
    real, test = pd.read_parquet(args.real), pd.read_parquet(args.test)
    sources = {"real": real, **synthetic_sources(args.synthetic)}
    scores = learning_curves(sources, test, args.sizes, args.seeds, params.tfidf,
                             class_weighting=params.class_weighting, use_title=params.use_title)
    floor = majority_floor(real, test)
    table = summarise(scores, floor)
    print(f"real test split: {len(test)} reviews; majority floor macro-F1 {floor:.3f}")
    print(f"{'source':<16} {'size':>5} {'rows':>6} {'fits':>4} {'macro-F1':>9} {'sd':>6} {'ratio':>6} {'lift':>6}")
    for r in table.itertuples(index=False):
        print(f"{r.source:<16} {r.size:>5} {r.rows:>6} {r.fits:>4} {r.macro_f1:>9.3f} {0 if np.isnan(r.sd) else r.sd:>6.3f} "
              f"{r.ratio:>6.2f} {r.lift:>6.2f}")
    if args.plot:
        plot(scores, floor, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"floor": floor, "scores": scores.to_dict("records")}, indent=1))


if __name__ == "__main__":
    main()
