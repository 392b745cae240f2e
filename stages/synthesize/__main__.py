"""CLI: python -m stages.synthesize [--train F] [--val F] [--out F] [--generator-dir D] ..."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from stages._cli import run_cli, stage_parser, tracked_stage
from stages.io import commit_files, read_table, staging_dir, write_json
from stages.params import as_flat_dict, load_section
from stages.ray_cluster import engine_cluster

DESCRIPTION = """\
Fit a DP model (OpenDP noisy marginals; SDV when synthesize.dp.enabled is false) of the
structured columns and LoRA-fine-tune the base LM (DP-SGD unless
synthesize.dp.enabled is false) on the anonymized training split, then generate
synthetic review records and drop the ones the privacy filters flag.

inputs:   the anonymized train and val splits
outputs:  the synthetic Parquet file, the generator folder (adapter, tokenizer, config,
          canaries), the tabular folder (DP marginal model or SDV synthesizer), the metrics
          file and the privacy ledger
Nothing is moved into place unless the whole run succeeds."""


def build_parser():
    parser = stage_parser("synthesize", DESCRIPTION)
    parser.add_argument("--train", type=Path, default=Path("data/anonymized/train.parquet"), help="default: %(default)s")
    parser.add_argument("--val", type=Path, default=Path("data/anonymized/val.parquet"), help="default: %(default)s")
    parser.add_argument("--out", type=Path, default=Path("data/synthetic/reviews.parquet"), help="default: %(default)s")
    parser.add_argument("--generator-dir", type=Path, default=Path("models/generator"), help="default: %(default)s")
    parser.add_argument("--tabular-dir", type=Path, default=Path("models/tabular"), help="default: %(default)s")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/synthesize.json"), help="default: %(default)s")
    parser.add_argument("--plots-dir", type=Path, default=Path("metrics/plots/synthesize"), help="default: %(default)s")
    parser.add_argument("--ledger", type=Path, default=Path("metrics/privacy_ledger.json"),
                        help="the privacy ledger (every component reading private records); default: %(default)s")
    return parser


def _loss_plot(losses: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if losses:
        ax.plot(range(1, len(losses) + 1), losses, lw=1)
    else:  # the zero-shot reference: the plot (a DVC output) says why it is empty
        ax.text(0.5, 0.5, "zero-shot reference (generator.epochs: 0):\nno fine-tuning, no loss curve",
                ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("step")
    ax.set_ylabel("train loss (per token)")
    ax.set_title("synthesize: generator fine-tuning")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    import pyarrow.parquet as pq

    from stages.ledger import build_ledger
    from stages.synthesize import SynthesizeParams, run_synthesize
    from stages.synthesize.core import to_arrow
    from stages.synthesize.filters import anonymizer_analyzer

    args = build_parser().parse_args(argv)
    params, seed = load_section(args.params, "synthesize", SynthesizeParams)
    train, val = read_table(args.train), read_table(args.val)
    analyzer = anonymizer_analyzer(params.filters.pii_entities, params.filters.pii_score_threshold)
    cluster = engine_cluster(params.generation.engine, params.generation.ray, param="synthesize.generation.ray.address")
    with cluster as ray_info, tracked_stage("synthesize", args, {**as_flat_dict(params, "synthesize"), "seed": seed}) as run:
        from stages.tracking import InputTable

        run.log_inputs([InputTable("train", args.train, train, "training"), InputTable("val", args.val, val, "validation")])
        run.set_tags(ray_info.tags() if ray_info else {"engine": "local"})
        result = run_synthesize(train, val, params, seed=seed, analyzer=analyzer)
        with staging_dir(args.out.parent / "synthesize") as scratch:
            staged_out = scratch / "reviews.parquet"
            pq.write_table(to_arrow(result.records), staged_out)
            gen_dir, tab_dir = scratch / "generator", scratch / "tabular"
            result.generator.save(gen_dir)
            (gen_dir / "canaries.json").write_text(json.dumps(result.canaries, indent=2) + "\n")
            tab_dir.mkdir()
            result.tabular.save(tab_dir / "synthesizer.pkl")
            plot = scratch / "train_loss.png"
            _loss_plot(result.loss_curve, plot)
            moves = {staged_out: args.out}
            moves.update(_tree_moves(gen_dir, args.generator_dir))
            moves.update(_tree_moves(tab_dir, args.tabular_dir))
            moves[plot] = args.plots_dir / "train_loss.png"
            for target in (args.generator_dir, args.tabular_dir):
                _clear(target)
            commit_files(moves)
        write_json(args.metrics, result.metrics)
        write_json(args.ledger, build_ledger(result.metrics))
        run.log_metrics(result.metrics)
        run.log_artifact(args.plots_dir / "train_loss.png", "plots")
        _register(args, result)
    m = result.metrics
    text = ("0 for the text (zero-shot: no fine-tuning)" if not m["fine_tuned"]
            else f"text {m['epsilon_text']:.3f}" if m["dp_enabled"] else "the text model is not private")
    selection = f", selection {m['epsilon_selection']:g}" if m.get("epsilon_selection") is not None else ""
    eps = "off (non-private baseline)" if m["epsilon_total"] is None else (
        f"{m['epsilon_total']:.3f} for the release ({m['composition']} composition: {text}, "
        f"tabular {m['epsilon_tabular']:g}{selection}; delta {m['delta_total']:g}, unit {m['privacy_unit']})")
    print(
        f"synthesize: {m['records_written']} records written (target {m['records_target']}, "
        f"{m['generated_requested']} generated, {m['records_surplus_discarded']} surplus discarded; "
        f"(parse {m['dropped_parse']}, exact {m['dropped_exact_match']}, n-gram {m['dropped_ngram_overlap']}, "
        f"assistant talk {m['dropped_assistant_talk']}, seller talk {m['dropped_seller_talk']}, "
        f"prompt echo {m['dropped_prompt_echo']}, "
        f"judged not a review {m['dropped_judged_not_review']}, inconsistent {m['dropped_inconsistent']}, "
        f"PII {m['dropped_pii']} dropped; {m['selection_relabelled'] or 0} relabelled by the DP judge); "
        f"DP epsilon {eps}; val loss {m['val_loss']:.3f} "
        f"(base {m['val_loss_base']:.3f}); {m['seconds']['total']:.0f}s"
    )
    return 0


def _tree_moves(src: Path, dst: Path) -> dict[Path, Path]:
    return {f: dst / f.relative_to(src) for f in sorted(src.rglob("*")) if f.is_file()}


def _clear(directory: Path) -> None:
    """Remove a previous run's folder so that no stale file survives next to the new ones."""
    import shutil

    if directory.exists():
        shutil.rmtree(directory)


