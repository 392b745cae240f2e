"""Benchmark: the voice judge's drop rates on real reviews (its false alarms) and on synthetic releases.

Runs the stage's own judge (stages/synthesize/voice.py, `synthesize.voice` in params.yaml) over
real review files and over synthetic records, and prints, for several margins, the share of
each set it would drop. Real texts are only counted, never printed; for each synthetic set the
lowest-margin texts are printed, so a person can read what the judge takes.

    .venv/bin/python benchmarks/bench_voice.py \
        --real $SYNTHGUARD_SAMPLE_DIR/Electronics.10k.jsonl.gz $SYNTHGUARD_SAMPLE_DIR/multi_category.2.7k.reviews.jsonl.gz \
        --synthetic s27-default=<parquet> --json benchmarks/results/voice.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def texts_of(path: Path) -> list[str]:
    """Title line and body of each review in a JSONL(.gz) or Parquet file, joined as the stage joins them."""
    from stages.synthesize.selection import review_texts

    jsonl = path.name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz"))
    frame = pd.read_json(path, lines=True) if jsonl else pd.read_parquet(path)  # DVC's cache names have no suffix
    if "title" not in frame:  # the Electronics file has no titles
        frame = frame.assign(title=None)
    return review_texts(frame.assign(text=frame["text"].fillna("")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", type=Path, nargs="+", required=True, help="real review files (counted only)")
    p.add_argument("--synthetic", nargs="*", default=[], help="NAME=PATH of synthetic records (parquet)")
    p.add_argument("--margins", type=float, nargs="+", default=[-0.25, -0.2, -0.15, -0.1, -0.05])
    p.add_argument("--show", type=int, default=15, help="lowest-margin synthetic texts printed per set")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    from stages.params import load_section
    from stages.synthesize.params import SynthesizeParams
    from stages.synthesize.voice import voice_judge

    params, _ = load_section(args.params, "synthesize", SynthesizeParams)
    judge = voice_judge(params.voice)
    sets = {f"real:{path.name}": (texts_of(path), False) for path in args.real}
    for spec in args.synthetic:
        name, _, path = spec.partition("=")
        sets[name] = (texts_of(Path(path)), True)

    results = {"min_margin": params.voice.min_margin, "margins": args.margins, "sets": {}}
    print(f"{'set':42s} {'texts':>6s} " + " ".join(f"{m:>+7.2f}" for m in args.margins))
    for name, (texts, show) in sets.items():
        margins = judge.margins(texts)
        shares = [float((margins < m).mean()) for m in args.margins]
        results["sets"][name] = {"texts": len(texts), "dropped_share": dict(zip(map(str, args.margins), shares)),
                                 "dropped_at_default": int((margins < params.voice.min_margin).sum())}
        print(f"{name:42s} {len(texts):6d} " + " ".join(f"{100 * s:6.1f}%" for s in shares))
        if show:
            for i in np.argsort(margins)[: args.show]:
                print(f"    {margins[i]:+.3f}  {texts[i][:110]!r}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
