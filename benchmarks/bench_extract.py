"""Extract benchmark: rows/s on one core and peak RSS, on the Electronics sample replicated.

    python benchmarks/bench_extract.py [--sizes 100000 1000000] [--sample-dir DIR]

Each size runs in a fresh subprocess pinned to one core, so its peak RSS (ru_maxrss)
is its own. Copy k of the sample gets user ids suffixed with k and timestamps shifted
by k ms, so the copies are distinct reviews rather than duplicates. Goals (issue 2):
>= 50,000 rows/s on one core for .jsonl.gz, and peak RSS at 1M rows <= 1.3x that at 100k.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"


def replicate(sample: Path, rows: int) -> Path:
    """Write `rows` distinct reviews built from the sample to benchmarks/out/ (cached)."""
    target = OUT / f"electronics.{rows}.jsonl.gz"
    if target.is_file():
        return target
    lines = gzip.decompress(sample.read_bytes()).splitlines()
    records = [json.loads(line) for line in lines]
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as fh:
        for i in range(rows):
            k, record = divmod(i, len(records))
            record = dict(records[record])
            record["user_id"] = f"{record['user_id']}-{k}"
            record["timestamp"] += k
            fh.write(json.dumps(record) + "\n")
    tmp.rename(target)
    return target


def child(source: str) -> None:
    """Run extract once on one core and print rows/s and peak RSS as JSON."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    sys.path.insert(0, str(ROOT))
    from stages.extract import ExtractParams, SplitParams, run_extract

    params = ExtractParams(
        reviews=source, meta=None, max_rows=None, chunk_rows=50_000, min_text_chars=10, categories=(),
        max_reject_rate=0.05, split=SplitParams(train=0.8, val=0.1, test=0.1),
    )
    out = OUT / "extracted"
    started = time.perf_counter()
    metrics = run_extract(params, seed=42, out_dir=out, rejects_path=out / "rejects.jsonl").metrics
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": metrics["rows_read"], "kept": metrics["rows_kept"], "seconds": seconds,
                      "rows_per_s": metrics["rows_read"] / seconds, "peak_rss_mb": peak_mb}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--sample-dir", type=Path, default=Path(os.environ.get(
        "SYNTHGUARD_SAMPLE_DIR", ROOT.parent / "shared" / "data" / "amazon_reviews_2023")))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    sample = args.sample_dir / "Electronics.10k.jsonl.gz"
    results = []
    for rows in args.sizes:
        source = replicate(sample, rows)
        done = subprocess.run([sys.executable, __file__, "--child", str(source)], capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'rows':>10} {'kept':>10} {'seconds':>8} {'rows/s (1 core)':>16} {'peak RSS MB':>12}")
    for r in results:
        print(f"{r['rows']:>10,} {r['kept']:>10,} {r['seconds']:>8.1f} {r['rows_per_s']:>16,.0f} {r['peak_rss_mb']:>12.0f}")
    if len(results) >= 2:
        print(f"peak RSS ratio {results[-1]['rows']:,} / {results[0]['rows']:,} rows: "
              f"{results[-1]['peak_rss_mb'] / results[0]['peak_rss_mb']:.2f}x (goal <= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
