"""Benchmark: how many reviewers' names survive the anonymize stage, per shape of name and per placement.

Takes N real reviews of the shared sample (Electronics.10k, title + text), gives each an
author name generated from Faker (half en_US, half the benchmark's other locales) in one of
the shapes of stages.anonymize.name_shapes (initials, handles, lower case, nicknames,
suffixes, ALL CAPS...), and puts it where reviewers do: as an opener ("<name> here."), as a
sign-off ("Thanks, <name>") or mid-text after a dash. Then runs the real stage
(`run_anonymize`, params.yaml's anonymize section, sweep on, benchmark off) and reports:

- survival: the whole name still in the output text, and any of its words (2+ letters, not
  already in the review) still there;
- collateral: words of the review itself (name excluded) that the stage changed, in texts
  and titles, and what became of "Thanks" and of the words the issue saw swept away;
- that the run finished, and how many records were quarantined.

No review text or name is printed; only counts.

    .venv/bin/python benchmarks/bench_names.py [--reviews 5000] [--sample DIR] [--seed 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import re
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml

from stages.anonymize.benchmark import NAME_LOCALES
from stages.anonymize.core import run_anonymize
from stages.anonymize.name_shapes import NAME_SHAPES, make_name
from stages.anonymize.names import NAME_SUFFIXES, PARTICLES
from stages.anonymize.params import AnonymizeParams
from stages.params import parse_section

ROOT = Path(__file__).resolve().parents[1]
PLACES = {
    "opener": ["{v} here.", "This is {v}.", "{v} here -", "Hi, {v} here."],
    "signoff": ["Thanks, {v}", "Thanks {v}!", "- {v}", "Cheers,\n{v}", "Thank you, {v}."],
    "dash": ["- {v}:", "— {v} —"],
}
WATCHED = ("Thanks", "OEM", "Don't", "Glass", "Like", "Palm", "hasn't")
_WORDS = re.compile(r"[\w'’]+")


def insert(text: str, name: str, place: str, rng: random.Random) -> str:
    """`text` with `name` placed as an opener, a sign-off or after a dash at a sentence break."""
    carrier = rng.choice(PLACES[place]).replace("{v}", name)
    if place == "opener":
        return f"{carrier} {text}"
    if place == "signoff":
        return f"{text} {carrier}"
    breaks = [m.end() for m in re.finditer(r"[.!?] ", text)]
    cut = breaks[len(breaks) // 2] if breaks else len(text)
    return f"{text[:cut].rstrip()} {carrier} {text[cut:]}".rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=5000)
    parser.add_argument("--sample", type=Path, default=Path(os.environ.get("SYNTHGUARD_SAMPLE_DIR", "../shared/data/amazon_reviews_2023")))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    from faker import Faker

    raw = pd.read_json(args.sample / "Electronics.10k.jsonl.gz", lines=True, compression="gzip", dtype=False)
    raw = raw[raw["text"].map(lambda t: isinstance(t, str) and len(t.strip()) >= 10)].head(args.reviews).reset_index(drop=True)
    rng = random.Random(args.seed)
    locales = ["en_US"] * len(NAME_LOCALES) + list(NAME_LOCALES)
    fakers = {loc: Faker(loc) for loc in set(locales)}
    for i, loc in enumerate(sorted(fakers)):
        fakers[loc].seed_instance(args.seed + i)
    shapes = [NAME_SHAPES[i % len(NAME_SHAPES)] for i in range(len(raw))]
    places = [rng.choices(list(PLACES), weights=[4, 5, 1])[0] for _ in range(len(raw))]
    names = [make_name(fakers[rng.choice(locales)], shape, rng) for shape in shapes]
    texts = [insert(t.strip(), n, p, rng) for t, n, p in zip(raw["text"], names, places)]
    frame = pd.DataFrame({
        "review_id": [f"r{i}" for i in range(len(raw))],
        "user_id": raw["user_id"].astype(str),
        # this sample has no review titles; a sample with a `title` column gets them anonymized and scored too
        "title": raw["title"].where(raw["title"].map(lambda t: isinstance(t, str)), None) if "title" in raw else None,
        "text": texts,
        "timestamp": pd.to_datetime(raw["timestamp"], unit="ms", utc=True).astype("datetime64[ms, UTC]"),
    })
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["anonymize"]
    params = parse_section(section, AnonymizeParams, "anonymize")
    params = dataclasses.replace(params, benchmark=dataclasses.replace(params.benchmark, cases=0, person_cases=0, negative_cases=0))
    started = time.perf_counter()
    result = run_anonymize({"reviews": frame}, params, key=b"bench-names-key-0123456789", seed=args.seed)
    seconds = time.perf_counter() - started
    out = result.frames["reviews"].set_index("review_id")
    m = result.metrics

    full, word, total = Counter(), Counter(), Counter()
    changed = words = title_changed = title_words = 0
    watched_in, watched_out = Counter(), Counter()
    for i, (name, shape, place) in enumerate(zip(names, shapes, places)):
        rid = f"r{i}"
        if rid not in out.index:
            continue  # quarantined: its text is gone, so nothing of it survives
        review, anonymized = raw["text"].iat[i].strip(), out.at[rid, "text"]
        review_words = set(w.lower() for w in _WORDS.findall(review))
        # "Jr", "III", "van der" say nothing about who someone is, and the surrogate keeps them
        name_words = [w for w in _WORDS.findall(name)
                      if len(w) > 1 and w.lower() not in review_words | NAME_SUFFIXES | PARTICLES]
        out_words = Counter(w.lower() for w in _WORDS.findall(anonymized))
        for key in (shape, place, "all"):
            total[key] += 1
            full[key] += re.search(rf"(?<!\w){re.escape(name)}(?!\w)", anonymized) is not None
            word[key] += any(out_words[w.lower()] for w in name_words)
        before = Counter(_WORDS.findall(review))
        after = Counter(_WORDS.findall(anonymized))
        words += sum(before.values())
        changed += sum((before - after).values())
        for w in WATCHED:
            watched_in[w] += before[w] + (texts[i].count("Thanks") - review.count("Thanks") if w == "Thanks" else 0)
            watched_out[w] += after[w]
        title = raw["title"].iat[i] if "title" in raw else None
        if isinstance(title, str):
            tb, ta = Counter(_WORDS.findall(title)), Counter(_WORDS.findall(out.at[rid, "title"] or ""))
            title_words += sum(tb.values())
            title_changed += sum((tb - ta).values())

    print(f"{len(frame)} real reviews with inserted names; run finished in {seconds:.0f} s "
          f"({m['reviews_per_second']} reviews/s), {m['quarantined_records']} quarantined, "
          f"surrogate fallbacks {sum(m['surrogate_fallbacks'].values())}, "
          f"detected values left in the output {m['detected_value_reoccurrences']}")
    print(f"\n{'shape / placement':<20} {'names':>6} {'full name survived':>19} {'a name word survived':>21}")
    for key in [*NAME_SHAPES, *PLACES, "all"]:
        n = total[key]
        print(f"{key:<20} {n:>6} {full[key] / n:>18.1%} {word[key] / n:>20.1%}")
    titles = f"titles {title_changed / title_words:.2%} of {title_words}" if title_words else "no titles in this sample"
    print(f"\nreview words changed (name excluded): texts {changed / words:.2%} of {words}; {titles}")
    print("kept / in input: " + ", ".join(f"{w!r} {watched_out[w]}/{watched_in[w]}" for w in WATCHED))


if __name__ == "__main__":
    main()
