"""CLI: python -m stages.anonymize [--input FILE --output FILE] [--in-dir DIR --out-dir DIR] ..."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stages._cli import run_cli, stage_parser, tracked_stage
from stages.anonymize import AnonymizeParams, run_anonymize
from stages.anonymize.keys import load_key
from stages.errors import PipelineInputError
from stages.io import atomic_path, commit_files, file_sha256, read_table, staging_dir, write_json
from stages.params import as_flat_dict, load_section
from stages.ray_cluster import engine_cluster
from stages.schema import RECORD_SCHEMA, SPLITS

DESCRIPTION = """\
Remove PII from reviews: names, e-mails, phones, street addresses, order and card numbers,
URLs and IPs in the free text (Presidio + spaCy, keyed Faker surrogates), the user id
(keyed HMAC-SHA256) and the exact timestamp (generalised), and score the analyzer on a
labelled PII benchmark built from real sentences of the input.

inputs:   IN_DIR/{train,val,test}.parquet, or --input FILE (Parquet, JSONL or CSV with a `text` column)
outputs:  OUT_DIR/{train,val,test}.parquet, or --output FILE (same format as its suffix); the metrics file
key:      $SYNTHGUARD_PSEUDONYM_KEY, else the key file (created on first use; never printed)"""


def build_parser():
    parser = stage_parser("anonymize", DESCRIPTION)
    parser.add_argument("--input", type=Path, help="anonymize one file instead of the splits")
    parser.add_argument("--output", type=Path, help="where --input's anonymized copy goes")
    parser.add_argument("--in-dir", type=Path, default=Path("data/extracted"), help="default: %(default)s")
    parser.add_argument("--out-dir", type=Path, default=Path("data/anonymized"), help="default: %(default)s")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/anonymize.json"), help="default: %(default)s")
    parser.add_argument("--key-file", type=Path, help="default: .pseudonym_key in the project root")
    return parser


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a table in the format its suffix names, atomically."""
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif suffix in (".jsonl", ".json"):
            frame.to_json(tmp, orient="records", lines=suffix == ".jsonl", date_format="iso", force_ascii=False)
        elif suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            raise PipelineInputError(f"{path}: unsupported output type '{suffix}'; use .parquet, .jsonl or .csv")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.input is None) != (args.output is None):
        raise PipelineInputError("--input and --output go together; give both, or neither to anonymize the splits")
    params, seed = load_section(args.params, "anonymize", AnonymizeParams)
    key = load_key(args.key_file)
    if args.input:
        sources = {args.input.name: args.input}
        hashes = {"input": file_sha256(args.input)}
    else:
        sources = {split: args.in_dir / f"{split}.parquet" for split in SPLITS}
        missing = [str(p) for p in sources.values() if not p.is_file()]
        if missing:
            raise PipelineInputError(f"missing input split(s) {missing}; run the extract stage first (dvc repro extract)")
        hashes = {split: file_sha256(path) for split, path in sources.items()}
    # the ray engine reads the files itself, on the cluster
    frames = None if params.engine == "ray" else {name: read_table(path) for name, path in sources.items()}
    cluster = engine_cluster(params.engine, params.ray, param="anonymize.ray.address")
    with cluster as ray_info, tracked_stage("anonymize", args, {**as_flat_dict(params, "anonymize"), "seed": seed}) as run:
        run.set_tags(ray_info.tags() if ray_info else {"engine": "local"})
        if ray_info:  # the same analysis and output, in Ray Data actors (stages.anonymize.ray_engine)
            from stages.anonymize.ray_engine import run_anonymize_ray

            result = run_anonymize_ray(sources, params, key=key, seed=seed)
        else:
            result = run_anonymize(frames, params, key=key, seed=seed)
        if args.input:
            write_table(result.frames[args.input.name], args.output)
        else:
            with staging_dir(args.out_dir) as scratch:
                moves = {}
                for split, frame in result.frames.items():
                    staged = scratch / f"{split}.parquet"
                    table = pa.Table.from_pandas(frame[list(RECORD_SCHEMA.names)], schema=RECORD_SCHEMA, preserve_index=False)
                    pq.write_table(table, staged)
                    moves[staged] = args.out_dir / f"{split}.parquet"
                commit_files(moves)
        write_json(args.metrics, result.metrics)
        run.set_tags({f"input_hash.{name}": digest for name, digest in hashes.items()})
        run.log_metrics(result.metrics)  # counts and scores only
    m = result.metrics
    bench = m.get("benchmark", {})
    print(
        f"anonymize: {m['rows']} rows, {m['records_touched']} touched, entities {m['entities_found']}, "
        f"leaks {m['leak_count']}, {m['reviews_per_second']} reviews/s"
        + (f"; benchmark precision {bench['precision']}, person recall {bench.get('recall_person')}" if bench else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
