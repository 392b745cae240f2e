"""Benchmark: what classifier-free guidance and the consistency filter add to the rating signal, one run.

Takes a synthesize run's saved generator (`models/generator`) and DP tabular model
(`models/tabular/synthesizer.pkl`), samples one fixed control table from the tabular model
(the stage's own `sample(n, seed)`, so every arm writes for the same ratings, categories
and lengths: the DP tabular noise cannot confound the comparison), and writes one record
per control row in each arm: the fine-tuned generator (`adapter`) or the untrained base
model (`base`, the zero-shot reference) at a guidance scale (1: off). Generation runs on
the transformers backend in bfloat16 for every arm, because CTranslate2 has no guidance,
so the arms differ in the guidance alone. Each arm's records then go through the stage's
assistant-talk filter, and are scored with and without the stage's consistency filter.

Scores: the train stage's TF-IDF + logistic regression (`train.*` of params.yaml) fitted
on `--rows` records drawn with each of `--seeds` (equal row counts for every arm and for
the real training split), macro-F1 on the real test split; ratio and lift over the
majority floor against real data at the same rows; the consistency judge's Spearman
correlation between the rating a record was written for and the rating its text reads as
(a classifier-free measure of the rating signal); the median text length; seconds per record.

    .venv/bin/python benchmarks/bench_guidance.py --arms adapter:1 adapter:1.5 adapter:2.5 base:1 base:2 \\
        --records 1000 --rows 800 --out-dir /tmp/guidance --json benchmarks/results/guidance.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
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
    p.add_argument("--generator", type=Path, default=ROOT / "models/generator")
    p.add_argument("--tabular", type=Path, default=ROOT / "models/tabular/synthesizer.pkl")
    p.add_argument("--real", type=Path, default=ROOT / "data/anonymized/train.parquet")
    p.add_argument("--test", type=Path, default=ROOT / "data/anonymized/test.parquet")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--arms", nargs="+", default=["adapter:1", "adapter:2"], metavar="MODEL:SCALE",
                   help="MODEL is adapter (the saved fine-tune) or base (zero-shot); SCALE the guidance (1: off)")
    p.add_argument("--records", type=int, default=1000, help="control rows, one record each per arm")
    p.add_argument("--rows", type=int, default=800, help="training rows per TF-IDF fit (every arm and real)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--seed", type=int, default=0, help="controls and generation")
    p.add_argument("--out-dir", type=Path,
                   help="write each arm's records (parquet) and figures (json) here; an arm already there is reused")
    p.add_argument("--json", type=Path, help="write the table here")
    return p.parse_args()


def _arms(specs: list[str]) -> list[tuple[str, float]]:
    out = []
    for spec in specs:
        model, _, scale = spec.partition(":")
        if model not in ("adapter", "base") or not scale:
            raise SystemExit(f"--arms {spec!r}: give adapter:SCALE or base:SCALE, e.g. adapter:1.5")
        out.append((model, float(scale)))
    return out


def main() -> None:
    args = parse_args()
    import torch
    from bench_utility import scored_at
    from tqdm.auto import tqdm

    from stages.params import load_section
    from stages.synthesize.consistency import inconsistent, rating_judge
    from stages.synthesize.generator import ReviewGenerator
    from stages.synthesize.loading import load_base
    from stages.synthesize.params import SynthesizeParams
    from stages.textchecks import is_assistant_talk
    from stages.train.params import TrainParams

    arms = _arms(args.arms)
    syn, _ = load_section(args.params, "synthesize", SynthesizeParams)
    train_params, _ = load_section(args.params, "train", TrainParams)
    with open(args.tabular, "rb") as fh:
        tabular = pickle.load(fh)  # the stage's own DP tabular model (post-processed noisy tables)
    controls = tabular.sample(args.records, seed=args.seed)
    tuned = ReviewGenerator.load_dir(args.generator)
    base_model, tokenizer = load_base(tuned.config["base_model"], seed=tuned.config["base_seed"])
    zero_shot = ReviewGenerator(base_model, tokenizer, {**tuned.config, "fine_tuned": False})
    gen = dataclasses.replace(syn.generation, backend="transformers", dtype="bfloat16")
    judge, c = rating_judge(syn.consistency), syn.consistency
    real, test = pd.read_parquet(args.real), pd.read_parquet(args.test)
    print(f"generator {args.generator} (privacy: {tuned.config['privacy'].get('epsilon')}), {len(controls)} controls "
          f"(ratings {controls['rating'].value_counts().sort_index().to_dict()}), torch threads {torch.get_num_threads()}")

    sources, info = {"real": real}, {}
    for model, scale in arms:
        name, stem = f"{model} g={scale:g}", f"{model}-g{scale:g}"
        saved = args.out_dir / f"{stem}.json" if args.out_dir else None
        if saved is not None and saved.is_file():  # the same arm of an earlier, interrupted run of this command
            sources[name] = pd.read_parquet(args.out_dir / f"{stem}.parquet")
            sources[f"{name} +consistency"] = sources[name][~np.array(json.loads(saved.read_text())["inconsistent"])]
            info[name] = json.loads(saved.read_text())["info"]
            print(f"{name}: reused from {saved}: {info[name]}", flush=True)
            continue
        generator = tuned if model == "adapter" else zero_shot
        start = time.perf_counter()
        with tqdm(total=len(controls), desc=f"bench: {name}", unit="record", disable=None) as bar:
            out = generator.write(controls, dataclasses.replace(gen, guidance_scale=scale), seed=args.seed, progress=bar)
        seconds = time.perf_counter() - start
        frame = pd.DataFrame({"rating": controls["rating"].to_numpy(), "title": out["titles"], "text": out["texts"]})
        frame = frame[frame["text"].notna()]
        frame = frame[[not is_assistant_talk(f"{t or ''}\n{x}") for t, x in zip(frame["title"], frame["text"])]]
        frame = frame.reset_index(drop=True)
        judged = judge.judge((frame["title"].fillna("") + "\n" + frame["text"]).str.strip().tolist())
        bad = inconsistent(frame["rating"].to_numpy(), judged, low_max=c.low_max, high_min=c.high_min)
        sources[name] = frame
        sources[f"{name} +consistency"] = frame[~bad]
        info[name] = {"seconds": round(seconds, 1), "seconds_per_record": round(seconds / len(controls), 3),
                      "tokens": out["tokens"], "tokens_per_second": round(out["tokens"] / seconds, 1),
                      "kept": len(frame), "consistency_kept": int((~bad).sum()),
                      "judge_spearman": float(pd.Series(judged).corr(frame["rating"].astype(float), method="spearman")),
                      "median_chars": float(frame["text"].str.len().median())}
        if saved is not None:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(args.out_dir / f"{stem}.parquet")
            saved.write_text(json.dumps({"info": info[name], "inconsistent": bad.tolist()}))
        print(f"{name}: {info[name]}", flush=True)

    table, floor = scored_at(sources, test, args.rows, args.seeds, train_params)
    print(f"\nTF-IDF macro-F1 on {len(test)} real test reviews at {args.rows} training rows, {len(args.seeds)} draws; "
          f"majority floor {floor:.3f}")
    print("| source | macro-F1 (sd) | ratio | lift | judge Spearman | median chars | s/record |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for r in table.itertuples(index=False):
        arm = info.get(r.source.replace(" +consistency", ""), {})
        row = {"source": r.source, "macro_f1": r.macro_f1, "sd": r.sd, "fits": int(r.fits),
               "ratio": r.ratio, "lift": r.lift, **arm}
        rows.append(row)
        print(f"| {r.source} | {r.macro_f1:.3f} ({r.sd:.3f}) | {row['ratio']:.2f} | {row['lift']:.2f} | "
              f"{arm.get('judge_spearman', float('nan')):.3f} | {arm.get('median_chars', float('nan')):.0f} | "
              f"{arm.get('seconds_per_record', float('nan')):.3f} |")
    if len(table) - 1 < 2 * len(arms):
        print("note: some source had fewer rows than --rows and was skipped; lower --rows")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"floor": floor, "rows": args.rows, "seeds": args.seeds,
                                         "generator_privacy": tuned.config["privacy"], "table": rows}, indent=1, default=str))
    np.set_printoptions(precision=3)


if __name__ == "__main__":
    main()
