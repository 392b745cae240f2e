"""Benchmark: what each post-generation lever does to utility, on one pool of drafts, side by side.

The stage's steps, from one saved generator (`models/generator`): the DP tabular model is
fitted once and its sample gives the controls, and the generator writes `--pool` x n_records
drafts once (seeded; saved in `--out-dir` and reused from there on a second run). Each arm
then runs on those same drafts:

- which of the public filters run: every filter of the stage by default; `-voice`,
  `-consistency` and `-echo` switch the voice judge, the consistency judge or the prompt-echo
  patterns off (the memorisation, assistant-, seller-talk and PII filters always run: they are
  privacy or voice rules, not levers);
- how large a pool the DP selection chooses from: `pool:K` keeps the drafts of the first
  K x n_records controls only (the pool `generation.oversample` K gives); the default is
  params.yaml's oversample;
- how the selection picks from its scores, at the same rating mix: `pick:top` (the stage: the
  drafts each rating's judge scores highest), `pick:sample` (drawn without replacement with
  probability proportional to the score: the judge's preference without only its most typical
  drafts) or `pick:random` (the scores ignored: the stage with `selection.enabled: false`);
- how many public principal axes the DP judge works in: `dims:K` (default params.yaml's
  `selection.dims`; the noise per statistic is the same at any K, since each unit's whole
  vector is clipped to norm 1);
- the DP judge's priors: `priors:equal` or `priors:counts` (default params.yaml's
  `selection.priors`);
- how far the asked rating is trusted against the judge's reading: `trust:T` (default
  params.yaml's `selection.prompt_trust`; 1 never relabels a draft).

An arm is `NAME=SPEC`, SPEC a comma list of those words (empty: the stage as configured).
Each arm goes through the DP selection (params.yaml's method and epsilon) `--draws` times,
since OpenDP's noise cannot be seeded, and each released set trains the train stage's TF-IDF
baseline (deterministic) and, with `--lora-seeds`, its LoRA classifier (`run_train`), scored on
the real test split. The rows the selection reads are the stage's own (`prepare_training`:
bounded per user, canaries planted). Nothing it writes is a release.

    .venv/bin/python benchmarks/bench_release_filters.py --pool 3 --draws 4 \\
        --arms default= no-consistency=-consistency no-voice=-voice pool3=pool:3 \\
        --out-dir .dvc/tmp/bench-release-filters --json benchmarks/results/release_filters.json
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

WORDS = ("-voice", "-consistency", "-echo")
PICKS = ("top", "sample", "random")
PRIORS = ("equal", "counts")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", type=Path, default=ROOT / "models/generator")
    p.add_argument("--train", type=Path, default=ROOT / "data/anonymized/train.parquet")
    p.add_argument("--test", type=Path, default=ROOT / "data/anonymized/test.parquet")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--pool", type=float, default=3.0, help="drafts written, as a multiple of n_records")
    p.add_argument("--arms", nargs="+", default=["default="], metavar="NAME=SPEC")
    p.add_argument("--draws", type=int, default=3, help="DP selection noise draws per arm")
    p.add_argument("--lora-seeds", type=int, nargs="*", default=[], help="LoRA classifier seeds per released set")
    p.add_argument("--out-dir", type=Path, required=True, help="the drafts are saved here and reused")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args()


def parse_arm(text: str, default_pool: float, default_dims: int, default_priors: str,
              default_trust: float) -> tuple[str, set[str], float, str, int, str, float]:
    """NAME=SPEC -> (name, filters off, pool multiple, pick rule, judge dims, judge priors, prompt trust);
    an unknown word is an error."""
    name, _, spec = text.partition("=")
    off, pool, pick, dims, priors, trust = set(), default_pool, "top", default_dims, default_priors, default_trust
    for word in filter(None, (w.strip() for w in spec.split(","))):
        if word.startswith("trust:"):
            trust = float(word[len("trust:"):])
        elif word.startswith("priors:") and word[len("priors:"):] in PRIORS:
            priors = word[len("priors:"):]
        elif word.startswith("dims:"):
            dims = int(word[len("dims:"):])
        elif word.startswith("pool:"):
            pool = float(word[len("pool:"):])
        elif word.startswith("pick:") and word[len("pick:"):] in PICKS:
            pick = word[len("pick:"):]
        elif word in WORDS:
            off.add(word[1:])
        else:
            raise SystemExit(f"arm {name!r}: unknown word {word!r}; use {', '.join(WORDS)}, pool:K, dims:K, "
                             f"trust:T, priors:{'|'.join(PRIORS)} or pick:{'|'.join(PICKS)}")
    return name, off, pool, pick, dims, priors, trust


def picked(chosen, targets: dict[int, int], n: int, pick: str, *, seed: int) -> np.ndarray:
    """The kept drafts under a pick rule, at the selection's rating mix: `top` is the selection's own keep;
    the others rewrite its scores into keys for the same `top_per_rating` over the released ratings."""
    from stages.synthesize.selection import top_per_rating

    ratings = chosen.ratings
    if pick == "top":
        return chosen.keep
    rng = np.random.default_rng(seed)
    if pick == "sample":  # Gumbel top-k: sampling without replacement, probability proportional to the score
        keys = np.log(np.maximum(chosen.scores, 1e-300)) + rng.gumbel(size=len(chosen.scores))
    else:  # random: all keys equal, top_per_rating breaks the ties at random
        keys = np.zeros(len(chosen.scores))
    return top_per_rating(keys, ratings, targets, n, seed=seed)


def write_drafts(args, syn, train, seed: int):
    """Controls and the generator's drafts for them, written once and reused from --out-dir."""
    from stages.synthesize.generator import ReviewGenerator
    from stages.synthesize.tabular import fit_tabular

    controls_path, drafts_path = args.out_dir / "controls.pkl", args.out_dir / "drafts.json"
    if controls_path.exists() and drafts_path.exists():
        return pd.read_pickle(controls_path), json.loads(drafts_path.read_text()), None
    tabular = fit_tabular(train, syn.tabular, dp=syn.dp, seed=seed)  # one DP draw, held across the arms
    controls = tabular.sample(math.ceil(syn.generation.n_records * args.pool), seed=seed)
    started = time.perf_counter()
    generator = ReviewGenerator.load_dir(args.generator)
    written = generator.write(controls, dataclasses.replace(syn.generation, engine="local"), seed=seed)
    print(f"{len(controls)} drafts written ({time.perf_counter() - started:.0f} s)", flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    controls.to_pickle(controls_path)
    drafts_path.write_text(json.dumps({"titles": written["titles"], "texts": written["texts"]}))
    return controls, written, tabular


def main() -> None:
    args = parse_args()
    from stages.evaluate.embed import Embedder
    from stages.params import load_section
    from stages.synthesize.core import _filter_and_assemble, prepare_training, public_judges
    from stages.synthesize.dp import unit_index
    from stages.synthesize.filters import anonymizer_analyzer
    from stages.synthesize.params import SynthesizeParams
    from stages.synthesize.selection import review_texts, select
    from stages.synthesize.tabular import fit_tabular
    from stages.train.baseline import TfidfBaseline
    from stages.train.core import run_train
    from stages.train.metrics import classification_report
    from stages.train.params import TrainParams
    from stages.train.predict import review_texts as classifier_texts

    syn, _ = load_section(args.params, "synthesize", SynthesizeParams)
    train_params, _ = load_section(args.params, "train", TrainParams)
    train_params = dataclasses.replace(train_params, sources=("synthetic",))
    seed = int(yaml.safe_load(args.params.read_text())["seed"])
    arms = [parse_arm(a, syn.generation.oversample, syn.selection.dims, syn.selection.priors,
                      syn.selection.prompt_trust) for a in args.arms]
    train, test = pd.read_parquet(args.train), pd.read_parquet(args.test)
    test_texts = classifier_texts(test, use_title=train_params.use_title)

    rows, _, _ = prepare_training(train, syn, seed=seed)
    units = unit_index(rows["user_id"].astype(str).to_numpy(), syn.dp.unit)
    controls, written, tabular = write_drafts(args, syn, train, seed)
    if tabular is None:  # drafts reused: the tabular model is only asked which columns it left null
        tabular = fit_tabular(train, syn.tabular, dp=syn.dp, seed=seed)
    n = syn.generation.n_records
    values, counts = np.unique(controls["rating"].iloc[:n].to_numpy(dtype=int), return_counts=True)
    targets = {int(r): int(c) for r, c in zip(values, counts)}

    analyzer = anonymizer_analyzer(syn.filters.pii_entities, syn.filters.pii_score_threshold)
    on = dataclasses.replace(syn, voice=dataclasses.replace(syn.voice, enabled=True),
                             consistency=dataclasses.replace(syn.consistency, enabled=True))
    judge, voice = public_judges(on, None, None)
    reference = pd.concat([train["text"], rows["text"]], ignore_index=True)
    embedder = Embedder(syn.selection.embedding_model, batch_size=syn.selection.batch_size)
    private = embedder.encode(review_texts(rows), desc="private rows")

    results, filtered_pools = [], {}
    for name, off, pool, pick, dims, priors, trust in arms:
        size = min(len(controls), math.ceil(n * pool))
        key = (frozenset(off), size)
        if key not in filtered_pools:  # arms that differ only in the selection share their filtered pool
            copy = {k: list(v[:size]) for k, v in written.items() if k in ("titles", "texts")}  # the filter edits titles
            echo = syn.filters.drop_prompt_echo and "echo" not in off
            filters = dataclasses.replace(syn.filters, drop_prompt_echo=echo)
            drafts, filtered = _filter_and_assemble(
                controls.iloc[:size], copy, tabular, reference, dataclasses.replace(syn, filters=filters), analyzer,
                None if "consistency" in off else judge, None if "voice" in off else voice)
            filtered_pools[key] = drafts, filtered, embedder.encode(review_texts(drafts), desc=name)
        drafts, filtered, embedded = filtered_pools[key]
        for draw in range(args.draws):
            chosen = select(private, rows["rating"].to_numpy(), units, embedded, drafts["rating"].to_numpy(),
                            method=syn.selection.method, dims=dims, targets=targets, n=n,
                            epsilon=syn.selection.epsilon, delta=syn.selection.delta, seed=seed, priors=priors,
                            prompt_trust=trust)
            keep = picked(chosen, targets, n, pick, seed=seed + draw)
            released = drafts.iloc[keep].reset_index(drop=True)
            released["rating"] = chosen.ratings[keep]
            tfidf = TfidfBaseline(train_params.tfidf, class_weighting=train_params.class_weighting, seed=seed).fit(
                classifier_texts(released, use_title=train_params.use_title), released["rating"].to_numpy())
            report = classification_report(test["rating"].to_numpy(), tfidf.predict(test_texts))
            row = {"arm": name, "off": sorted(off), "pool": pool, "pick": pick, "dims": dims, "priors": priors,
                   "trust": trust, "draw": draw, "drafts": len(drafts),
                   "relabelled": int((chosen.ratings[keep] != drafts["rating"].to_numpy()[keep]).sum()),
                   "dropped": filtered["dropped"], "tfidf": report["macro_f1"],
                   **{f"tfidf_f1_{r}": report[f"f1_{r}"] for r in range(1, 6)}}
            for classifier_seed in args.lora_seeds:
                with tempfile.TemporaryDirectory() as out:
                    m = run_train({"synthetic": released}, test, train_params, seed=classifier_seed,
                                  out_dir=Path(out)).metrics
                row[f"lora_seed{classifier_seed}"] = m["synthetic.lora.macro_f1"]
            results.append(row)
            print(f"{name}, draw {draw}: {len(drafts)} drafts, TF-IDF {row['tfidf']:.3f}", flush=True)

    table = pd.DataFrame(results)
    lora = [c for c in table if c.startswith("lora_seed")]
    if lora:
        table["lora"] = table[lora].mean(axis=1)
    agg = {"drafts": ("drafts", "first"), "relabelled": ("relabelled", "mean"),
           "tfidf": ("tfidf", "mean"), "tfidf_sd": ("tfidf", "std"),
           **{f"f1_{r}": (f"tfidf_f1_{r}", "mean") for r in range(1, 6)}, "fits": ("tfidf", "size")}
    if lora:
        agg.update(lora=("lora", "mean"), lora_sd=("lora", "std"))
    summary = table.groupby("arm", sort=False).agg(**agg)
    print(summary.round(3).to_string())
    if args.json:
        args.json.write_text(json.dumps({"pool": args.pool, "draws": args.draws, "lora_seeds": args.lora_seeds,
                                         "arms": args.arms, "results": results,
                                         "summary": summary.reset_index().to_dict(orient="records")},
                                        indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
