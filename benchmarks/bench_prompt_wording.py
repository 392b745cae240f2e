"""Benchmark: what the prompt's sentiment wording per rating does to the rating signal, zero-shot, one run.

The instruction says "Write a 3-star Amazon review of ... It was {word}." with one word per
rating (`stages/synthesize/prompts.py`, SENTIMENT). Real 3- and 4-star reviews weigh a good
point against a bad one (about half use "but"); the generator's rarely do
(`bench_utility_gap.py`). This script asks whether other wordings move the base model's own
texts towards real ones before any private data is spent: each arm writes one record per
control row with the untrained base model (the zero-shot reference), for one fixed control
table sampled from a synthesize run's DP tabular model, so every arm writes for the same
ratings, categories and lengths. The arms differ in the wording alone.

Scores per arm: the train stage's TF-IDF + logistic regression fitted on `--rows` records
drawn with each of `--seeds`, macro-F1 on the real test split (ratio and lift against real
rows at the same count), with and without the stage's consistency filter; the consistency
judge's Spearman correlation between the asked rating and the rating the text reads as; the
share of bodies per rating that use "but"; the median length.

    .venv/bin/python benchmarks/bench_prompt_wording.py --arms one-word mixed qualified \\
        --records 1000 --rows 800 --out-dir .dvc/tmp/bench-prompt-wording --json benchmarks/results/prompt_wording.json
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# "It was {word}." per rating, as overrides of the stage's own table (`mixed`: none); `one-word` is the one it replaced.
WORDINGS = {
    "one-word": {1: "terrible", 2: "poor", 3: "okay", 4: "good", 5: "excellent"},
    "mixed": {},
    "qualified": {1: "terrible, and you regret buying it", 2: "poor: it mostly disappointed you",
                  3: "okay: some things were good, others were not", 4: "good, with one small drawback",
                  5: "excellent, and you love it"},
    # 5 stars only. Real 5-star bodies mostly say what the product does ("fits well and seems sturdy"); the
    # generator's are bare praise, and a classifier trained on them reads real 5s as 3s and 4s.
    "specific": {5: "excellent: say what you use it for and what it does well"},
    "caveat": {5: "excellent, even if not flawless"},
}
BUT = re.compile(r"\bbut\b", re.IGNORECASE)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tabular", type=Path, default=ROOT / "models/tabular/synthesizer.pkl")
    p.add_argument("--real", type=Path, default=ROOT / "data/anonymized/train.parquet")
    p.add_argument("--test", type=Path, default=ROOT / "data/anonymized/test.parquet")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--arms", nargs="+", default=list(WORDINGS), choices=list(WORDINGS))
    p.add_argument("--records", type=int, default=1000, help="control rows, one record each per arm")
    p.add_argument("--rows", type=int, default=800, help="training rows per TF-IDF fit (every arm and real)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--seed", type=int, default=0, help="controls and generation")
    p.add_argument("--out-dir", type=Path,
                   help="write each arm's records here; an arm already there is reused (its seconds are then null)")
    p.add_argument("--json", type=Path, help="write the table here")
    return p.parse_args()


def but_shares(frame: pd.DataFrame) -> dict[int, float]:
    """Share of bodies per rating that use "but"."""
    uses = frame["text"].map(lambda t: bool(BUT.search(t)))
    return {int(r): round(float(v), 3) for r, v in uses.groupby(frame["rating"]).mean().items()}


def main() -> None:
    args = parse_args()
    from bench_utility import scored_at
    from tqdm.auto import tqdm

    from stages.params import load_section
    from stages.synthesize import prompts
    from stages.synthesize.consistency import inconsistent, rating_judge
    from stages.synthesize.generator import ReviewGenerator
    from stages.synthesize.loading import load_base
    from stages.synthesize.params import SynthesizeParams
    from stages.textchecks import is_assistant_talk
    from stages.train.params import TrainParams

    syn, _ = load_section(args.params, "synthesize", SynthesizeParams)
    train_params, _ = load_section(args.params, "train", TrainParams)
    with open(args.tabular, "rb") as fh:
        controls = pickle.load(fh).sample(args.records, seed=args.seed)
    model, tokenizer = load_base(syn.generator.base_model, seed=args.seed)
    zero_shot = ReviewGenerator(model, tokenizer, {"fine_tuned": False})
    judge, c = rating_judge(syn.consistency), syn.consistency
    real, test = pd.read_parquet(args.real), pd.read_parquet(args.test)
    stage_wording = dict(prompts.SENTIMENT)
    sources, info = {"real": real}, {"real": {"but_share": but_shares(real)}}
    for name in args.arms:
        saved = args.out_dir / f"{name}.parquet" if args.out_dir else None
        if saved is not None and saved.is_file():
            frame = pd.read_parquet(saved)
            seconds = None
        else:
            prompts.SENTIMENT.clear()
            prompts.SENTIMENT.update({**stage_wording, **WORDINGS[name]})
            start = time.perf_counter()
            try:
                with tqdm(total=len(controls), desc=f"bench: {name}", unit="record", disable=None) as bar:
                    out = zero_shot.write(controls, syn.generation, seed=args.seed, progress=bar)
            finally:  # the stage's own table back, whatever happened
                prompts.SENTIMENT.clear()
                prompts.SENTIMENT.update(stage_wording)
            seconds = round(time.perf_counter() - start, 1)
            frame = pd.DataFrame({"rating": controls["rating"].to_numpy(), "title": out["titles"], "text": out["texts"]})
            frame = frame[frame["text"].notna()]
            frame = frame[[not is_assistant_talk(f"{t or ''}\n{x}") for t, x in zip(frame["title"], frame["text"])]]
            frame = frame.reset_index(drop=True)
            if saved is not None:
                args.out_dir.mkdir(parents=True, exist_ok=True)
                frame.to_parquet(saved)
        judged = judge.judge((frame["title"].fillna("") + "\n" + frame["text"]).str.strip().tolist())
        bad = inconsistent(frame["rating"].to_numpy(), judged, low_max=c.low_max, high_min=c.high_min)
        sources[name], sources[f"{name} +consistency"] = frame, frame[~bad]
        info[name] = {"wording": {**stage_wording, **WORDINGS[name]}, "seconds": seconds, "kept": len(frame),
                      "consistency_kept": int((~bad).sum()),
                      "judge_spearman": round(float(pd.Series(judged).corr(frame["rating"].astype(float),
                                                                           method="spearman")), 3),
                      "median_chars": float(frame["text"].str.len().median()), "but_share": but_shares(frame)}
        print(f"{name}: {info[name]}", flush=True)

    table, floor = scored_at(sources, test, args.rows, args.seeds, train_params)
    print(f"\nTF-IDF macro-F1 on {len(test)} real test reviews at {args.rows} training rows, {len(args.seeds)} draws; "
          f"majority floor {floor:.3f}")
    print('| source | macro-F1 (sd) | ratio | lift | judge Spearman | "but" 3★ / 4★ | median chars |')
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for r in table.itertuples(index=False):
        arm = info.get(r.source.replace(" +consistency", ""), {})
        row = {"source": r.source, "macro_f1": r.macro_f1, "sd": r.sd, "fits": int(r.fits), "ratio": r.ratio,
               "lift": r.lift, **arm}
        rows.append(row)
        but = arm.get("but_share", {})
        print(f"| {r.source} | {r.macro_f1:.3f} ({r.sd:.3f}) | {row['ratio']:.2f} | {row['lift']:.2f} | "
              f"{arm.get('judge_spearman', float('nan')):.3f} | {but.get(3, float('nan')):.2f} / "
              f"{but.get(4, float('nan')):.2f} | {arm.get('median_chars', float('nan')):.0f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"floor": floor, "rows": args.rows, "seeds": args.seeds, "table": rows},
                                        indent=1, default=str))


if __name__ == "__main__":
    main()
