"""Benchmark: what the voice judge does to utility, on one pool of drafts, with and without it.

The stage's steps, from one saved generator (`models/generator`): the DP tabular model is
fitted once and its sample gives the controls, the generator writes n_records x oversample
drafts once (seeded), and then two arms run on those same drafts: every filter of the stage
without the voice judge, and every filter with it. Each arm goes through the DP selection
(judge, params.yaml's epsilon) several times, since OpenDP's noise cannot be seeded, and
each released set trains the train stage's classifiers (`run_train`) with several seeds,
scored on the real test split. The rows the selection reads are the stage's own
(`prepare_training`: bounded per user, canaries planted). Nothing it writes is a release.

    .venv/bin/python benchmarks/bench_voice_utility.py --draws 3 --seeds 0 1 \
        --json benchmarks/results/voice_utility.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's stages/


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", type=Path, default=ROOT / "models/generator")
    p.add_argument("--train", type=Path, default=ROOT / "data/anonymized/train.parquet")
    p.add_argument("--test", type=Path, default=ROOT / "data/anonymized/test.parquet")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--draws", type=int, default=3, help="DP selection noise draws per arm")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="classifier seeds per released set")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args()


def main() -> None:
    args = parse_args()
    from stages.evaluate.embed import Embedder
    from stages.params import load_section
    from stages.synthesize.core import _filter_and_assemble, prepare_training, public_judges
    from stages.synthesize.dp import unit_index
    from stages.synthesize.filters import anonymizer_analyzer
    from stages.synthesize.generator import ReviewGenerator
    from stages.synthesize.params import SynthesizeParams
    from stages.synthesize.selection import review_texts, select
    from stages.synthesize.tabular import fit_tabular
    from stages.train.core import run_train
    from stages.train.params import TrainParams

    syn, _ = load_section(args.params, "synthesize", SynthesizeParams)
    train_params, _ = load_section(args.params, "train", TrainParams)
    train_params = dataclasses.replace(train_params, sources=("synthetic",))
    seed = int(yaml.safe_load(args.params.read_text())["seed"])
    train, test = pd.read_parquet(args.train), pd.read_parquet(args.test)

    started = time.perf_counter()
    rows, _, _ = prepare_training(train, syn, seed=seed)
    units = unit_index(rows["user_id"].astype(str).to_numpy(), syn.dp.unit)
    tabular = fit_tabular(train, syn.tabular, dp=syn.dp, seed=seed)  # one DP draw, held across the arms
    n = syn.generation.n_records
    controls = tabular.sample(math.ceil(n * syn.generation.oversample), seed=seed)
    generator = ReviewGenerator.load_dir(args.generator)
    written = generator.write(controls, dataclasses.replace(syn.generation, engine="local"), seed=seed)
    print(f"{len(controls)} drafts written ({time.perf_counter() - started:.0f} s)", flush=True)

    analyzer = anonymizer_analyzer(syn.filters.pii_entities, syn.filters.pii_score_threshold)
    judge, voice = public_judges(dataclasses.replace(syn, voice=dataclasses.replace(syn.voice, enabled=True)),
                                 None, None)
    reference = pd.concat([train["text"], rows["text"]], ignore_index=True)
    embedder = Embedder(syn.selection.embedding_model, batch_size=syn.selection.batch_size)
    private = embedder.encode(review_texts(rows), desc="private rows")
    values, counts = np.unique(controls["rating"].iloc[:n].to_numpy(dtype=int), return_counts=True)
    targets = {int(r): int(c) for r, c in zip(values, counts)}

    results = []
    for arm, judge_of_voice in (("without the voice judge", None), ("with the voice judge", voice)):
        copy = {k: list(v) if isinstance(v, list) else v for k, v in written.items()}  # the filter edits titles
        drafts, filtered = _filter_and_assemble(controls, copy, tabular, reference, syn, analyzer, judge,
                                                judge_of_voice)
        embedded = embedder.encode(review_texts(drafts), desc=arm)
        for draw in range(args.draws):
            chosen = select(private, rows["rating"].to_numpy(), units, embedded, drafts["rating"].to_numpy(),
                            method=syn.selection.method, dims=syn.selection.dims, targets=targets, n=n,
                            epsilon=syn.selection.epsilon, delta=syn.selection.delta, seed=seed)
            released = drafts.iloc[chosen.keep].reset_index(drop=True)
            for classifier_seed in args.seeds:
                with tempfile.TemporaryDirectory() as out:
                    m = run_train({"synthetic": released}, test, train_params, seed=classifier_seed,
                                  out_dir=Path(out)).metrics
                results.append({"arm": arm, "draw": draw, "seed": classifier_seed, "drafts": len(drafts),
                                "dropped": filtered["dropped"], "tfidf": m["synthetic.tfidf.macro_f1"],
                                "lora": m["synthetic.lora.macro_f1"]})
                print(f"{arm}, draw {draw}, seed {classifier_seed}: {len(drafts)} drafts, TF-IDF "
                      f"{results[-1]['tfidf']:.3f}, LoRA {results[-1]['lora']:.3f}", flush=True)

    table = pd.DataFrame(results)
    summary = table.groupby("arm", sort=False).agg(
        drafts=("drafts", "first"), tfidf=("tfidf", "mean"), tfidf_sd=("tfidf", "std"), lora=("lora", "mean"),
        lora_sd=("lora", "std"), fits=("lora", "size"))
    print(summary.round(3).to_string())
    if args.json:
        args.json.write_text(json.dumps({"draws": args.draws, "seeds": args.seeds, "results": results,
                                         "summary": summary.reset_index().to_dict(orient="records")},
                                        indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
