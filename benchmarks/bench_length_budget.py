"""Benchmark: how the DP tabular model steadies each rating's length mix, side by side in one run.

The generator's prompt asks for a short, medium or long review (prompts.LENGTH_BUCKETS:
under 100, under 400, else), drawn per record from the DP tabular model's P(text length
| rating). A 2-, 3- or 4-star row of that table holds 138 to 388 of the sample's bounded
rows; at the even budget split its noise (scale ~73) swamps them, and one release asked
mostly for short 4-star reviews while another asked mostly for long ones (README). Three
levers, none of which changes the tabular epsilon:

  - bins: `text_chars_edges` at the prompt's three buckets instead of 11 finer bins
    (nothing finer is read), so each cell holds more rows against the same noise;
  - `length_share`: the part of the tabular budget spent on that table (the root keeps
    `root_share`; the other 7 tables share the rest);
  - `length_prior`: each row shrunk towards the pooled length mix by a prior of that
    many noise standard deviations per cell (post-processing).

On the extracted train split of the shared Electronics sample, with anonymize's
structured rules and the stage's user bounding, every arm is fitted `--fits` times with
fresh OpenDP noise. Reported per arm: the total variation distance between the model's
P(length ask | rating) and the bounded rows' own, mean and 95th percentile per rating;
the other tables' noise scale; SDMetrics' quality score of 2,000 sampled rows against
2,000 real ones on the first `--quality-fits` fits (evaluate's own report): what the rest
of the structured columns pay.

    python -m stages.extract --no-mlflow --no-meta --reviews ../shared/data/amazon_reviews_2023/Electronics.10k.jsonl.gz \\
        --out-dir /tmp/bench/extracted --rejects /tmp/bench/extracted/rejects.jsonl --metrics /tmp/bench/extract.json
    python benchmarks/bench_length_budget.py --extracted /tmp/bench/extracted --json benchmarks/results/length_budget.json
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
from stages.synthesize.dp_tabular import LENGTH_EDGE  # noqa: E402
from stages.synthesize.params import SynthesizeParams  # noqa: E402
from stages.synthesize.prompts import LENGTH_BUCKETS, length_bucket  # noqa: E402
from stages.synthesize.tabular import fit_tabular, tabular_frame, unit_bounded  # noqa: E402

FINE_EDGES = (10, 30, 60, 100, 160, 250, 400, 650, 1000, 1600, 2500, 5000)  # the bins before this benchmark
ASKS = [label for _, label in LENGTH_BUCKETS]


def ask_matrix(edges) -> np.ndarray:
    """(bins x asks): which length ask each text_chars bin's values get (every edge list here splits at 100 and 400)."""
    matrix = np.zeros((len(edges) - 1, len(ASKS)))
    for j, low in enumerate(edges[:-1]):
        matrix[j, ASKS.index(length_bucket(low))] = 1.0
    return matrix


