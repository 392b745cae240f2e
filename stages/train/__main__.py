"""CLI: python -m stages.train [--synthetic FILE] [--anonymized-dir DIR] ...  |  python -m stages.train predict ..."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from stages._cli import run_cli, stage_parser, tracked_stage
from stages.errors import PipelineInputError
from stages.io import atomic_path, file_sha256, is_number, read_table, staging_dir, write_json
from stages.params import as_flat_dict, load_section
from stages.train.core import run_train
from stages.train.params import TrainParams
from stages.train.plots import write_confusion_csvs, write_confusion_png

REGISTERED_NAME = "review-rating-classifier"
LOADER = "stages.train.predict:RatingClassifier"
OUTPUT_SUFFIXES = (".parquet", ".jsonl", ".csv")

DESCRIPTION = """\
Fine-tune a LoRA rating classifier (1-5 stars) and a TF-IDF baseline on each source in
train.sources (synthetic: the synthesize output; real: the anonymized train split) and
score every model, with a majority-class baseline, on the real test split.

outputs:  MODELS_DIR/<source>/ (adapter with head, tokenizer, label map, base reference),
          the metrics file, confusion matrices under PLOTS_DIR, and one registered
          MLflow model version per source (review-rating-classifier, alias candidate).

Rate reviews with a trained model:
  python -m stages.train predict --model models/classifier/synthetic --input FILE [--output FILE]"""


def build_parser() -> argparse.ArgumentParser:
    parser = stage_parser("train", DESCRIPTION)
    parser.add_argument("--synthetic", type=Path, default=Path("data/synthetic/reviews.parquet"), help="default: %(default)s")
    parser.add_argument(
        "--anonymized-dir", type=Path, default=Path("data/anonymized"), help="train/test.parquet; default: %(default)s"
    )
    parser.add_argument(
        "--generator-metrics", type=Path, default=Path("metrics/synthesize.json"),
        help="read the generator's epsilon from here for the registry tags, when it exists; default: %(default)s",
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models/classifier"), help="default: %(default)s")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/train.json"), help="default: %(default)s")
    parser.add_argument("--plots-dir", type=Path, default=Path("metrics/plots/train"), help="default: %(default)s")
    return parser


def build_predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stages.train predict",
        description="Rate reviews (a Parquet, JSONL or CSV file with a 'text' column) with a trained classifier.",
    )
    parser.add_argument("--model", type=Path, required=True, help="a classifier folder, e.g. models/classifier/synthetic")
    parser.add_argument("--input", type=Path, required=True, help="reviews to rate (.parquet, .jsonl, .csv)")
    parser.add_argument("--output", type=Path, help="write predictions here (.parquet, .jsonl, .csv); default: CSV to stdout")
    return parser


# The pyfunc's columns (stages.train.predict.RatingClassifier.predict).
SIGNATURE = (
    {"text": "string", "title": "string?", "review_id": "string?"},
    {"review_id": "string?", "rating_pred": "integer", **{f"prob_{r}": "double" for r in range(1, 6)}},
)
VERSION_DESCRIPTION = {
    "synthetic": "LoRA rating classifier trained on the synthetic dataset {path} (digest {digest}), "
                 "scored on the real test split. A release candidate: the evaluate stage's gate "
                 "writes its verdict here and moves `champion` only when every check holds.",
    "real": "Reference LoRA rating classifier trained on the anonymized real train split {path} "
            "(digest {digest}): the yardstick for the synthetic data's utility ratio. Never a "
            "release candidate; the gate does not promote it.",
}
CONTEXTS = {"real": "training", "synthetic": "training", "test": "testing"}


def input_tables(paths: dict[str, Path], frames: dict) -> list:
    """The train stage's inputs as MLflow datasets: each training source and the real test split."""
    from stages.tracking import InputTable

    return [InputTable(key=k, path=paths[k], frame=frames[k], context=CONTEXTS[k]) for k in paths]


