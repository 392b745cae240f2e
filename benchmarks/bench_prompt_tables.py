"""Benchmark: how steady the DP tabular model keeps what the prompt reads, side by side in one run.

Each record's prompt asks for a rating, a length (short, medium or long: prompts.LENGTH_BUCKETS)
and a category, drawn from the DP tabular model's P(text length | rating) and P(category |
rating). A 2-, 3- or 4-star row of those tables holds 125 to 399 of the shared sample's
user-bounded rows, against Gaussian noise of scale 78.5 per cell at the old even split. What
the model did with that noise decided what a release's rarer ratings were written about: one
release asked for "Prime Video" 2-star reviews (the sample has no categories at all), another
for short 4-star ones. The levers, none of which changes the tabular epsilon:

  - measurement: `text_chars_edges` at the prompt's three buckets instead of 11 finer bins;
    `length_share`, the length table's part of the budget (the other 7 tables pay);
  - post-processing of the two prompt tables, applied to the same noisy measurement:
    the old rule (cells below 2 noise deviations zeroed, as in every other table) against
    the column rule (a child bin kept when its total over ratings clears 3.5 deviations,
    cells clipped, each rating's row shrunk towards the pooled mix by `prompt_prior`
    deviations per cell), at priors 0, params.yaml's and twice that.

On the extracted train split of the shared Electronics sample, with anonymize's structured
rules and the stage's user bounding, every measurement is drawn `--fits` times with fresh
OpenDP noise. Reported per arm and rating: the total variation distance between the model's
P(length ask | rating), and P(category | rating), and the bounded rows' own (mean and 95th
percentile over fits); and SDMetrics' quality score of 2,000 sampled rows against 2,000
real ones on the first `--quality-fits` fits (evaluate's own report).

    python benchmarks/bench_prompt_tables.py --extracted data/extracted --json benchmarks/results/prompt_tables.json
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_rating_budget import anonymize_structured_once  # noqa: E402
from stages.anonymize.params import AnonymizeParams  # noqa: E402
from stages.evaluate.params import EvaluateParams  # noqa: E402
from stages.evaluate.structured import sdmetrics_reports, structured_view  # noqa: E402
from stages.io import write_json  # noqa: E402
from stages.params import load_section  # noqa: E402
from stages.synthesize.dp_tabular import (  # noqa: E402
    CATEGORY_EDGE, LENGTH_EDGE, ROOT, column_bins, discretise, measure, postprocess,
)
from stages.synthesize.params import SynthesizeParams  # noqa: E402
from stages.synthesize.prompts import LENGTH_BUCKETS, length_bucket  # noqa: E402
from stages.synthesize.tabular import tabular_frame, unit_bounded  # noqa: E402

FINE_EDGES = (10, 30, 60, 100, 160, 250, 400, 650, 1000, 1600, 2500, 5000)  # the bins before the change
ASKS = [label for _, label in LENGTH_BUCKETS]


def ask_matrix(edges) -> np.ndarray:
    """(bins x asks): which length ask each text_chars bin's values get (every edge list here splits at 100 and 400)."""
    matrix = np.zeros((len(edges) - 1, len(ASKS)))
    for j, low in enumerate(edges[:-1]):
        matrix[j, ASKS.index(length_bucket(low))] = 1.0
    return matrix


