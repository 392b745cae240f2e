"""Benchmark: SDMetrics quality of the DP structured-column model vs the non-private GaussianCopula, side by side.

On the extracted train split of the shared Electronics sample, with anonymize's structured
rules applied (keyed pseudonyms, timestamps to the week, votes capped), as the synthesize
stage sees it. In one run:

  1. SDV GaussianCopula (the non-private option, dp.enabled: false);
  2. the DP marginal model at params.yaml's settings (repeated: its noise differs per fit);
  3. the DP model at other budgets, and with one row per user (k=1), for the README's table.

Each synthetic table has as many rows as evaluate's structured sample and is scored
against a real sample of that size with evaluate's own SDMetrics quality report.

    python -m stages.extract --no-mlflow --reviews ../shared/data/amazon_reviews_2023/Electronics.10k.jsonl.gz \\
        --meta ../shared/data/amazon_reviews_2023/multi_category.2.7k.meta.jsonl.gz --out-dir /tmp/bench/extracted \\
        --rejects /tmp/bench/extracted/rejects.jsonl --metrics /tmp/bench/extract.json
    python benchmarks/bench_tabular.py --extracted /tmp/bench/extracted
"""

from __future__ import annotations

import argparse
import dataclasses
import secrets
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.anonymize.params import AnonymizeParams  # noqa: E402
from stages.anonymize.structured import anonymize_structured  # noqa: E402
from stages.evaluate.params import EvaluateParams  # noqa: E402
from stages.evaluate.structured import sdmetrics_reports, structured_view  # noqa: E402
from stages.params import load_section  # noqa: E402
from stages.synthesize.params import SynthesizeParams  # noqa: E402
from stages.synthesize.tabular import fit_sdv, fit_tabular  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extracted", type=Path, required=True, help="an extract output folder")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--repeats", type=int, default=3, help="fits of the default DP model (fresh noise each)")
    args = parser.parse_args()
    syn, seed = load_section(args.params, "synthesize", SynthesizeParams)
    anon, _ = load_section(args.params, "anonymize", AnonymizeParams)
    ev, _ = load_section(args.params, "evaluate", EvaluateParams)
    train = anonymize_structured(pd.read_parquet(args.extracted / "train.parquet"), anon.structured, secrets.token_bytes(32))
    n = min(ev.samples.structured_records, len(train))
    real = structured_view(train.sample(n=n, random_state=seed))
    print(f"train split: {len(train)} rows, {train['user_id'].nunique()} users; scoring {n} rows per table")

    def score(model) -> dict:
        rows = model.sample(n, seed=seed)
        return sdmetrics_reports(real, rows, correlation_threshold=ev.fidelity.real_correlation_threshold,
                                 association_threshold=ev.fidelity.real_association_threshold)

    def timed_fit(fit):
        started = time.perf_counter()
        model = fit()
        return model, time.perf_counter() - started

    results = []
    gc, secs = timed_fit(lambda: fit_sdv(train, syn.tabular, seed=seed))
    results.append(("GaussianCopula (non-private)", score(gc), secs))
    tab = syn.tabular
    for i in range(args.repeats):
        model, secs = timed_fit(lambda: fit_tabular(train, tab, dp=syn.dp, seed=seed + i))
        results.append((f"DP eps={tab.epsilon:g} k={syn.dp.max_reviews_per_user} (params.yaml) #{i + 1}",
                        score(model), secs))
    k = syn.dp.max_reviews_per_user
    for eps, rows in ((0.5, k), (4.0, k), (tab.epsilon, 1)):
        variant, dp = dataclasses.replace(tab, epsilon=eps), dataclasses.replace(syn.dp, max_reviews_per_user=rows)
        model, secs = timed_fit(lambda: fit_tabular(train, variant, dp=dp, seed=seed))
        results.append((f"DP eps={eps:g} k={rows}", score(model), secs))

    base = results[0][1]["quality_score"]
    print(f"\n{'model':44s} {'quality':>8s} {'shapes':>8s} {'pairs':>8s} {'÷ GC':>6s} {'fit s':>6s}")
    for name, s, secs in results:
        print(f"{name:44s} {s['quality_score']:8.3f} {s['column_shapes']:8.3f} {s['column_pair_trends']:8.3f} "
              f"{s['quality_score'] / base:6.3f} {secs:6.1f}")
    defaults = [s["quality_score"] for name, s, _ in results if "(params.yaml)" in name]
    ratio = statistics.mean(defaults) / base
    print(f"\nDP (params.yaml) mean quality {statistics.mean(defaults):.3f} = {ratio:.3f} x GaussianCopula's {base:.3f} "
          f"({'meets' if ratio >= 0.8 else 'MISSES'} the 0.80 target)")
    return 0 if ratio >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