def generator_epsilon(path: Path) -> str:
    """The spent epsilon of the synthetic data, from synthesize's metrics file: `epsilon_total`.

    That is the text generator's and the tabular model's budgets composed, the guarantee
    of the released records a synthetic-trained classifier learns from. 'none
    (non-private)' for a run with `dp_enabled: false`, 'n/a' without the file or the key;
    a target epsilon is never reported as the spent one.
    """
    if not path.is_file():
        return "n/a"
    metrics = json.loads(path.read_text(encoding="utf-8"))
    epsilon = metrics.get("epsilon_total")  # a zero-shot text model adds 0 to the tabular model's
    if is_number(epsilon):
        return str(epsilon)
    return "none (non-private)" if metrics.get("dp_enabled") is False else "n/a"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["predict"]:
        return predict_main(argv[1:])
    args = build_parser().parse_args(argv)
    params, seed = load_section(args.params, "train", TrainParams)
    inputs = {"test": args.anonymized_dir / "test.parquet"}
    if "real" in params.sources:
        inputs["real"] = args.anonymized_dir / "train.parquet"
    if "synthetic" in params.sources:
        inputs["synthetic"] = args.synthetic
    started = time.perf_counter()
    tables = {name: read_table(path) for name, path in inputs.items()}  # fails before any training starts
    hashes = {name: file_sha256(path) for name, path in inputs.items()}
    epsilon = generator_epsilon(args.generator_metrics)

    with tracked_stage("train", args, {**as_flat_dict(params, "train"), "seed": seed}) as run:
        run.log_inputs(input_tables(inputs, tables))
        with staging_dir(args.models_dir) as scratch:
            result = run_train(
                {s: tables[s] for s in params.sources}, tables["test"], params, seed=seed, out_dir=scratch / "models"
            )
            write_confusion_csvs(scratch / "plots" / "confusion", result.test_ratings, result.predictions)
            write_confusion_png(scratch / "plots" / "confusion.png", result.test_ratings, result.predictions)
            _replace_dir(scratch / "models", args.models_dir)
            _replace_dir(scratch / "plots", args.plots_dir)
        metrics = {**result.metrics, "generator_epsilon": epsilon,
                   "seconds.total": round(time.perf_counter() - started, 2)}
        write_json(args.metrics, metrics)
        run.log_metrics(metrics)
        if not args.no_mlflow:
            from stages.tracking import log_registered_model

            run.log_artifact(args.plots_dir / "confusion.png", artifact_path="plots")
            for source in params.sources:
                tags = {
                    "source": source,
                    "generator_epsilon": epsilon if source == "synthetic" else "n/a (real data)",
                    "dataset_hash.train": hashes[source],
                    "dataset_hash.test": hashes["test"],
                    "base_model": params.base_model,
                }
                version = log_registered_model(
                    loader=LOADER, artifacts={"model_dir": args.models_dir / source},
                    registered_name=REGISTERED_NAME, tags=tags, signature=SIGNATURE,
                    description=VERSION_DESCRIPTION[source].format(path=inputs[source], digest=hashes[source][:16]),
                )
                print(f"train: registered {REGISTERED_NAME} version {version} ({source}), alias candidate")
    _print_summary(metrics, params.sources)
    return 0


def _replace_dir(src: Path, dst: Path) -> None:
    """Swap a finished folder into place; the previous one goes only once the new one is complete."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    shutil.move(str(src), str(dst))
    shutil.rmtree(old, ignore_errors=True)


def _print_summary(metrics: dict, sources: Sequence[str]) -> None:
    lines = [f"train: scored on {metrics['test.rows']} real test reviews"]
    for source in sources:
        for model in ("lora", "tfidf", "majority"):
            lines.append(
                f"  {source:9s} {model:8s} accuracy {metrics[f'{source}.{model}.accuracy']:.3f}  "
                f"macro-F1 {metrics[f'{source}.{model}.macro_f1']:.3f}  "
                f"binary {metrics[f'{source}.{model}.binary_accuracy']:.3f}"
            )
        lines.append(
            f"  {source:9s} lora trained {metrics[f'{source}.lora.train_examples']} examples at "
            f"{metrics[f'{source}.lora.train_examples_per_second']:.1f}/s, predicted at "
            f"{metrics[f'{source}.lora.predict_examples_per_second']:.1f}/s"
        )
    for key in ("ratio.lora.accuracy", "ratio.lora.macro_f1", "ratio.tfidf.accuracy", "ratio.tfidf.macro_f1"):
        if key in metrics and metrics[key] is not None:
            lines.append(f"  {key} (synthetic/real) {metrics[key]:.3f}")
    for key in ("lift.lora.macro_f1", "lift.tfidf.macro_f1"):
        if metrics.get(key) is not None:
            lines.append(f"  {key} ((synthetic - majority)/(real - majority)) {metrics[key]:.3f}")
    if metrics.get("train_rows_equal") is False:
        lines.append(f"  note: unequal training rows (synthetic {metrics['synthetic.rows']}, real {metrics['real.rows']}): "
                     "the ratios compare unlike sizes; raise synthesize.generation.n_records")
    print("\n".join(lines))


def predict_main(argv: Sequence[str]) -> int:
    """Rate the reviews in --input with the classifier in --model."""
    from stages.train.predict import RatingClassifier

    args = build_predict_parser().parse_args(argv)
    if args.output is not None and args.output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise PipelineInputError(
            f"--output {args.output}: unsupported file type '{args.output.suffix}'; use one of {list(OUTPUT_SUFFIXES)}."
        )
    frame = read_table(args.input)
    classifier = RatingClassifier.from_dir(args.model)
    predictions = classifier.predict(frame)
    if args.output is None:
        predictions.to_csv(sys.stdout, index=False)
        return 0
    write_table(predictions, args.output)
    print(f"predict: rated {len(predictions)} reviews -> {args.output}", file=sys.stderr)
    return 0


def write_table(frame, path: Path) -> None:
    """Write a DataFrame as Parquet, JSONL or CSV (by suffix), atomically."""
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif suffix == ".jsonl":
            frame.to_json(tmp, orient="records", lines=True)
        else:
            frame.to_csv(tmp, index=False)


if __name__ == "__main__":
    sys.exit(run_cli(main))