def arms(tab, root_share: float) -> list[tuple[str, object]]:
    """(label, TabularParams): the bins, the share and the prior, one lever at a time."""
    even = (1 - root_share) / 8  # the length table at weight 1, as the other two-way tables
    fine = dataclasses.replace(tab.domain, text_chars_edges=FINE_EDGES)
    return [
        ("11 bins, weight 1, no prior", dataclasses.replace(tab, domain=fine, length_share=even, length_prior=0.0)),
        ("3 bins, weight 1, no prior", dataclasses.replace(tab, length_share=even, length_prior=0.0)),
        (f"3 bins, share {tab.length_share:g}, no prior", dataclasses.replace(tab, length_prior=0.0)),
        (f"3 bins, share {tab.length_share:g}, prior {tab.length_prior:g} (params.yaml)", tab),
        (f"3 bins, share {tab.length_share:g}, prior {2 * tab.length_prior:g}",
         dataclasses.replace(tab, length_prior=2 * tab.length_prior)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extracted", type=Path, required=True, help="an extract output folder")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--fits", type=int, default=50, help="fresh-noise fits per arm")
    parser.add_argument("--quality-fits", type=int, default=3, help="of those, scored with SDMetrics")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    syn, seed = load_section(args.params, "synthesize", SynthesizeParams)
    anon, _ = load_section(args.params, "anonymize", AnonymizeParams)
    ev, _ = load_section(args.params, "evaluate", EvaluateParams)
    if tuple(syn.tabular.domain.text_chars_edges) != (10, 100, 400, 5000):
        raise SystemExit("this benchmark compares against the prompt's three buckets: params.yaml's "
                         "text_chars_edges must be [10, 100, 400, 5000]")
    train = anonymize_structured_once(args.extracted / "train.parquet", anon)
    rows = tabular_frame(unit_bounded(train, syn.dp, seed))
    real = np.zeros((5, len(ASKS)))
    np.add.at(real, (rows["rating"].to_numpy() - 1, [ASKS.index(length_bucket(c)) for c in rows["text_chars"]]), 1.0)
    counts = real.sum(axis=1)
    real = real / counts[:, None]
    n = min(ev.samples.structured_records, len(train))
    real_rows = structured_view(train.sample(n=n, random_state=seed))
    print(f"bounded train rows per rating {counts.astype(int).tolist()}; real P(ask | rating):")
    for r in range(5):
        print(f"  {r + 1}*  " + "  ".join(f"{a} {p:.2f}" for a, p in zip(ASKS, real[r])))

    results = []
    for label, tab in arms(syn.tabular, syn.tabular.root_share):
        to_ask = ask_matrix(tab.domain.text_chars_edges)
        tv, quality = [], []
        for i in tqdm(range(args.fits), desc=label, unit="fit"):
            model = fit_tabular(train, tab, dp=syn.dp, seed=seed)
            asked = model.marginals_[LENGTH_EDGE] @ to_ask
            tv.append(0.5 * np.abs(asked - real).sum(axis=1))
            if i < args.quality_fits:
                quality.append(sdmetrics_reports(
                    real_rows, model.sample(n, seed=seed + i),
                    correlation_threshold=ev.fidelity.real_correlation_threshold,
                    association_threshold=ev.fidelity.real_association_threshold)["quality_score"])
        tv = np.asarray(tv)
        results.append({
            "arm": label, "text_chars_edges": list(tab.domain.text_chars_edges), "length_share": tab.length_share,
            "length_prior": tab.length_prior, "fits": args.fits,
            "length_noise_scale": model.privacy_["length_noise_scale"], "table_noise_scale": model.privacy_["noise_scale"],
            "ask_tv_mean": tv.mean(axis=0).tolist(), "ask_tv_p95": np.percentile(tv, 95, axis=0).tolist(),
            "ask_tv_weighted_mean": float((tv @ (counts / counts.sum())).mean()),
            "sdmetrics_quality_mean": float(np.mean(quality)) if quality else None,
        })

    print(f"\nTV of P(length ask | rating) from the bounded rows' own, {args.fits} fits per arm "
          f"(tabular epsilon {syn.tabular.epsilon:g} in every arm)")
    print(f"{'arm':40s} {'len σ':>6s} {'other σ':>7s} " + " ".join(f"{r}★ mean/p95" for r in range(1, 6))
          + f" {'SDMetrics':>9s}")
    for r in results:
        cells = " ".join(f"{m:5.2f}/{p:4.2f}" for m, p in zip(r["ask_tv_mean"], r["ask_tv_p95"]))
        q = r["sdmetrics_quality_mean"]
        print(f"{r['arm']:40s} {r['length_noise_scale']:6.1f} {r['table_noise_scale']:7.1f} {cells} "
              f"{q if q is not None else float('nan'):9.3f}")
    if args.json:
        write_json(args.json, {"command": " ".join(sys.argv), "bounded_rows_per_rating": counts.tolist(),
                               "real_ask_given_rating": real.tolist(), "asks": ASKS, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
