"""Privacy filters run on generated texts: memorised training text, and PII.

Each filter says, per text, whether it is dropped; core counts every drop by reason.
The PII filter takes the analyzer as a batch callable (texts -> per text, findings
with `entity` and `score`), so that the pipeline runs the anonymize stage's own
analyzer and tests can run it or a stand-in on chosen inputs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

_WORD = re.compile(r"\w+", re.UNICODE)

Analyzer = Callable[[list[str]], Sequence[Sequence[Any]]]


def normalise(text: str) -> str:
    """Lower-case words joined by single spaces: what 'the same text' means here."""
    return " ".join(_WORD.findall(text.lower()))


def _ngrams(text: str, n: int) -> list[int]:
    words = normalise(text).split()
    return [
        int.from_bytes(hashlib.blake2b(" ".join(words[i : i + n]).encode(), digest_size=8).digest(), "little")
        for i in range(len(words) - n + 1)
    ]


class MemorisationFilter:
    """Flags texts equal to a training text, or sharing too many long n-grams with the training set."""

    def __init__(self, training_texts: Iterable[str], *, n: int, max_overlap: float):
        self.n = n
        self.max_overlap = max_overlap
        self.exact_ = set()
        self.ngrams_ = set()
        for text in training_texts:
            self.exact_.add(hashlib.blake2b(normalise(text).encode(), digest_size=16).digest())
            self.ngrams_.update(_ngrams(text, n))

    def is_exact(self, text: str) -> bool:
        """True when the text equals a training text up to case, punctuation and spacing."""
        return hashlib.blake2b(normalise(text).encode(), digest_size=16).digest() in self.exact_

    def overlap(self, text: str) -> float:
        """Share of the text's word n-grams that occur in some training text (0 for shorter texts)."""
        grams = _ngrams(text, self.n)
        if not grams:
            return 0.0
        return sum(g in self.ngrams_ for g in grams) / len(grams)

    def reason(self, text: str) -> str | None:
        """'exact_match', 'ngram_overlap' or None (kept)."""
        if self.is_exact(text):
            return "exact_match"
        if self.overlap(text) > self.max_overlap:
            return "ngram_overlap"
        return None


def pii_findings(texts: Sequence[str], analyze: Analyzer, *, entities: Sequence[str],
                 threshold: float) -> list[list[str]]:
    """Per text, the sorted entity types the analyzer finds at or above the threshold."""
    wanted = set(entities)
    return [
        sorted({f.entity for f in found if f.entity in wanted and f.score >= threshold})
        for found in analyze(list(texts))
    ]


def anonymizer_analyzer(entities: Sequence[str], threshold: float) -> Analyzer:
    """The anonymize stage's own analyzer (its recognizers, spaCy NER, brand rules) as a batch callable."""
    from stages.anonymize.engine import ReviewAnalyzer

    analyzer = ReviewAnalyzer(
        entities=tuple(entities),
        score_threshold=threshold,
        batch_size=64,
        n_process=1,
        ner_chunk_chars=5000,
        min_english_share=0.0,  # synthetic text is checked whatever its language
    )
    return lambda texts: list(analyzer.analyze(texts))
