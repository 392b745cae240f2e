"""Benchmark: both classifiers of the train stage on real and synthetic data, over several seeds, one run.

The train stage fits one LoRA classifier and one TF-IDF baseline per source with the
pipeline's seed. The LoRA figure of one fit moves by up to 0.06 macro-F1 from one run of a
profile to the next, which is as large as the differences the sweep compares. This script
runs the stage's own `run_train` (params.yaml's `train` section, `max_train_rows` rows per
source) once per (source, seed): the seed draws the new head's weights and the batch order,
and the rows where a source has more than `max_train_rows` (a synthetic set of exactly that
many is used whole, so its deterministic TF-IDF score does not move). Every fit is scored on the same real test split. It prints, per source and
model, the mean and standard deviation of macro-F1 over the seeds and the ratio and lift
against real data at the same seeds.

    .venv/bin/python benchmarks/bench_classifier_seeds.py \\
        --synthetic default=/tmp/syn-default.parquet zero-shot=/tmp/syn-zs.parquet \\
        --seeds 0 1 2 --json benchmarks/results/classifier_seeds.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's stages/
sys.path.insert(0, str(ROOT / "benchmarks"))

MODELS = ("majority", "tfidf", "lora")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", type=Path, default=ROOT / "data/anonymized/train.parquet")
    p.add_argument("--test", type=Path, default=ROOT / "data/anonymized/test.parquet")
    p.add_argument("--synthetic", nargs="+", required=True, metavar="NAME=PATH",
                   help="synthetic record files, each under a name")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--json", type=Path, help="write every (source, seed, model) score and the summary here")
    return p.parse_args()


def scores(sources: dict[str, pd.DataFrame], test: pd.DataFrame, params, seeds: list[int]) -> pd.DataFrame:
    """One row per (source, seed, model): macro-F1 on `test` of the train stage's models fitted on that source."""
    from stages.train.core import run_train

    rows = []
    for name, frame in sources.items():
        kind = "real" if name == "real" else "synthetic"
        one = dataclasses.replace(params, sources=(kind,))
        for seed in seeds:
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                metrics = run_train({kind: frame}, test, one, seed=seed, out_dir=Path(out)).metrics
            for model in MODELS:
                rows.append({"source": name, "seed": seed, "model": model,
                             "macro_f1": metrics[f"{kind}.{model}.macro_f1"], "rows": metrics[f"{kind}.rows"]})
            print(f"{name} seed {seed}: TF-IDF {metrics[f'{kind}.tfidf.macro_f1']:.3f}, "
                  f"LoRA {metrics[f'{kind}.lora.macro_f1']:.3f} ({time.perf_counter() - started:.0f} s)", flush=True)
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread per (source, model), with the ratio and lift against real data at the same seeds.

    The ratio and the lift are taken per seed (synthetic and real fitted with one seed) and
    then averaged, so a seed that is hard for both sources does not count against either.
    """
    wide = table.pivot_table(index=["seed", "model"], columns="source", values="macro_f1")
    floor = wide.xs("majority", level="model")["real"]
    out = []
    for (source, model), group in table.groupby(["source", "model"], sort=False):
        if model == "majority":
            continue
        mine = wide.xs(model, level="model")
        ratio = mine[source] / mine["real"]
        lift = (mine[source] - floor) / (mine["real"] - floor)
        out.append({"source": source, "model": model, "macro_f1": group["macro_f1"].mean(),
                    "sd": group["macro_f1"].std(ddof=1) if len(group) > 1 else float("nan"),
                    "min": group["macro_f1"].min(), "max": group["macro_f1"].max(),
                    "ratio": ratio.mean(), "lift": lift.mean(), "seeds": len(group)})
    return pd.DataFrame(out)


def main() -> None:
    args = parse_args()
    from bench_utility import synthetic_sources
    from stages.params import load_section
    from stages.train.params import TrainParams

    params, _ = load_section(args.params, "train", TrainParams)
    sources = {"real": pd.read_parquet(args.real), **synthetic_sources(args.synthetic)}
    table = scores(sources, pd.read_parquet(args.test), params, args.seeds)
    summary = summarise(table)
    pd.set_option("display.width", 160)
    print(f"train.max_train_rows {params.max_train_rows}; seeds {args.seeds}; majority floor "
          f"{table.loc[(table.source == 'real') & (table.model == 'majority'), 'macro_f1'].mean():.3f}")
    print(summary.round(3).to_string(index=False))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seeds": args.seeds, "max_train_rows": params.max_train_rows,
                                         "scores": table.to_dict(orient="records"),
                                         "summary": summary.to_dict(orient="records")}, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
