"""A cheap utility probe of the synthesize step, for choosing its recipe without whole pipelines.

Extracts the shared Electronics sample once (the stage's own extract, seeded user split),
then for each named variant runs `run_synthesize` (params.yaml's synthesize section with
the variant's overrides, the real privacy filters) and scores what it wrote: TF-IDF +
logistic regression (train.tfidf, balanced classes) trained on the first N synthetic
records, macro-F1 on the real test split, next to the same classifier trained on N real
training reviews and the majority floor; ratio = syn / real, lift = (syn - maj) / (real - maj).

The probe runs on extracted (not anonymized) text to save the anonymizer's ten minutes;
the generator sees the same reviews either way, apart from replaced PII. Nothing it
produces leaves the scratch folder.

    .venv/bin/python benchmarks/probe_synthesize.py --variants zero_shot dp_lr2e-3 --rows 1000
    .venv/bin/python benchmarks/probe_synthesize.py --list
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's stages/, whatever the editable install points at

# name -> dotted overrides of the synthesize section
VARIANTS: dict[str, dict] = {
    "zero_shot": {"generator.epochs": 0.0},
    "dp_lr2e-3": {"generator.learning_rate": 2e-3},
    "dp_lr5e-3": {"generator.learning_rate": 5e-3},
    "dp_lr1e-2": {"generator.learning_rate": 1e-2},
    "dp_lr5e-3_e2": {"generator.learning_rate": 5e-3, "generator.epochs": 2.0},
    "dp_lr5e-3_k2": {"generator.learning_rate": 5e-3, "dp.max_reviews_per_user": 2},
    "nodp_lr1e-3": {"generator.learning_rate": 1e-3, "dp.enabled": False},
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reviews", type=Path,
                   default=Path(os.environ.get("SYNTHGUARD_SAMPLE_DIR", ROOT.parent / "shared/data/amazon_reviews_2023"))
                   / "Electronics.10k.jsonl.gz")
    p.add_argument("--variants", nargs="+", default=["zero_shot", "dp_lr5e-3"])
    p.add_argument("--rows", type=int, default=1000, help="N: synthetic and real training rows of the probe")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="extra overrides for every variant, e.g. generation.batch_size=32")
    p.add_argument("--out", type=Path, help="append one JSON line per variant here")
    p.add_argument("--list", action="store_true", help="list the variants and exit")
    return p.parse_args()


def _override(params, changes: dict):
    for dotted, value in changes.items():
        group, key = dotted.split(".")
        params = dataclasses.replace(params, **{group: dataclasses.replace(getattr(params, group), **{key: value})})
    return params


def _value(text: str):
    import yaml

    return yaml.safe_load(text)


def main():
    import numpy as np
    import pandas as pd
    import yaml

    from stages.extract.params import ExtractParams
    from stages.extract.core import run_extract
    from stages.params import parse_section
    from stages.synthesize import SynthesizeParams, run_synthesize
    from stages.synthesize.filters import anonymizer_analyzer
    from stages.train.baseline import TfidfBaseline
    from stages.train.metrics import classification_report
    from stages.train.params import TrainParams

    args = parse_args()
    if args.list:
        for name, changes in VARIANTS.items():
            print(f"{name:16s} {changes}")
        return
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    extract = parse_section({**raw["extract"], "reviews": str(args.reviews), "meta": None}, ExtractParams, "extract")
    train_params = parse_section(raw["train"], TrainParams, "train")
    base = parse_section(raw["synthesize"], SynthesizeParams, "synthesize")
    extra = dict(kv.split("=", 1) for kv in args.set)
    base = _override(base, {k: _value(v) for k, v in extra.items()})
    with tempfile.TemporaryDirectory() as tmp:
        run_extract(extract, seed=args.seed, out_dir=Path(tmp), rejects_path=Path(tmp) / "rejects.jsonl")
        splits = {s: pd.read_parquet(Path(tmp) / f"{s}.parquet") for s in ("train", "val", "test")}

    def texts(frame):
        return (frame["title"].fillna("") + "\n" + frame["text"]).tolist()

    test = splits["test"]
    y_test = test["rating"].to_numpy(int)

    def score(frame) -> float:
        model = TfidfBaseline(train_params.tfidf, class_weighting="balanced", seed=args.seed)
        model.fit(texts(frame), frame["rating"].to_numpy(int))
        return classification_report(y_test, model.predict(texts(test)))["macro_f1"]

    real_rows = splits["train"].sample(n=min(args.rows, len(splits["train"])), random_state=args.seed)
    real = score(real_rows)
    majority = int(np.bincount(real_rows["rating"].to_numpy(int)).argmax())
    floor = classification_report(y_test, np.full(len(y_test), majority))["macro_f1"]
    print(f"real {len(real_rows)} rows: macro-F1 {real:.3f}; majority floor {floor:.3f}; test {len(test)} rows")
    analyzer = anonymizer_analyzer(base.filters.pii_entities, base.filters.pii_score_threshold)
    for name in args.variants:
        params = _override(base, {**VARIANTS[name], "generation.n_records": args.rows})
        started = time.perf_counter()
        result = run_synthesize(splits["train"], splits["val"], params, seed=args.seed, analyzer=analyzer)
        seconds = time.perf_counter() - started
        syn = result.records
        f1 = score(syn)
        m = result.metrics
        row = {
            "variant": name, "overrides": {**VARIANTS[name], **extra}, "rows": len(syn), "macro_f1": round(f1, 4),
            "real_macro_f1": round(real, 4), "floor": round(floor, 4), "ratio": round(f1 / real, 3),
            "lift": round((f1 - floor) / (real - floor), 3), "epsilon": m["epsilon"], "steps": m["steps"],
            "noise_multiplier": m["noise_multiplier"], "val_loss_base": m["val_loss_base"], "val_loss": m["val_loss"],
            "train_loss_start": m["train_loss_start"], "train_loss_end": m["train_loss_end"],
            "seconds": round(seconds, 1), "stage_seconds": m["seconds"],
            "tokens_per_second": m["generation_tokens_per_second"],
            "rating_share": syn["rating"].value_counts(normalize=True).sort_index().round(3).to_dict(),
        }
        print(json.dumps(row))
        if args.out:
            with args.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            syn.to_parquet(args.out.with_name(f"{args.out.stem}.{name}.parquet"))


if __name__ == "__main__":
    main()
