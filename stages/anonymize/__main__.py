"""CLI: python -m stages.anonymize [--input FILE --output FILE] [--in-dir DIR --out-dir DIR] ..."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stages._cli import run_cli, stage_parser, tracked_stage
from stages.anonymize import AnonymizeParams, run_anonymize
from stages.anonymize.keys import load_key
from stages.anonymize.labelled import LABELLED_FORMAT
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
outputs:  OUT_DIR/{train,val,test}.parquet and OUT_DIR/quarantine.jsonl (records a pass failed on, text
          blank) and --metrics (default metrics/anonymize.json), recorded in MLflow unless --no-mlflow;
          or --output FILE (same format as its suffix), with its metrics beside it (FILE's stem +
          .metrics.json, or --metrics) and quarantined records in FILE's stem + .quarantine.jsonl;
          a file run leaves the pipeline's metrics and MLflow store alone unless --mlflow
scoring:  --score-labelled FILE scores the analyzer on your own labelled JSONL and writes only the scores
key:      $SYNTHGUARD_PSEUDONYM_KEY, else the key file (created on first use; never printed)"""


def build_parser():
    parser = stage_parser("anonymize", DESCRIPTION)
    parser.add_argument("--input", type=Path, help="anonymize one file instead of the splits")
    parser.add_argument("--output", type=Path, help="where --input's anonymized copy goes")
    parser.add_argument("--in-dir", type=Path, default=Path("data/extracted"), help="default: %(default)s")
    parser.add_argument("--out-dir", type=Path, default=Path("data/anonymized"), help="default: %(default)s")
    parser.add_argument("--metrics", type=Path,
                        help="default: metrics/anonymize.json; with --output, FILE's stem + .metrics.json beside it")
    parser.add_argument("--mlflow", action="store_true", help="with --input/--output: record an MLflow run too")
    parser.add_argument("--key-file", type=Path, help="default: .pseudonym_key in the project root")
    parser.add_argument("--score-labelled", type=Path, metavar="FILE",
                        help="score the analyzer on a labelled JSONL file (format below) and write the scores only")
    parser.epilog = "labelled JSONL for --score-labelled:\n" + LABELLED_FORMAT
    return parser


def beside(output: Path, suffix: str) -> Path:
    """`output`'s stem + `suffix`, next to it (clean.csv -> clean.metrics.json)."""
    return output.with_name(output.stem + suffix)


def write_quarantine(frame: pd.DataFrame, path: Path) -> None:
    """The quarantined records (text columns already blank) as JSONL, atomically."""
    with atomic_path(path) as tmp:
        if len(frame):
            frame.to_json(tmp, orient="records", lines=True, date_format="iso", force_ascii=False)
        else:
            tmp.write_text("")


def score_labelled(args, params: AnonymizeParams) -> int:
    """--score-labelled: the analyzer's scores on the user's labelled file, printed and written to --metrics if given."""
    from stages.anonymize.benchmark import leak_estimate, score_with
    from stages.anonymize.core import make_analyzer
    from stages.anonymize.labelled import load_labelled

    cases = load_labelled(args.score_labelled, params.entities)
    scores = score_with(make_analyzer(params), cases)
    scores["leak_estimate"] = leak_estimate(scores)
    if args.metrics:
        write_json(args.metrics, scores)
    print(json.dumps(scores, indent=2, sort_keys=True))
    return 0


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
    if args.score_labelled:
        return score_labelled(args, params)
    key = load_key(args.key_file)
    if args.input:
        # an ad-hoc file run: its metrics go beside the output, MLflow only when asked
        args.metrics = args.metrics or beside(args.output, ".metrics.json")
        args.no_mlflow = not args.mlflow
        sources = {args.input.name: args.input}
        hashes = {"input": file_sha256(args.input)}
    else:
        args.metrics = args.metrics or Path("metrics/anonymize.json")
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
        if ray_info:  # the same passes and output, in Ray Data actors (stages.anonymize.ray_engine)
            from stages.anonymize.ray_engine import run_anonymize_ray

            result = run_anonymize_ray(sources, params, key=key, seed=seed)
        else:
            result = run_anonymize(frames, params, key=key, seed=seed)
        if args.input:
            write_table(result.frames[args.input.name], args.output)
            if len(result.quarantine):
                write_quarantine(result.quarantine, beside(args.output, ".quarantine.jsonl"))
        else:
            with staging_dir(args.out_dir) as scratch:
                moves = {}
                for split, frame in result.frames.items():
                    staged = scratch / f"{split}.parquet"
                    table = pa.Table.from_pandas(frame[list(RECORD_SCHEMA.names)], schema=RECORD_SCHEMA, preserve_index=False)
                    pq.write_table(table, staged)
                    moves[staged] = args.out_dir / f"{split}.parquet"
                write_quarantine(result.quarantine, scratch / "quarantine.jsonl")
                moves[scratch / "quarantine.jsonl"] = args.out_dir / "quarantine.jsonl"
                commit_files(moves)
        write_json(args.metrics, result.metrics)
        run.set_tags({f"input_hash.{name}": digest for name, digest in hashes.items()})
        run.log_metrics(result.metrics)  # counts and scores only
    m = result.metrics
    leak = m.get("leak_estimate")
    print(
        f"anonymize: {m['rows']} rows, {m['records_touched']} touched, {m['quarantined_records']} quarantined, "
        f"entities {m['entities_found']}, {m['reviews_per_second']} reviews/s; detected values left in the output "
        f"{m['detected_value_reoccurrences']}; "
        + (f"estimated leak: {leak['pii_missed_share']:.2%} of {leak['benchmark_cases']} labelled PII values missed "
           f"(person {leak.get('person_missed_share', 0):.2%} of {leak.get('person_cases', 0)})" if leak
           else "no leak estimate (the benchmark runs on the pipeline's splits; --score-labelled FILE scores yours)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
