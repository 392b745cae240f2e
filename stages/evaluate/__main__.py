"""CLI: python -m stages.evaluate [paths...] | python -m stages.evaluate frontier [--output PNG]"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from stages._cli import run_cli, stage_parser, tracked_stage
from stages.errors import PipelineInputError
from stages.io import atomic_path, read_table, write_json
from stages.params import as_flat_dict, load_section

DESCRIPTION = """\
Measure the run's synthetic data: fidelity (SDMetrics, embedding distances, MAUVE, text
quality), privacy (DCR, membership inference on the generator, canaries and their
exposure, Anonymeter, residual PII, the generator's epsilon) and utility (the train
stage's scores, feature-importance consistency); apply the privacy gate and, when it
holds, move the registry alias `champion` to this run's generator and classifier.

outputs:  the metrics file, DVC plot data under PLOTS_DIR, the HTML report
`python -m stages.evaluate frontier` draws the privacy–utility frontier across all
evaluate runs in the project's MLflow store (e.g. after a `dvc exp run --queue` sweep)."""


def build_parser():
    parser = stage_parser("evaluate", DESCRIPTION)
    d = dict(type=Path, help="default: %(default)s")
    parser.add_argument("--anonymized-dir", default=Path("data/anonymized"), **d)
    parser.add_argument("--extracted-dir", default=Path("data/extracted"), **d)
    parser.add_argument("--synthetic", default=Path("data/synthetic/reviews.parquet"), **d)
    parser.add_argument("--generator-dir", default=Path("models/generator"), **d)
    parser.add_argument("--classifier-dir", default=Path("models/classifier"), **d)
    parser.add_argument("--synthesize-metrics", default=Path("metrics/synthesize.json"), **d)
    parser.add_argument("--train-metrics", default=Path("metrics/train.json"), **d)
    parser.add_argument("--ledger", default=Path("metrics/privacy_ledger.json"), **d)
    parser.add_argument("--metrics", default=Path("metrics/evaluate.json"), **d)
    parser.add_argument("--plots-dir", default=Path("metrics/plots/evaluate"), **d)
    parser.add_argument("--report", default=Path("metrics/report.html"), **d)
    return parser


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise PipelineInputError(f"{path} does not exist; run the {what} stage first (dvc repro {what}).")
    return json.loads(path.read_text(encoding="utf-8"))


def load_inputs(args, params, seed: int):
    """Read the pipeline's files and load its models into EvaluateInputs."""
    import numpy as np
    import pandas as pd

    from stages.evaluate.core import EvaluateInputs
    from stages.evaluate.embed import Embedder
    from stages.evaluate.scoring import canary_context, paired_losses, suffix_losses
    from stages.synthesize import SynthesizeParams
    from stages.synthesize.canaries import CANARY_USER_PREFIX
    from stages.synthesize.core import prepare_training
    from stages.synthesize.filters import anonymizer_analyzer
    from stages.synthesize.generator import ReviewGenerator
    from stages.train.baseline import TfidfBaseline
    from stages.train.params import TrainParams
    from stages.train.predict import RatingClassifier

    train = read_table(args.anonymized_dir / "train.parquet")
    test = read_table(args.anonymized_dir / "test.parquet")
    synthetic = read_table(args.synthetic)
    raw = pd.concat([read_table(args.extracted_dir / f"{s}.parquet") for s in ("train", "val", "test")])
    raw_texts = (raw["title"].fillna("") + "\n" + raw["text"].fillna("")).tolist()
    syn_params, _ = load_section(args.params, "synthesize", SynthesizeParams)
    train_params, _ = load_section(args.params, "train", TrainParams)

    embedder = Embedder(params.fidelity.embedding_model, batch_size=params.fidelity.embedding_batch_size)
    embedder.model_.max_seq_length = params.fidelity.embedding_max_tokens

    canaries_file = args.generator_dir / "canaries.json"
    canaries = json.loads(canaries_file.read_text()) if canaries_file.is_file() else []
    generator = ReviewGenerator.load_dir(args.generator_dir)
    max_len = generator.config["max_seq_len"]
    bs = params.privacy.mia_batch_size
    members, _, _ = prepare_training(train, syn_params, seed=seed)  # the rows the generator trained on
    members = members[~members["user_id"].astype(str).str.startswith(CANARY_USER_PREFIX)]

    def secret_losses(canary, secrets):
        context, template = canary_context(canary, generator.tokenizer)
        return suffix_losses(generator.model, generator.tokenizer, context,
                             [template.format(secret=s) for s in secrets], batch_size=bs)

    classifier_dir = args.classifier_dir / "real"
    classify = None
    if classifier_dir.is_dir():
        classifier = RatingClassifier.from_dir(classifier_dir)
        classify = lambda frame: classifier.predict(frame)["rating_pred"].to_numpy(np.int64)  # noqa: E731

    def tfidf(texts, ratings):
        return TfidfBaseline(train_params.tfidf, class_weighting=train_params.class_weighting, seed=seed).fit(texts, ratings)

    return EvaluateInputs(
        train=train, test=test, synthetic=synthetic, raw_texts=raw_texts,
        synthesize_metrics=_read_json(args.synthesize_metrics, "synthesize"),
        train_metrics=_read_json(args.train_metrics, "train"),
        embed=lambda texts, desc: embedder.encode(texts, desc),
        analyze=anonymizer_analyzer(params.privacy.pii_entities, params.privacy.pii_score_threshold),
        canaries=canaries, mia_members=members,
        record_losses=lambda frame, desc: paired_losses(generator.model, generator.tokenizer, frame,
                                                         max_len=max_len, batch_size=bs, desc=desc),
        secret_losses=secret_losses, classify=classify, tfidf=tfidf,
    ), {"train": args.anonymized_dir / "train.parquet", "test": args.anonymized_dir / "test.parquet",
        "synthetic": args.synthetic}


def write_plots(plots, plots_dir: Path) -> None:
    """The DVC plot data: one CSV per plot (the privacy–utility point as JSON)."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in plots.items():
        if name == "privacy_utility":
            write_json(plots_dir / "privacy_utility.json", frame.to_dict(orient="records"))
            continue
        if name == "distributions":  # one numeric-x file per feature, so that DVC draws real vs synthetic lines
            for feature, x_name in (("rating", "rating"), ("length", "words_up_to")):
                part = frame[frame["feature"] == feature][["x", "real", "synthetic"]].rename(columns={"x": x_name})
                with atomic_path(plots_dir / f"{feature}_distribution.csv") as tmp:
                    part.to_csv(tmp, index=False)
            continue
        with atomic_path(plots_dir / f"{name}.csv") as tmp:
            frame.to_csv(tmp, index=False)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["frontier"]:
        from stages.evaluate.frontier import main as frontier_main

        return frontier_main(argv[1:])
    from stages.evaluate.core import run_evaluate
    from stages.evaluate.gate import CLASSIFIER, GENERATOR, promote
    from stages.evaluate.params import EvaluateParams
    from stages.evaluate.report import render

    args = build_parser().parse_args(argv)
    params, seed = load_section(args.params, "evaluate", EvaluateParams)
    inputs, hashed = load_inputs(args, params, seed)
    with tracked_stage("evaluate", args, {**as_flat_dict(params, "evaluate"), "seed": seed}) as run:
        from stages.tracking import InputTable

        run.log_inputs([InputTable(name, path, getattr(inputs, name), "evaluation") for name, path in hashed.items()])
        result = run_evaluate(inputs, params, seed=seed)
        champion: dict = {}
        if not args.no_mlflow:
            from stages.tracking import latest_version_tagged, model_version_by_alias

            versions = {GENERATOR: model_version_by_alias(GENERATOR, "candidate"),
                        CLASSIFIER: latest_version_tagged(CLASSIFIER, "source", "synthetic")}
            champion = promote(result.gate, versions=versions)
            result.metrics["gate.champion_moved"] = int(result.gate.passed and all(versions.values()))
            from stages.tracking import describe_gate_decision

            describe_gate_decision(versions, passed=result.gate.passed, checks=result.gate.checks, champion=champion)
        write_plots(result.plots, args.plots_dir)
        with atomic_path(args.report) as tmp:
            ledger = _read_json(args.ledger, "synthesize")
            tmp.write_text(render(result.metrics, result.gate, result.plots, champion, ledger=ledger), encoding="utf-8")
        write_json(args.metrics, result.metrics)
        run.log_metrics(result.metrics)
        run.log_artifact(args.report)
        ledger = args.metrics.parent / "privacy_ledger.json"  # issue 11's ledger, once synthesize writes it
        if ledger.is_file():
            run.log_artifact(ledger)
        for plot in sorted(args.plots_dir.glob("*")):
            run.log_artifact(plot, "plots")
    m = result.metrics
    print(
        f"evaluate: MAUVE {m['fidelity.text.mauve']:.3f} (real {m['fidelity.text.mauve_baseline']:.3f}), "
        f"DCR share {m['privacy.dcr.embedding.dcr_share']:.3f}, MIA AUC {m.get('privacy.mia.auc', float('nan')):.3f}, "
        f"canary leaks {m.get('privacy.canary.verbatim_total', 0)}, gate "
        f"{'passed' if result.gate.passed else 'FAILED: ' + ', '.join(result.gate.failed)} "
        f"(epsilon {m['privacy.epsilon']}) "
        f"in {m['seconds.total']:.0f}s; report {args.report}"
    )
    if not result.gate.passed and params.fail_on_gate:
        print("evaluate: the privacy gate failed and evaluate.fail_on_gate is true", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
