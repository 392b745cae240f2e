"""The stage's passes, each callable on its own batch: detect, merge detected values, replace, re-occurrence check.

`run_anonymize` (core.py) chains them over all splits in one process; another engine
can run `detect_batch` and `Replacer.replace_batch` wherever its workers are, as long
as it merges the detected values of every batch (`merge_values`) between the two.
A text the analyzer or the replacement fails on comes back as a `Failure` (the pass
and the exception's type, never its message, which may quote the text); the caller
quarantines its record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from stages.anonymize.engine import Finding, ReviewAnalyzer, resolve_overlaps
from stages.anonymize.names import is_identifying_name
from stages.anonymize.operators import Surrogates, _word_matcher, build_operators
from stages.anonymize.params import AnonymizeParams

Item = str | None | tuple[str | None, frozenset[str]]


@dataclass(frozen=True)
class Failure:
    """A text that could not be processed: the pass ('detect' or 'replace') and the exception type."""

    stage: str
    error: str


@dataclass(frozen=True)
class Replaced:
    """A text after replacement, with the count of undetected repeats it swept."""

    text: str | None
    swept: int


def _snapshot(analyzer: ReviewAnalyzer):
    return analyzer.found_.copy(), dict(vars(analyzer.stats_))


def _restore(analyzer: ReviewAnalyzer, snapshot) -> None:
    analyzer.found_ = snapshot[0].copy()
    vars(analyzer.stats_).update(snapshot[1])


def detect_batch(analyzer: ReviewAnalyzer, items: Sequence[Item]) -> list[list[Finding] | Failure]:
    """Findings per item (text, or (text, product words)); a Failure for a text the analyzer fails on.

    The batch goes through the analyzer in one go; if that raises, each text is retried
    alone, so only the texts that fail by themselves are lost (and the counts stay exact).
    """
    items = list(items)
    before = _snapshot(analyzer)
    try:
        return list(analyzer.analyze(items))
    except Exception:  # noqa: BLE001 - retried text by text below; failures are returned and counted
        _restore(analyzer, before)
    out: list[list[Finding] | Failure] = []
    for item in items:
        before = _snapshot(analyzer)
        try:
            out.extend(analyzer.analyze([item]))
        except Exception as exc:  # noqa: BLE001 - one odd text never kills the run; the caller quarantines it
            _restore(analyzer, before)
            out.append(Failure("detect", type(exc).__name__))
    return out


def merge_values(texts: Iterable[str | None], findings: Iterable[list[Finding] | Failure]) -> dict[str, str]:
    """Every detected original value -> its entity (first seen). Memory only: never written or logged."""
    values: dict[str, str] = {}
    for text, found in zip(texts, findings):
        if isinstance(found, Failure) or not isinstance(text, str):
            continue
        for f in found:
            values.setdefault(text[f.start : f.end], f.entity)
    return values


def identifying_values(values: Mapping[str, str]) -> dict[str, str]:
    """The detected values that identify someone wherever they occur (swept, kept out of surrogates, counted).

    A PERSON finding of a lone letter, a brand or an everyday word ("Thanks", "OEM",
    "Glass", "Don't") is replaced where it was found, but its repeats elsewhere are not
    the person; other entities (e-mails, phones, links...) identify wherever they are.
    """
    return {
        value: entity
        for value, entity in values.items()
        if (is_identifying_name(value) if entity == "PERSON" else len(value.strip()) >= 4)
    }


class Replacer:
    """Replaces findings (plus, with `sweep`, undetected repeats of identifying values) with the operators' output."""

    def __init__(self, params: AnonymizeParams, *, key: bytes, identifying: Mapping[str, str], sweep: bool):
        from presidio_anonymizer import AnonymizerEngine
        from presidio_anonymizer.entities import OperatorConfig

        self.identifying = dict(identifying)
        self.matcher = _word_matcher(self.identifying)
        self.sweep = sweep and self.matcher is not None
        self.surrogates = Surrogates(key, forbidden=self.identifying)
        operators = build_operators(params.operators.for_entity, params.entities, key=key, surrogates=self.surrogates,
                                    mask_char=params.mask_char)
        self._configs = {
            entity: OperatorConfig("custom", {"lambda": (lambda value, e=entity: operators[e](e, value))})
            for entity in params.entities
        }
        self._engine = AnonymizerEngine()

    def replace(self, text: str | None, found: list[Finding]) -> Replaced:
        """`text` with its findings (and swept repeats) replaced."""
        from presidio_anonymizer.entities import RecognizerResult

        if not isinstance(text, str):
            return Replaced(text, 0)
        extra = []
        if self.sweep:
            extra = [
                Finding(self.identifying[m.group()], m.start(), m.end(), 1.0)
                for m in self.matcher.finditer(text)
                if not any(f.start <= m.start() and m.end() <= f.end for f in found)
            ]
        spans = resolve_overlaps(found + extra) if extra else found
        if not spans:
            return Replaced(text, 0)
        results = [RecognizerResult(f.entity, f.start, f.end, f.score) for f in spans]
        return Replaced(self._engine.anonymize(text, results, self._configs).text, len(extra))

    def replace_batch(self, texts: Sequence[str | None], findings: Sequence[list[Finding] | Failure]) -> list[Replaced | Failure]:
        """One Replaced per text, or a Failure (its detection failed, or the replacement raised)."""
        out: list[Replaced | Failure] = []
        for text, found in zip(texts, findings):
            if isinstance(found, Failure):
                out.append(found)
                continue
            try:
                out.append(self.replace(text, found))
            except Exception as exc:  # noqa: BLE001 - one odd text never kills the run; the caller quarantines it
                out.append(Failure("replace", type(exc).__name__))
        return out


def count_reoccurrences(outputs: Mapping[str, pd.DataFrame], matcher: re.Pattern | None,
                        inputs: Mapping[str, pd.DataFrame]) -> int:
    """Occurrences, in any string column of the output, of an identifying detected value (as a word) or an original user id.

    This checks that replacement was complete; it cannot see a value the analyzer
    missed (the benchmark's recall estimates those).
    """
    user_ids = set()
    for frame in inputs.values():
        if "user_id" in frame:
            user_ids.update(v for v in frame["user_id"] if isinstance(v, str) and v)
    ids = re.compile("|".join(map(re.escape, sorted(user_ids, key=len, reverse=True)))) if user_ids else None
    count = 0
    for frame in outputs.values():
        for column in frame.columns:
            if frame[column].dtype != object:
                continue
            for value in frame[column]:
                if not isinstance(value, str):
                    continue
                if matcher is not None:
                    count += len(matcher.findall(value))
                if column == "user_id":
                    count += value in user_ids
                elif ids is not None:
                    count += len(ids.findall(value))
    return count
