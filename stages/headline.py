"""The headline: the figures experiments are compared on, gathered from the stages' metrics files.

`dvc exp show` lists the metrics files in the order of dvc.yaml, and the `headline` stage
comes first there, so these columns lead the table; `make exp` shows only them (and the
params a sweep changes). Every figure is copied from the file named in HEADLINE, never
computed here: a key that its file lacks is left out and listed under `missing`, so that a
headline built before a stage writes a new key says so instead of showing a stand-in.

    python -m stages.headline [--output metrics/headline.json] [--no-mlflow]
    python -m stages.headline --keep-regex      # the `dvc exp show --keep` pattern (make exp)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages._cli import run_cli
from stages.errors import PipelineInputError
from stages.io import atomic_path, flatten_metrics

OUTPUT = Path("metrics/headline.json")
EXTRACT, ANONYMIZE, SYNTHESIZE = "metrics/extract.json", "metrics/anonymize.json", "metrics/synthesize.json"
TRAIN, EVALUATE = "metrics/train.json", "metrics/evaluate.json"


@dataclass(frozen=True)
class Figure:
    """One headline column: its label, and the metrics file and (dotted) key it is copied from."""

    label: str
    source: str
    key: str


HEADLINE: tuple[Figure, ...] = (
    # the released dataset's budget, from the accountants: the composed (epsilon, delta) and its parts
    Figure("budget.epsilon_total", SYNTHESIZE, "epsilon_total"),
    Figure("budget.delta_total", SYNTHESIZE, "delta_total"),
    Figure("budget.epsilon_text", SYNTHESIZE, "epsilon_text"),
    Figure("budget.epsilon_tabular", SYNTHESIZE, "epsilon_tabular"),
    Figure("budget.epsilon_selection", SYNTHESIZE, "epsilon_selection"),  # null: drafts written as generated
    Figure("budget.epsilon_generator", SYNTHESIZE, "epsilon"),  # the text generator's accountant, as today
    # whether DP-SGD trained the text generator (false for zero-shot text; the release is DP when epsilon_total is set)
    Figure("budget.text_dp_sgd", SYNTHESIZE, "dp_enabled"),
    # privacy measured by attacks on the release
    Figure("privacy.mia_auc_calibrated", EVALUATE, "privacy.mia.calibrated.auc"),
    Figure("privacy.mia_auc", EVALUATE, "privacy.mia.auc"),
    Figure("privacy.dcr_share", EVALUATE, "privacy.dcr.embedding.dcr_share"),
    Figure("privacy.canary_leaks", EVALUATE, "privacy.canary.verbatim_total"),
    Figure("privacy.residual_pii", EVALUATE, "privacy.pii.records_with_pii"),
    # utility: synthetic-trained / real-trained macro-F1 on the real test split, and the lift over chance
    Figure("utility.ratio_lora_macro_f1", TRAIN, "ratio.lora.macro_f1"),
    Figure("utility.ratio_tfidf_macro_f1", TRAIN, "ratio.tfidf.macro_f1"),
    Figure("utility.lift_lora_macro_f1", TRAIN, "lift.lora.macro_f1"),
    Figure("utility.lift_tfidf_macro_f1", TRAIN, "lift.tfidf.macro_f1"),
    # quality: share of texts with any problem the checks find, synthetic and the real baseline
    Figure("quality.problem_share", EVALUATE, "fidelity.quality.synthetic.any_problem_share"),
    Figure("quality.problem_share_real", EVALUATE, "fidelity.quality.real.any_problem_share"),
    # the release: how many records, and what the gate decided
    Figure("release.records_written", SYNTHESIZE, "records_written"),
    Figure("release.gate_passed", EVALUATE, "gate.passed"),
    Figure("release.champion_moved", EVALUATE, "gate.champion_moved"),
    # wall time of each stage, seconds
    Figure("stage_seconds.extract", EXTRACT, "seconds"),
    Figure("stage_seconds.anonymize", ANONYMIZE, "seconds"),
    Figure("stage_seconds.synthesize", SYNTHESIZE, "seconds.total"),
    Figure("stage_seconds.train", TRAIN, "seconds.total"),
    Figure("stage_seconds.evaluate", EVALUATE, "seconds.total"),
)
MISSING = "missing"  # the labels left out (a list: `dvc exp show` shows only its count, below)
MISSING_COUNT = "missing_count"
# Params a sweep varies, kept beside the headline by `make exp`.
SWEEP_PARAMS = ("synthesize.dp.enabled", "synthesize.dp.target_epsilon", "synthesize.tabular.epsilon",
                "synthesize.selection.enabled", "synthesize.selection.epsilon", "synthesize.generation.oversample",
                "synthesize.generator.learning_rate", "synthesize.generator.epochs")


def build_headline(sources: Mapping[str, Mapping[str, Any]], figures: Sequence[Figure] = HEADLINE) -> dict[str, Any]:
    """Pure: label -> value for each figure whose key its source holds, in declared order.

    `sources` maps a metrics file's path to its parsed (possibly nested) content. A figure
    whose file or key is absent is omitted and its label listed under `missing`; a key that
    holds null (an undefined score, such as epsilon of a non-private run) stays null.
    """
    labels = [f.label for f in figures]
    duplicates = sorted({label for label in labels if labels.count(label) > 1} | ({MISSING, MISSING_COUNT} & set(labels)))
    if duplicates:
        raise ValueError(f"headline labels must be unique and not {MISSING!r} or {MISSING_COUNT!r}: {duplicates}")
    flat = {path: flatten_metrics(content) for path, content in sources.items()}
    headline: dict[str, Any] = {}
    missing: list[str] = []
    for figure in figures:
        values = flat.get(figure.source, {})
        if figure.key in values:
            headline[figure.label] = values[figure.key]
        else:
            missing.append(figure.label)
    headline[MISSING] = missing
    headline[MISSING_COUNT] = len(missing)
    return headline


def keep_regex(figures: Sequence[Figure] = HEADLINE, params: Sequence[str] = SWEEP_PARAMS) -> str:
    """The `dvc exp show --keep` pattern for the headline's columns (bare, or prefixed with the file)."""
    names = [f.label for f in figures] + [MISSING_COUNT]
    escaped = "|".join(n.replace(".", r"\.") for n in names)
    params_part = "|".join(p.replace(".", r"\.") for p in params)
    output = OUTPUT.as_posix().replace(".", r"\.")
    return f"^(Experiment|Created|({output}:)?({escaped})|(params\\.yaml:)?({params_part}))$"


