"""`python -m stages.evaluate frontier`: the privacy–utility frontier across evaluate runs in the MLflow store."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from stages.io import atomic_path


def frontier_points(runs: Sequence[dict], names: Sequence[str] = ()) -> pd.DataFrame:
    """One row per evaluate run: name, epsilon (NaN: non-private), fine-tuned or zero-shot, DP-selected or not,
    utility ratio and lift, MIA AUC, DCR share.

    `floor_ratio` is the ratio a classifier that always predicts the majority class would reach.

    Runs are named by their DVC experiment where they have one; a later run of the same
    experiment replaces an earlier one. With `names`, only those runs are kept.
    """
    rows = []
    for run in sorted(runs, key=lambda r: r["start_time"]):
        m, tags = run["metrics"], run["tags"]
        model = "lora" if "utility.ratio.lora.macro_f1" in m else "tfidf"
        ratio = m.get(f"utility.ratio.{model}.macro_f1")
        majority, real = m.get("utility.real.majority.macro_f1"), m.get(f"utility.real.{model}.macro_f1")
        # a text model that saw no data is the zero-shot reference (epsilon_text 0: runs logged before the flag)
        fine_tuned = bool(m.get("privacy.fine_tuned", 1.0)) and m.get("privacy.epsilon_text") != 0
        rows.append({
            "name": tags.get("dvc_exp_name") or run["run_id"][:8],
            # the release's epsilon; zero-shot sits at the tabular model's, its text costs none; non-private: None
            "epsilon": m.get("privacy.epsilon") if m.get("privacy.dp_enabled", 1.0) or not fine_tuned else None,
            "fine_tuned": fine_tuned,
            # the released drafts were chosen by the DP selection (synthesize.selection): a zero-shot text model
            # with it has read private data through the selection, so it is no longer the zero-shot reference
            "selected": m.get("privacy.epsilon_selection") is not None,
            "utility_ratio": ratio,
            "floor_ratio": majority / real if majority is not None and real else None,
            "tfidf_ratio": m.get("utility.ratio.tfidf.macro_f1"),
            "lora_lift": m.get("utility.lift.lora.macro_f1"),  # (syn - majority) / (real - majority)
            "tfidf_lift": m.get("utility.lift.tfidf.macro_f1"),
            "mia_auc": m.get("privacy.mia.auc"),
            "mia_calibrated_auc": m.get("privacy.mia.calibrated.auc"),
            "dcr_share": m.get("privacy.dcr.embedding.dcr_share"),
            "gate_passed": m.get("gate.passed"),
        })
    frame = pd.DataFrame(rows, columns=["name", "epsilon", "fine_tuned", "selected", "utility_ratio", "floor_ratio", "tfidf_ratio", "lora_lift",
                                        "tfidf_lift", "mia_auc",
                                        "mia_calibrated_auc", "dcr_share", "gate_passed"])
    if names:
        frame = frame[frame["name"].isin(names)]
    return frame.drop_duplicates("name", keep="last").reset_index(drop=True)


def with_previous(points: pd.DataFrame, previous: pd.DataFrame, names: Sequence[str] = ()) -> pd.DataFrame:
    """`points` plus the rows of an earlier frontier table (`--previous`) whose runs this store does not hold.

    A run here replaces a row of the same name there; with `names`, only those rows are taken.
    The earlier rows keep their own columns' meaning: they were computed the same way when written.
    """
    missing = [c for c in points.columns if c not in previous.columns]
    if missing:
        raise ValueError(f"the previous frontier table lacks column(s) {missing}; pass one written by this command")
    earlier = previous[~previous["name"].isin(points["name"])]
    if names:
        earlier = earlier[earlier["name"].isin(names)]
    frames = [f for f in (earlier[points.columns], points) if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else points


def main(argv: Sequence[str] | None = None) -> int:
    """Print the frontier table and draw it to a PNG (and the table to CSV)."""
    from stages.evaluate.report import frontier_figure
    from stages.tracking import stage_run_metrics

    parser = argparse.ArgumentParser(prog="python -m stages.evaluate frontier", description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("metrics/frontier.png"), help="default: %(default)s")
    parser.add_argument("--table", type=Path, default=Path("metrics/frontier.csv"), help="default: %(default)s")
    parser.add_argument("--experiments", nargs="+", default=(), metavar="NAME",
                        help="only these DVC experiments (or run-id prefixes); default: every evaluate run")
    parser.add_argument("--previous", type=Path, metavar="CSV",
                        help="an earlier frontier table (e.g. the committed metrics/frontier.csv): its runs that this "
                             "MLflow store does not hold are drawn too, a run here replacing one of the same name")
    args = parser.parse_args(argv)
    points = frontier_points(stage_run_metrics("evaluate"), args.experiments)
    if args.previous is not None:
        if not args.previous.is_file():
            parser.error(f"--previous {args.previous}: no such file; pass a frontier table this command wrote")
        points = with_previous(points, pd.read_csv(args.previous), args.experiments)
    if points.empty:
        wanted = f" named {' '.join(args.experiments)}" if args.experiments else ""
        print(f"frontier: no finished evaluate run{wanted} in the MLflow store; run `dvc repro` or a sweep first.")
        return 1
    fig = frontier_figure(points)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.output) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    with atomic_path(args.table) as tmp:
        points.to_csv(tmp, index=False)
    print(points.to_string(index=False))
    print(f"frontier: {len(points)} run(s); figure {args.output}, table {args.table}")
    return 0
