"""Benchmark: how the DP tabular model's budget split steadies the rating counts, side by side in one run.

The tabular model spends its zCDP budget rho on 9 tables: the rating counts (the root)
and 8 two-way tables. `synthesize.tabular.root_share` is the root's part; 1/9 is the
even split. The epsilon is the same at every share: only where the noise goes moves.
The length table keeps weight 1 here (length_share (1 - share) / 8, no prior), so only
the root's share moves; bench_length_budget.py sweeps the length table's.
On the extracted train split of the shared Electronics sample, with anonymize's
structured rules and the stage's user bounding (k = `dp.max_reviews_per_user`), every
share is fitted `--fits` times with fresh OpenDP noise, and for each it reports

  - the rating distribution's error: total variation distance to the bounded rows' own
    ratings, mean and spread over the fits;
  - the 2-star share of the model (what decides how many 2-star records a run writes),
    5th-95th percentile over the fits, against the real share;
  - what the two-way tables pay: the TV error of P(text length bin | rating), weighted by
    the real rating shares;
  - SDMetrics' quality score of 2,000 sampled rows against 2,000 real ones, on the first
    `--quality-fits` fits (evaluate's own report).

    python -m stages.extract --no-mlflow --no-meta --reviews ../shared/data/amazon_reviews_2023/Electronics.10k.jsonl.gz \\
        --out-dir /tmp/bench/extracted --rejects /tmp/bench/extracted/rejects.jsonl --metrics /tmp/bench/extract.json
    python benchmarks/bench_rating_budget.py --extracted /tmp/bench/extracted \\
        --json benchmarks/results/rating_budget.json --plot benchmarks/results/rating_budget.png
"""

from __future__ import annotations

import argparse
import dataclasses
import secrets
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.anonymize.params import AnonymizeParams  # noqa: E402
from stages.evaluate.params import EvaluateParams  # noqa: E402
from stages.evaluate.structured import sdmetrics_reports, structured_view  # noqa: E402
from stages.io import write_json  # noqa: E402
from stages.params import load_section  # noqa: E402
from stages.synthesize.dp_tabular import ROOT, column_bins, discretise  # noqa: E402
from stages.synthesize.params import SynthesizeParams  # noqa: E402
from stages.synthesize.tabular import fit_tabular, tabular_frame, unit_bounded  # noqa: E402


