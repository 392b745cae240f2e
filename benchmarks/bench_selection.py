"""Benchmark: what DP selection of drafts adds to the rating signal, side by side with a random pick, one run.

Writes one pool of drafts for a fixed control table (drawn from the stage's DP tabular
model, fitted here on the anonymized train split with the run's seed, so every arm picks
from the same drafts at the same rating mix): the base model zero-shot (`--generator
base`) or a saved fine-tuned generator (`--generator models/generator`). The drafts go
through the stage's assistant-talk filter. Then each arm picks `--records` of them at the
rating mix of the first `--records` control rows:

- `random`: the stage without selection (a random pick at the same rating mix);
- `judge:EPS` / `votes:EPS`: the stage's selection (`stages/synthesize/selection.py`) over
  the user-bounded training rows, at that epsilon (`none`: exact statistics, no noise,
  the non-private upper bound). OpenDP's noise is not seedable, so every DP arm is
  repeated `--repeats` times; each repeat is a fresh noise draw.

`--pools` also runs every arm on the first K x records drafts only (K: the stage's
generation.oversample), to show what a smaller pool gives up.

Scores: the train stage's TF-IDF + logistic regression fitted on `--rows` records drawn
with each of `--seeds`, macro-F1 on the real test split, ratio and lift against real data
at the same rows; for judge arms also the judge's own macro-F1 on the real test split (it
is a DP classifier in its own right).

    .venv/bin/python benchmarks/bench_selection.py --generator base --drafts 4000 --records 1000 \\
        --arms random judge:none judge:1 judge:4 votes:none votes:1 --pools 1.3 2 3 4 \\
        --out-dir .dvc/tmp/bench-selection --json benchmarks/results/selection_zeroshot.json \\
        --plot benchmarks/results/selection_zeroshot.png
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", default="base", help="base (zero-shot) or a saved generator folder")
    p.add_argument("--real", type=Path, default=ROOT / "data/anonymized/train.parquet")
    p.add_argument("--test", type=Path, default=ROOT / "data/anonymized/test.parquet")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--drafts", type=int, default=4000, help="drafts written (one per control row)")
    p.add_argument("--records", type=int, default=1000, help="records each arm keeps")
    p.add_argument("--arms", nargs="+", default=["random", "judge:none", "judge:1", "votes:1"],
                   metavar="ARM", help="random, judge:EPS or votes:EPS (EPS none: no noise)")
    p.add_argument("--pools", type=float, nargs="+", default=[None], help="draft pools, as multiples of --records")
    p.add_argument("--repeats", type=int, default=3, help="noise draws per DP arm")
    p.add_argument("--rows", type=int, default=800, help="training rows per TF-IDF fit (every arm and real)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out-dir", type=Path, help="the drafts are written here (and reused if there); required")
    p.add_argument("--json", type=Path, help="write the table here")
    p.add_argument("--plot", type=Path, help="draw macro-F1 against the pool size per arm here (PNG)")
    p.add_argument("--replot", type=Path, help="only redraw --plot from this earlier --json, computing nothing")
    return p.parse_args()


def plot(arms: pd.DataFrame, real: float, floor: float, path: Path) -> None:
    """Macro-F1 of each arm against the draft pool (multiples of the records kept), spread over noise draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = arms[arms["arm"] != "real"].copy()
    arms["pool"] = arms["arm"].str.extract(r"pool ([\d.]+)x", expand=False).astype(float)
    arms["method"] = arms["arm"].str.replace(r" pool [\d.]+x$", "", regex=True)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, group in arms.groupby("method", sort=False):
        group = group.sort_values("pool")
        ax.errorbar(group["pool"], group["macro_f1"], yerr=group["across_repeats"].fillna(0), marker="o", capsize=3,
                    linestyle="--" if method == "random" or method.endswith(":none") else "-", label=method)
    ax.axhline(real, color="black", linewidth=1, label=f"real data ({real:.3f})")
    ax.axhline(floor, color="grey", linestyle=":", linewidth=1, label=f"majority floor ({floor:.3f})")
    ax.set_xlabel("drafts written per record kept (pool)")
    ax.set_ylabel("TF-IDF macro-F1 on the real test split")
    ax.set_title("DP selection of drafts vs a random pick (same drafts, same rating mix)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_drafts(args, syn, seed: int, train: pd.DataFrame) -> pd.DataFrame:
    """One draft per control row of the DP tabular model's seeded sample, by the chosen generator."""
    from tqdm.auto import tqdm

    from stages.synthesize.generator import ReviewGenerator, generator_config
    from stages.synthesize.loading import load_base
    from stages.synthesize.tabular import fit_tabular

    controls = fit_tabular(train, syn.tabular, dp=syn.dp, seed=seed).sample(args.drafts, seed=seed)
    if args.generator == "base":
        base, tokenizer = load_base(syn.generator.base_model, seed=seed)
        config = generator_config(dataclasses.replace(syn.generator, epochs=0), syn.generation, base_sha256="",
                                  seed=seed, base_seed=seed, privacy={}, tokenizer=tokenizer)
        generator = ReviewGenerator(base, tokenizer, config)
    else:
        generator = ReviewGenerator.load_dir(args.generator)
    start = time.perf_counter()
    with tqdm(total=len(controls), desc="bench: drafts", unit="draft", disable=None) as bar:
        out = generator.write(controls, syn.generation, seed=seed, progress=bar)
    print(f"{len(controls)} drafts in {time.perf_counter() - start:.0f} s ({out['tokens']} tokens)", flush=True)
    drafts = controls.copy()
    drafts["title"], drafts["text"] = out["titles"], out["texts"]
    return drafts


def main() -> None:
    args = parse_args()
    if args.replot:
        saved = json.loads(args.replot.read_text())
        real = next(r["macro_f1"] for r in saved["sources"] if r["source"] == "real")
        plot(pd.DataFrame(saved["arms"]), real, saved["floor"], args.plot)
        return
    from bench_utility import learning_curves, majority_floor, summarise

    from stages.evaluate.embed import Embedder
    from stages.params import load_section
    from stages.synthesize.dp import bound_contributions, unit_index
    from stages.synthesize.params import SynthesizeParams
    from stages.synthesize.selection import review_texts, select, top_per_rating
    from stages.textchecks import is_assistant_talk
    from stages.train.metrics import classification_report
    from stages.train.params import TrainParams

    if args.out_dir is None:
        raise SystemExit("--out-dir is required (the drafts are written there, and reused by a later run)")
    syn, seed = load_section(args.params, "synthesize", SynthesizeParams)
    train_params, _ = load_section(args.params, "train", TrainParams)
    real, test = pd.read_parquet(args.real), pd.read_parquet(args.test)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = "base" if args.generator == "base" else Path(args.generator).name
    path = args.out_dir / f"drafts-{stem}-{args.drafts}.parquet"
    if path.is_file():
        drafts = pd.read_parquet(path)
        print(f"drafts reused from {path}")
    else:
        drafts = write_drafts(args, syn, seed, real)
        drafts.to_parquet(path)
    targets = drafts["rating"].iloc[: args.records].value_counts().to_dict()
    drafts["draft"] = np.arange(len(drafts))  # position in the pool, before any is dropped
    drafts = drafts[drafts["text"].notna()]
    drafts = drafts[[not is_assistant_talk(t) for t in review_texts(drafts)]].reset_index(drop=True)

    private = real.iloc[bound_contributions(real["user_id"].astype(str).to_numpy(), syn.dp.max_reviews_per_user, seed)]
    private = private.reset_index(drop=True)
    units = unit_index(private["user_id"].astype(str).to_numpy(), syn.dp.unit)
    embedder = Embedder(syn.selection.embedding_model, batch_size=syn.selection.batch_size)
    e_private, e_drafts = embedder.encode(review_texts(private)), embedder.encode(review_texts(drafts))
    e_test = embedder.encode(review_texts(test))
    print(f"{len(drafts)} drafts after the assistant-talk filter; {len(private)} private rows of {units.max() + 1} "
          f"units; targets {dict(sorted(targets.items()))}", flush=True)

    sources, judges = {"real": real}, {}
    for pool in args.pools:
        in_pool = (drafts["draft"] < pool * args.records).to_numpy() if pool else np.ones(len(drafts), bool)
        pool_drafts, pool_emb = drafts[in_pool].reset_index(drop=True), e_drafts[in_pool]
        ratings = pool_drafts["rating"].to_numpy(dtype=int)
        tag = f" pool {pool:g}x" if pool else ""
        for arm in args.arms:
            method, _, eps = arm.partition(":")
            if method == "random":
                keep = top_per_rating(np.zeros(len(pool_drafts)), ratings, targets, args.records, seed=seed)
                sources[f"random{tag}"] = pool_drafts.iloc[keep]
                continue
            epsilon = None if eps == "none" else float(eps)
            for rep in range(1 if epsilon is None else args.repeats):
                name = f"{arm}{tag} #{rep}"
                out = select(e_private, private["rating"].to_numpy(), units, pool_emb, ratings, method=method,
                             dims=syn.selection.dims, targets=targets, n=args.records, epsilon=epsilon,
                             delta=syn.selection.delta, seed=seed)
                sources[name] = pool_drafts.iloc[out.keep]
                if out.judge is not None:  # the judge as a classifier of the real test split (argmax)
                    predicted = out.judge.probabilities(e_test).argmax(axis=1) + 1
                    judges[name] = classification_report(test["rating"].to_numpy(), predicted)["macro_f1"]
    scores = learning_curves(sources, test, [str(args.rows)], args.seeds, train_params.tfidf,
                             class_weighting=train_params.class_weighting, use_title=train_params.use_title)
    floor = majority_floor(real, test)
    table = summarise(scores, floor)
    table["judge_macro_f1"] = table["source"].map(judges)
    table["arm"] = table["source"].str.replace(r" #\d+$", "", regex=True)
    by_arm = table.groupby("arm", sort=False).agg(macro_f1=("macro_f1", "mean"), across_repeats=("macro_f1", "std"),
                                                  ratio=("ratio", "mean"), lift=("lift", "mean"),
                                                  judge_macro_f1=("judge_macro_f1", "mean"), runs=("source", "size"))
    pd.set_option("display.width", 160)
    print(f"majority floor {floor:.3f}; TF-IDF on {args.rows} rows, seeds {args.seeds}")
    print(table.drop(columns=["arm"]).round(3).to_string(index=False))
    print(by_arm.round(3).to_string())
    if args.plot:
        plot(by_arm.reset_index(), float(table.loc[table["source"] == "real", "macro_f1"].iloc[0]), floor, args.plot)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "generator": args.generator, "drafts": args.drafts, "records": args.records, "rows": args.rows,
            "seeds": args.seeds, "floor": floor, "targets": {int(k): int(v) for k, v in targets.items()},
            "sources": table.drop(columns=["arm"]).to_dict(orient="records"),
            "arms": by_arm.reset_index().to_dict(orient="records"),
        }, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
