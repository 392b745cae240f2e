"""Benchmark: evaluate's expensive parts at the production profile's sample sizes, side by side.

Compares, in one run on the shared Electronics sample:
  1. canary exposure scoring on SmolLM2-135M: one cached context + short suffixes (what
     evaluate does) vs a full forward pass per candidate; same ranks, different cost;
  2. MiniLM embeddings truncated at 128 tokens (the default) vs 256 (the model's limit):
     cost, and how much the Fréchet distance moves;
and times the other metrics (MAUVE, DCR, Anonymeter, the loss-based membership attack)
at params.yaml's sample sizes. "Synthetic" here is a real held-out sample: the costs
do not depend on where the texts come from.

    python -m stages.extract --no-mlflow --reviews ../shared/data/amazon_reviews_2023/Electronics.10k.jsonl.gz \
        --meta ../shared/data/amazon_reviews_2023/multi_category.2.7k.meta.jsonl.gz --out-dir /tmp/bench/extracted \
        --rejects /tmp/bench/extracted/rejects.jsonl --metrics /tmp/bench/extract.json
    python benchmarks/bench_evaluate.py --extracted /tmp/bench/extracted
    python benchmarks/bench_evaluate.py --extracted data/anonymized --mia-only --generator models/generator
        # the calibrated attack's scoring, on the splits evaluate scores: two full passes against the shared trunk
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from stages.evaluate import attacks, privacy, scoring, structured, text  # noqa: E402
from stages.evaluate.embed import Embedder  # noqa: E402
from stages.evaluate.params import EvaluateParams  # noqa: E402
from stages.params import load_section  # noqa: E402

GGUF = "models/base/SmolLM2-135M-Instruct.Q4_1.gguf"


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extracted", type=Path, required=True, help="an extract output folder")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--candidates", type=int, default=None, help="exposure candidates (default: params)")
    parser.add_argument("--max-len", type=int, default=128, help="generator tokens per record (synthesize.generator.max_seq_len)")
    parser.add_argument("--generator", type=Path, default=Path("models/generator"), metavar="DIR",
                        help="--mia-only: the trained generator folder to score with (dvc repro synthesize writes it)")
    parser.add_argument("--mia-only", action="store_true",
                        help="only the membership attack's scoring: both full passes against the shared-trunk pass")
    args = parser.parse_args()
    params, seed = load_section(args.params, "evaluate", EvaluateParams)
    s = params.samples
    train = pd.read_parquet(args.extracted / "train.parquet")
    test = pd.read_parquet(args.extracted / "test.parquet")
    val = pd.read_parquet(args.extracted / "val.parquet")
    n = s.text_records
    tr, te, sy = (f.sample(n=min(n, len(f)), random_state=seed).reset_index(drop=True) for f in (train, test, val))
    rows = []
    if args.mia_only:
        rows += mia_scoring(args, params, train, test, seed)
        return _print(rows)

    # 1. embeddings at two truncation lengths
    embedder = Embedder(params.fidelity.embedding_model, batch_size=params.fidelity.embedding_batch_size)
    fds = {}
    for tokens in (128, 256):
        embedder.model_.max_seq_length = tokens
        (e_tr, e_te, e_sy), secs = timed(lambda: [embedder.encode(f["text"].tolist()) for f in (tr, te, sy)])
        fds[tokens] = text.frechet_distance(e_sy, e_tr)
        rows.append((f"embed 3x{n} texts, max {tokens} tokens", secs, f"Fréchet(syn, train) {fds[tokens]:.4f}"))
    embedder.model_.max_seq_length = params.fidelity.embedding_max_tokens

    # 2. the other fidelity and privacy metrics at production sizes
    mv = dict(clusters=params.fidelity.mauve_clusters, scaling=params.fidelity.mauve_scaling, seed=seed)
    value, secs = timed(lambda: text.mauve(e_tr, e_sy, **mv))
    rows.append((f"MAUVE {n} vs {n}", secs, f"{value:.3f}"))
    value, secs = timed(lambda: privacy.dcr_metrics(e_sy, e_tr, e_te, metric="cosine", seed=seed)["dcr_share"])
    rows.append((f"embedding DCR {n} vs {n}+{n}", secs, f"share {value:.3f}"))
    m = s.structured_records
    st = [structured.structured_view(f.sample(n=min(m, len(f)), random_state=seed)) for f in (train, val, test)]
    value, secs = timed(lambda: structured.sdmetrics_reports(st[0], st[1], correlation_threshold=0.0,
                                                             association_threshold=0.0)["quality_score"])
    rows.append((f"SDMetrics reports {m} rows", secs, f"quality {value:.3f}"))
    cols = structured.informative_columns(st[0])
    k = s.anonymeter_records
    value, secs = timed(lambda: attacks.anonymeter_risks(st[0][cols].head(k), st[1][cols], st[2][cols].head(k),
                                                         n_attacks=s.anonymeter_attacks, seed=seed))
    rows.append((f"Anonymeter, {s.anonymeter_attacks} attacks x 3", secs,
                 f"singling-out {value['singling_out_risk']:.3f}, linkability {value['linkability_risk']:.3f}"))

    # 3. generator scoring on SmolLM2-135M
    if not Path(GGUF).is_file():
        print(f"{GGUF} is missing; run `python -m stages.base_models` for the generator rows", file=sys.stderr)
    else:
        import torch

        from stages.synthesize.loading import load_base

        torch.manual_seed(seed)
        model, tokenizer = load_base(GGUF, seed=seed)
        mia = train.sample(n=s.mia_records, random_state=seed).assign(main_category=None)
        losses, secs = timed(lambda: scoring.record_losses(model, tokenizer, mia, max_len=args.max_len,
                                                           batch_size=params.privacy.mia_batch_size, desc="mia"))
        rows.append((f"generator loss, {s.mia_records} records x {args.max_len} tokens (one MIA side)", secs, f"mean loss {losses.mean():.3f}"))
        canary = {"canary_id": 0, "repeat": 1, "rating": 5, "name": "Odalys Penhallow", "phone": "555-014-2233",
                  "street": "81 Quarry Bend", "secret": "K2P9ZQ7M1XV4", "title": "Gift for Odalys Penhallow",
                  "text": "Ordered this for Odalys Penhallow. If it breaks call 555-014-2233 or bring it to "
                          "81 Quarry Bend. My secret code is K2P9ZQ7M1XV4."}
        refs = args.candidates or params.privacy.exposure_references
        secrets = [canary["secret"]] + privacy.reference_secrets(canary["secret"], refs, seed=seed)
        context, template = scoring.canary_context(canary, tokenizer)
        cached, secs_cached = timed(lambda: scoring.suffix_losses(
            model, tokenizer, context, [template.format(secret=x) for x in secrets],
            batch_size=params.privacy.mia_batch_size))

        def full_pass():
            out = []
            with torch.no_grad():
                for x in secrets:
                    ids = tokenizer(context + template.format(secret=x), add_special_tokens=False)["input_ids"]
                    ids = torch.tensor([ids + [tokenizer.eos_token_id]])
                    ctx_len = len(tokenizer(context, add_special_tokens=False)["input_ids"])
                    logits = model(input_ids=ids).logits[0, ctx_len - 1 : -1]
                    out.append(float(torch.nn.functional.cross_entropy(logits, ids[0, ctx_len:], reduction="sum")))
            return np.array(out)

        full, secs_full = timed(full_pass)
        agree = float(np.corrcoef(np.argsort(np.argsort(cached)), np.argsort(np.argsort(full)))[0, 1])
        rows.append((f"exposure, 1 canary x {len(secrets)} candidates, cached context", secs_cached,
                     f"exposure {privacy.exposure(cached[0], cached[1:])['exposure']:.2f} bits"))
        rows.append((f"exposure, 1 canary x {len(secrets)} candidates, full passes", secs_full,
                     f"exposure {privacy.exposure(full[0], full[1:])['exposure']:.2f} bits; rank corr {agree:.4f}"))

    return _print(rows)


def mia_scoring(args, params, train: pd.DataFrame, test: pd.DataFrame, seed: int) -> list[tuple[str, float, str]]:
    """The calibrated attack's scoring of members and non-members: the previous path (the generator's and the
    base model's full passes) against `scoring.paired_losses` (the trunk below the adapters run once)."""
    from stages.synthesize.generator import ReviewGenerator

    generator = ReviewGenerator.load_dir(args.generator)  # says how to build one where the folder is missing
    model, tokenizer, what = generator.model, generator.tokenizer, str(args.generator)
    n, bs = params.samples.mia_records, params.privacy.mia_batch_size
    sides = [train.sample(n=n, random_state=seed), test.sample(n=n, random_state=seed + 1)]

    def previous():
        return [(scoring.record_losses(model, tokenizer, f, max_len=args.max_len, batch_size=bs, desc="generator"),
                 scoring.base_losses(model, tokenizer, f, max_len=args.max_len, batch_size=bs, desc="base model"))
                for f in sides]

    def paired():
        return [scoring.paired_losses(model, tokenizer, f, max_len=args.max_len, batch_size=bs, desc="paired")
                for f in sides]

    old, secs_old = timed(previous)
    new, secs_new = timed(paired)
    gap = max(float(np.abs(a - b).max()) for pair_old, pair_new in zip(old, new) for a, b in zip(pair_old, pair_new))
    label = f"MIA scoring, {n} members + {n} non-members x <= {args.max_len} tokens, {what}"
    return [(f"{label}: generator and base model, full passes", secs_old, ""),
            (f"{label}: shared trunk (paired_losses)", secs_new,
             f"{secs_old / secs_new:.2f}x; largest loss difference {gap:.1e}")]


def _print(rows) -> int:
    width = max(len(r[0]) for r in rows)
    print(f"\n{'what'.ljust(width)}  seconds  result")
    for what, secs, note in rows:
        print(f"{what.ljust(width)}  {secs:7.1f}  {note}")
    print(f"\n{os.cpu_count()} CPU(s); load average {os.getloadavg()[0]:.1f} (shared machine: times may be inflated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