def truth(train: pd.DataFrame, syn: SynthesizeParams, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The user-bounded rows' rating distribution and P(text_chars bin | rating), as the DP model measures them."""
    rows = unit_bounded(train, syn.dp, seed)
    bins = column_bins(syn.tabular.domain)
    codes = discretise(tabular_frame(rows), bins)
    ratings = np.bincount(codes[ROOT], minlength=bins[ROOT].size).astype(float)
    table = np.zeros((bins[ROOT].size, bins["text_chars"].size))
    np.add.at(table, (codes[ROOT], codes["text_chars"]), 1.0)
    return ratings / ratings.sum(), table / np.maximum(table.sum(axis=1, keepdims=True), 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extracted", type=Path, required=True, help="an extract output folder")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--shares", type=float, nargs="+", default=[1 / 9, 0.25, 0.5, 0.75, 0.9])
    parser.add_argument("--fits", type=int, default=50, help="fresh-noise fits per share")
    parser.add_argument("--quality-fits", type=int, default=5, help="of those, scored with SDMetrics")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--plot", type=Path, help="draw the 2-star share per fit and share here (PNG)")
    args = parser.parse_args()
    syn, seed = load_section(args.params, "synthesize", SynthesizeParams)
    anon, _ = load_section(args.params, "anonymize", AnonymizeParams)
    ev, _ = load_section(args.params, "evaluate", EvaluateParams)
    train = anonymize_structured_once(args.extracted / "train.parquet", anon)
    real_ratings, real_length = truth(train, syn, seed)
    n = min(ev.samples.structured_records, len(train))
    real_rows = structured_view(train.sample(n=n, random_state=seed))
    print(f"train split: {len(train)} rows, {train['user_id'].nunique()} users; tabular epsilon "
          f"{syn.tabular.epsilon:g}, k={syn.dp.max_reviews_per_user}; real rating shares "
          + " ".join(f"{r}*:{p:.3f}" for r, p in zip(range(1, 6), real_ratings)))

    results = []
    for share in args.shares:
        tab = dataclasses.replace(syn.tabular, root_share=share, length_share=(1 - share) / 8, prompt_prior=0.0)
        tv, length_tv, two_star, quality = [], [], [], []
        for i in tqdm(range(args.fits), desc=f"root_share {share:.3f}", unit="fit"):
            model = fit_tabular(train, tab, dp=syn.dp, seed=seed)
            tv.append(0.5 * float(np.abs(model.root_ - real_ratings).sum()))
            two_star.append(float(model.root_[1]))
            conditional = model.marginals_[(ROOT, "text_chars")]
            length_tv.append(float((real_ratings * 0.5 * np.abs(conditional - real_length).sum(axis=1)).sum()))
            if i < args.quality_fits:
                quality.append(sdmetrics_reports(
                    real_rows, model.sample(n, seed=seed + i),
                    correlation_threshold=ev.fidelity.real_correlation_threshold,
                    association_threshold=ev.fidelity.real_association_threshold)["quality_score"])
        results.append({
            "root_share": share, "fits": args.fits,
            "root_noise_scale": model.privacy_["root_noise_scale"], "table_noise_scale": model.privacy_["noise_scale"],
            "rating_tv_mean": float(np.mean(tv)), "rating_tv_sd": float(np.std(tv)),
            "two_star_p05": float(np.percentile(two_star, 5)), "two_star_p95": float(np.percentile(two_star, 95)),
            "two_star_min": float(np.min(two_star)), "two_star_max": float(np.max(two_star)),
            "length_given_rating_tv_mean": float(np.mean(length_tv)),
            "sdmetrics_quality_mean": float(np.mean(quality)) if quality else None,
            "sdmetrics_quality_fits": len(quality), "two_star_per_fit": two_star,
        })

    print(f"\nreal 2-star share {real_ratings[1]:.3f}; {args.fits} fits per share, epsilon {syn.tabular.epsilon:g} each")
    print(f"{'root_share':>10s} {'root σ':>7s} {'table σ':>7s} {'rating TV':>12s} {'2★ p5–p95':>13s} "
          f"{'2★ min–max':>13s} {'len|rating TV':>13s} {'SDMetrics':>9s}")
    for r in results:
        print(f"{r['root_share']:10.3f} {r['root_noise_scale']:7.1f} {r['table_noise_scale']:7.1f} "
              f"{r['rating_tv_mean']:6.3f} ±{r['rating_tv_sd']:.3f} {r['two_star_p05']:6.3f}–{r['two_star_p95']:.3f} "
              f"{r['two_star_min']:6.3f}–{r['two_star_max']:.3f} {r['length_given_rating_tv_mean']:13.3f} "
              f"{r['sdmetrics_quality_mean'] if r['sdmetrics_quality_mean'] is not None else float('nan'):9.3f}")
    if args.json:
        write_json(args.json, {
            "command": " ".join(sys.argv), "train_rows": len(train), "tabular_epsilon": syn.tabular.epsilon,
            "max_rows_per_unit": syn.dp.max_reviews_per_user, "real_rating_shares": real_ratings.tolist(),
            "results": results})
    if args.plot:
        plot(results, float(real_ratings[1]), args.plot, syn.tabular.epsilon)
    return 0


def anonymize_structured_once(path: Path, anon: AnonymizeParams) -> pd.DataFrame:
    """The train split with anonymize's structured rules, under a throwaway key (pseudonyms only group users)."""
    from stages.anonymize.structured import anonymize_structured

    return anonymize_structured(pd.read_parquet(path), anon.structured, secrets.token_bytes(32))


def plot(results: list[dict], real_two_star: float, path: Path, epsilon: float) -> None:
    """One strip of 2-star shares per root share, the real share as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    rng = np.random.default_rng(0)
    for i, r in enumerate(results):
        values = np.asarray(r["two_star_per_fit"]) * 100
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=10, alpha=0.6, color="tab:blue")
        ax.plot([i - 0.25, i + 0.25], [np.median(values)] * 2, color="black")
    ax.axhline(real_two_star * 100, color="tab:red", linestyle="--", label=f"real ({real_two_star:.1%})")
    ax.set_xticks(range(len(results)), [f"{r['root_share']:.2f}" for r in results])
    ax.set_xlabel("root_share: part of the tabular budget spent on the rating counts (1/9 = even)")
    ax.set_ylabel("2-star share of the DP model (%)")
    ax.set_title(f"The rating counts' noise at one budget (tabular ε {epsilon:g}), {results[0]['fits']} fits each")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