def read_sources(figures: Sequence[Figure] = HEADLINE) -> dict[str, Any]:
    """Parse each source file that exists; an unreadable one is an error, an absent one a gap."""
    sources: dict[str, Any] = {}
    for path in dict.fromkeys(f.source for f in figures):
        if not Path(path).is_file():
            continue
        try:
            sources[path] = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise PipelineInputError(f"{path}: not valid JSON ({exc}); rerun the stage that writes it.") from exc
    return sources


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stages.headline", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help="default: %(default)s")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the headline on the pipeline's MLflow run")
    parser.add_argument("--keep-regex", action="store_true", help="print the `dvc exp show --keep` pattern and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.keep_regex:
        print(keep_regex())
        return 0
    headline = build_headline(read_sources())
    with atomic_path(args.output) as tmp:  # declared order, not sorted: it is the column order
        tmp.write_text(json.dumps(headline, indent=2) + "\n", encoding="utf-8")
    if not args.no_mlflow:
        from stages.tracking import log_pipeline_metrics

        log_pipeline_metrics({k: v for k, v in headline.items() if k != MISSING})  # numbers only
    gaps = f"; missing: {', '.join(headline[MISSING])}" if headline[MISSING] else ""
    print(f"headline: {len(HEADLINE) - len(headline[MISSING])} of {len(HEADLINE)} figures -> {args.output}{gaps}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
