"""Benchmark a lazy trunk pass for the DP fine-tune against the stage's whole pass, in one run.

The stage caches the frozen layers' states below the adapters, running them over every
bounded training row before the first step (`trunk.cache_trunk`, batches of 32 by length).
Poisson sampling leaves some users out of every step (14% of them over the default's 36
steps at q 0.053), so a lazy pass, which runs an example the first time a step samples it,
computes fewer rows. This times both over the stage's rows (an anonymize train.parquet,
bounded per user as the stage bounds them) and the steps of the stage's plan
(`dp.plan_steps`), drawn by Opacus' Poisson sampler with a seeded generator, and reports the
largest difference between the states both computed. The lazy pass runs `cache_trunk` over
each step's new rows (by length, 32 at a time), as the stage would have to.

Measured: the lazy pass is slower although it computes fewer rows, so the stage keeps the
whole pass (README, "The trunk pass only where a step samples: measured, and not taken").

    .venv/bin/python benchmarks/bench_trunk.py --anonymized data/anonymized/train.parquet --users 300   # a quarter of the users, same q
    .venv/bin/python benchmarks/bench_trunk.py --anonymized data/anonymized/train.parquet   # every user: the stage's whole pass, then the lazy one
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's stages/, whatever the editable install points at


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--anonymized", type=Path, required=True, metavar="TRAIN_PARQUET",
                   help="the anonymize stage's train.parquet (e.g. data/anonymized/train.parquet), with its user ids")
    p.add_argument("--base", default=str(ROOT / "models/base/SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--reviews-per-user", type=int, default=5, help="synthesize.dp.max_reviews_per_user")
    p.add_argument("--batch", type=int, default=64, help="synthesize.generator.batch_size: expected users per step")
    p.add_argument("--epochs", type=float, default=2.0, help="synthesize.generator.epochs")
    p.add_argument("--seq-len", type=int, default=128, help="synthesize.generator.max_seq_len")
    p.add_argument("--lora-last-layers", type=int, default=4, help="synthesize.generator.lora_last_layers")
    p.add_argument("--seed", type=int, default=0, help="the Poisson sampler's seed")
    p.add_argument("--users", type=int, default=None,
                   help="a seeded random N of the users only, with --batch scaled so that q (and so the share of "
                        "users never sampled, (1 - q) ** steps) is the full run's")
    return p.parse_args()


def sampled_rows(units, plan, seed: int) -> list[list[int]]:
    """The rows of each step of `plan`, as the stage's Poisson sampler draws its users."""
    import torch
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    members = [[] for _ in range(plan.n_units)]
    for row, unit in enumerate(units):
        members[unit].append(row)
    sampler = UniformWithReplacementSampler(num_samples=plan.n_units, sample_rate=plan.sample_rate,
                                            generator=torch.Generator().manual_seed(seed))
    epochs = plan.steps // plan.steps_per_epoch + 1
    batches = (batch for _ in range(epochs) for batch in sampler)
    return [[r for u in batch for r in members[u]] for _, batch in zip(range(plan.steps), batches)]


def padded_tokens(lengths, rows, batch: int = 32) -> int:
    """Tokens a trunk pass over `rows` computes, padding included: batches of `batch` by length, as cache_trunk runs."""
    order = sorted(rows, key=lambda i: (lengths[i], i))
    return sum(max(lengths[i] for i in order[k : k + batch]) * len(order[k : k + batch])
               for k in range(0, len(order), batch))


def main():
    import numpy as np
    import pandas as pd
    import torch

    from stages.synthesize.dp import bound_contributions, plan_steps, unit_index
    from stages.synthesize.encoding import Encoded, encode_records
    from stages.synthesize.loading import load_base
    from stages.synthesize.params import DPParams, GeneratorParams
    from stages.synthesize.trunk import cache_trunk, split_index

    args = parse_args()
    frame = pd.read_parquet(args.anonymized)
    users = frame["user_id"].astype(str).to_numpy()
    frame = frame.iloc[bound_contributions(users, args.reviews_per_user, seed=0)].reset_index(drop=True)
    batch = args.batch
    if args.users:
        everyone = frame["user_id"].astype(str).unique()
        chosen = set(np.random.default_rng(0).choice(everyone, size=min(args.users, len(everyone)), replace=False))
        batch = max(1, round(args.batch * len(chosen) / len(everyone)))
        frame = frame[frame["user_id"].astype(str).isin(chosen)].reset_index(drop=True)
    units = unit_index(frame["user_id"].astype(str).to_numpy(), "user")
    gen = GeneratorParams(
        base_model=args.base, lora_r=4, lora_alpha=8, lora_dropout=0.0, target_modules=("q_proj", "v_proj"),
        lora_last_layers=args.lora_last_layers, learning_rate=1e-3, epochs=args.epochs, batch_size=batch,
        max_seq_len=args.seq_len, max_train_rows=None, min_train_rows=1, eval_rows=1, train_dtype="float32",
        micro_batch_size=None, rating_weights=(1.0, 1.0, 1.0, 1.0, 1.0),
    )
    dp = DPParams(enabled=False, unit="user", max_reviews_per_user=args.reviews_per_user, target_epsilon=1.0,
                  delta=1e-5, max_grad_norm=1.0, accountant="rdp")  # the plan's q and steps only: no noise here
    plan = plan_steps(int(units.max()) + 1, gen, dp)
    steps = sampled_rows(units, plan, args.seed)

    model, tok = load_base(args.base, seed=0)
    enc = encode_records(tok, frame.astype({"rating": int}), args.seq_len)
    split = split_index(model, args.lora_last_layers)
    print(f"base {args.base}; torch threads {torch.get_num_threads()}; CPU load {os.getloadavg()[0]:.1f}")
    print(f"{len(frame)} rows of {plan.n_units} users (<= {args.reviews_per_user} each), seq <= {args.seq_len}, the "
          f"trunk below the top {args.lora_last_layers} layers; the plan: q {plan.sample_rate:.4f}, {plan.steps} steps")
    start = time.perf_counter()
    whole = cache_trunk(model, enc, split, batch_size=32, dtype=torch.float32)
    whole_seconds = time.perf_counter() - start
    lengths = enc.attention_mask.sum(dim=1).tolist()
    hidden: dict[int, torch.Tensor] = {}
    lazy_padded = 0
    start = time.perf_counter()
    for rows in steps:
        new = sorted({r for r in rows if r not in hidden})
        if new:
            lazy_padded += padded_tokens(lengths, new)
            part = cache_trunk(model, Encoded(enc.input_ids[new], enc.attention_mask[new], enc.labels[new]), split,
                               batch_size=32, dtype=torch.float32)
            hidden.update(zip(new, part.hidden))
    lazy_seconds = time.perf_counter() - start
    diff = max(float((h - whole.hidden[i]).abs().max()) for i, h in hidden.items())
    print(f"{'pass':40s} {'examples':>9s} {'tokens':>8s} {'padded':>8s} {'seconds':>8s} {'x whole':>8s}")
    print(f"{'whole: every row, by length':40s} {len(frame):9d} {sum(lengths):8d} "
          f"{padded_tokens(lengths, range(len(frame))):8d} {whole_seconds:8.1f} {1.0:8.2f}")
    print(f"{'lazy: each sampled row, step by step':40s} {len(hidden):9d} {sum(lengths[i] for i in hidden):8d} "
          f"{lazy_padded:8d} {lazy_seconds:8.1f} {whole_seconds / lazy_seconds:8.2f}")
    print(f"largest state difference over the rows both computed: {diff:.2e}; CPU load at the end "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