def rowwise(counts: np.ndarray) -> np.ndarray:
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extracted", type=Path, required=True, help="an extract output folder")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--fits", type=int, default=50, help="fresh-noise measurements per arm")
    parser.add_argument("--quality-fits", type=int, default=3, help="of those, scored with SDMetrics")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    syn, seed = load_section(args.params, "synthesize", SynthesizeParams)
    anon, _ = load_section(args.params, "anonymize", AnonymizeParams)
    ev, _ = load_section(args.params, "evaluate", EvaluateParams)
    tab = syn.tabular
    train = anonymize_structured_once(args.extracted / "train.parquet", anon)
    rows = tabular_frame(unit_bounded(train, syn.dp, seed))
    bins = column_bins(tab.domain)
    codes = discretise(rows, bins)
    per_rating = np.bincount(codes[ROOT], minlength=5)
    real_asks = np.zeros((5, len(ASKS)))
    np.add.at(real_asks, (codes[ROOT], [ASKS.index(length_bucket(c)) for c in rows["text_chars"]]), 1.0)
    real_asks = rowwise(real_asks)
    real_category = np.zeros((5, bins["main_category"].size))
    np.add.at(real_category, (codes[ROOT], codes["main_category"]), 1.0)
    real_category = rowwise(real_category)
    n = min(ev.samples.structured_records, len(train))
    real_rows = structured_view(train.sample(n=n, random_state=seed))
    print(f"bounded train rows per rating {per_rating.tolist()}; rows without a category "
          f"{(codes['main_category'] == bins['main_category'].size - 1).mean():.1%}")

    even = (1 - tab.root_share) / 8  # the length table at weight 1, as the other two-way tables
    measurements = [
        ("11 bins, weight 1", dataclasses.replace(tab, domain=dataclasses.replace(tab.domain, text_chars_edges=FINE_EDGES),
                                                  length_share=even)),
        ("3 bins, weight 1", dataclasses.replace(tab, length_share=even)),
        (f"3 bins, share {tab.length_share:g}", tab),
    ]
    rules = [("cells pruned (old)", None), ("columns, prior 0", 0.0),
             (f"columns, prior {tab.prompt_prior:g}", tab.prompt_prior), (f"columns, prior {2 * tab.prompt_prior:g}",
                                                                         2 * tab.prompt_prior)]
    results = []
    for m_label, m_tab in measurements:
        to_ask = ask_matrix(m_tab.domain.text_chars_edges)
        tv = {rule: {"length": [], "category": [], "quality": []} for rule, _ in rules}
        for i in tqdm(range(args.fits), desc=m_label, unit="fit"):
            noisy = measure(rows, m_tab.domain, epsilon=tab.epsilon, delta=tab.delta,
                            max_rows_per_unit=syn.dp.max_reviews_per_user, root_share=m_tab.root_share,
                            length_share=m_tab.length_share)
            for rule, prior in rules:
                model = postprocess(noisy, prompt_prior=prior)
                tv[rule]["length"].append(0.5 * np.abs(model.marginals_[LENGTH_EDGE] @ to_ask - real_asks).sum(axis=1))
                tv[rule]["category"].append(0.5 * np.abs(model.marginals_[CATEGORY_EDGE] - real_category).sum(axis=1))
                if i < args.quality_fits:
                    tv[rule]["quality"].append(sdmetrics_reports(
                        real_rows, model.sample(n, seed=seed + i),
                        correlation_threshold=ev.fidelity.real_correlation_threshold,
                        association_threshold=ev.fidelity.real_association_threshold)["quality_score"])
        for rule, prior in rules:
            length, category = np.asarray(tv[rule]["length"]), np.asarray(tv[rule]["category"])
            results.append({
                "measurement": m_label, "rule": rule, "prompt_prior": prior, "fits": args.fits,
                "text_chars_edges": list(m_tab.domain.text_chars_edges), "length_share": m_tab.length_share,
                "length_noise_scale": noisy.privacy["length_noise_scale"],
                "table_noise_scale": noisy.privacy["noise_scale"],
                "length_tv_mean": length.mean(axis=0).tolist(), "length_tv_p95": np.percentile(length, 95, axis=0).tolist(),
                "category_tv_mean": category.mean(axis=0).tolist(),
                "category_tv_p95": np.percentile(category, 95, axis=0).tolist(),
                "sdmetrics_quality_mean": float(np.mean(tv[rule]["quality"])) if tv[rule]["quality"] else None,
            })

    print(f"\nTV from the bounded rows' own, mean/p95 over {args.fits} measurements per arm "
          f"(tabular epsilon {tab.epsilon:g} everywhere)")
    header = " ".join(f"{r}★ length   {r}★ categ." for r in range(1, 6))
    print(f"{'measurement':18s} {'rule':22s} {'len σ':>6s} {'σ':>6s} {header} {'SDMetrics':>9s}")
    for r in results:
        cells = " ".join(f"{lm:4.2f}/{lp:4.2f} {cm:4.2f}/{cp:4.2f}" for lm, lp, cm, cp in zip(
            r["length_tv_mean"], r["length_tv_p95"], r["category_tv_mean"], r["category_tv_p95"]))
        q = r["sdmetrics_quality_mean"]
        print(f"{r['measurement']:18s} {r['rule']:22s} {r['length_noise_scale']:6.1f} {r['table_noise_scale']:6.1f} "
              f"{cells} {q if q is not None else float('nan'):9.3f}")
    if args.json:
        write_json(args.json, {"command": " ".join(sys.argv), "bounded_rows_per_rating": per_rating.tolist(),
                               "real_ask_given_rating": real_asks.tolist(), "asks": ASKS, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
