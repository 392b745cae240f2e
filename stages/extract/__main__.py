"""CLI: python -m stages.extract [--reviews SRC] [--meta SRC] [--out-dir DIR] ..."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from stages._cli import run_cli, stage_parser, tracked_stage
from stages.extract import ExtractParams, run_extract
from stages.io import write_json
from stages.params import as_flat_dict, load_section

DESCRIPTION = """\
Stream Amazon Reviews 2023 raw reviews (JSONL or JSONL.gz, local path or http(s) URL)
and optionally the product metadata, and write clean, user-split Parquet files.

inputs:   extract.reviews and extract.meta in params.yaml (or --reviews / --meta)
outputs:  OUT_DIR/{train,val,test}.parquet, the rejects file, the metrics file
Every line read is kept, rejected (with its reason, in the rejects file), a duplicate,
or filtered, and the metrics show each count."""


def build_parser():
    parser = stage_parser("extract", DESCRIPTION)
    parser.add_argument("--reviews", help="override extract.reviews: path or URL of the raw reviews")
    meta = parser.add_mutually_exclusive_group()
    meta.add_argument("--meta", help="override extract.meta: path or URL of the product metadata")
    meta.add_argument("--no-meta", action="store_true", help="override extract.meta with null: no metadata join")
    parser.add_argument("--out-dir", type=Path, default=Path("data/extracted"), help="default: %(default)s")
    parser.add_argument(
        "--rejects", type=Path, default=Path("data/extracted/rejects.jsonl"), help="default: %(default)s"
    )
    parser.add_argument("--metrics", type=Path, default=Path("metrics/extract.json"), help="default: %(default)s")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    params, seed = load_section(args.params, "extract", ExtractParams)
    overrides = {k: v for k, v in (("reviews", args.reviews), ("meta", args.meta)) if v}
    if args.no_meta:
        overrides["meta"] = None
    params = dataclasses.replace(params, **overrides)
    with tracked_stage("extract", args, {**as_flat_dict(params, "extract"), "seed": seed}) as run:
        result = run_extract(params, seed=seed, out_dir=args.out_dir, rejects_path=args.rejects)
        write_json(args.metrics, result.metrics)
        run.set_tags({f"input_hash.{name}": digest for name, digest in result.input_hashes.items()})
        run.log_metrics(result.metrics)
    m = result.metrics
    print(
        f"extract: read {m['rows_read']}, kept {m['rows_kept']} (train {m['splits']['train']}, "
        f"val {m['splits']['val']}, test {m['splits']['test']}), rejected {m['rows_rejected']}, "
        f"duplicates {m['rows_duplicate']}, filtered {m['rows_filtered']} "
        f"in {m['seconds']:.1f}s ({m['rows_per_second']:.0f} rows/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