def _register(args, result) -> None:
    """Log the generator as the registered model `review-generator`, tagged with its privacy."""
    if args.no_mlflow:
        return
    from stages.tracking import log_registered_model

    m = result.metrics
    privacy = ("zero-shot: not fine-tuned, the base model saw no record" if not m["fine_tuned"]
               else f"DP-SGD epsilon {m['epsilon']:.3g} (delta {m['delta']:g})" if m["dp_enabled"]
               else "NOT differentially private")
    log_registered_model(
        loader="stages.synthesize.generator:ReviewGenerator",
        artifacts={"generator": args.generator_dir},
        registered_name="review-generator",
        signature=({"rating": "long", "main_category": "string?", "text_chars": "long?"},
                   {"title": "string", "text": "string"}),
        description=f"LoRA review generator fitted on the anonymized train split, {privacy}. A release "
                    "candidate: the evaluate stage's gate writes its verdict here and moves `champion` "
                    "only when every check holds.",
        tags={
            "epsilon": m["epsilon"] if m["dp_enabled"] or not m["fine_tuned"] else "none (non-private)",
            "fine_tuned": m["fine_tuned"],
            "delta": m["delta"],
            # the released dataset's budget: the generator's composed with the tabular model's
            "epsilon_total": m["epsilon_total"] if m["epsilon_total"] is not None else "none (non-private)",
            "delta_total": m["delta_total"],
            "epsilon_text": m["epsilon_text"],
            "epsilon_tabular": m["epsilon_tabular"],
            "epsilon_selection": m["epsilon_selection"] if m["selection_enabled"] else "off",
            "privacy_unit": m["privacy_unit"],
            "dp_enabled": m["dp_enabled"],
            "noise_multiplier": m["noise_multiplier"],
            "base_model": result.generator.config["base_model"],
        },
    )


if __name__ == "__main__":
    sys.exit(run_cli(main))
