"""The labelled PII benchmark: real review sentences with PII injected at known spans.

Only the builder, the value tables and the templates are committed. The cases are built
at run time from real sentences of the stage's own input (the pipeline's train split; the
shared sample in tests), so no review text enters the repository. Everything is seeded.

Values are drawn so that the benchmark does not simply echo the recognizers: person names
come from non-US Faker locales (the name dictionary is Faker's en_US list), addresses from
several English-speaking locales and hand-written street types, phones in eight national
layouts. Each value is placed at the start, in the middle or at the end of the sentence,
with or without a cue word, often next to punctuation; a share of names is lower-case or
has initials. Negative cases inject product names and model numbers that must stay.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from stages.anonymize.operators import luhn_check_digit

ENTITIES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "ORDER_NUMBER", "URL", "IP_ADDRESS", "STREET_ADDRESS")
POSITIONS = ("start", "middle", "end")
NAME_LOCALES = ("en_GB", "en_IE", "en_AU", "en_IN", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR")
ADDRESS_LOCALES = ("en_US", "en_CA", "en_IE", "en_AU")

# {v} marks the value. Some carriers have a cue word, some none, many put punctuation next to it.
CARRIERS = {
    "PERSON": {
        "start": ["{v} here.", "{v} and I both use it.", "{v}:", "Hi, I'm {v}.", "{v} bought this,", "My wife {v} says:"],
        "middle": ["- my husband {v} -", "(thanks {v})", ", as {v} said,", "for {v}", "my daughter {v} and I", "{v}'s"],
        "end": ["- {v}", "Thanks, {v}!", "Love, {v}", "My son {v} agrees.", "{v}", "Signed, {v}.", "Ask {v}."],
    },
    "EMAIL_ADDRESS": {
        "start": ["{v}:", "Email me at {v}.", "{v} -", "Contact: {v},"],
        "middle": ["({v})", "- {v} -", ", write to {v},", "[{v}]"],
        "end": ["{v}", "My email is {v}.", "Questions? {v}!", "<{v}>"],
    },
    "PHONE_NUMBER": {
        "start": ["Call {v}.", "{v}:", "Tel. {v} -", "My number is {v},"],
        "middle": ["({v})", ", call {v},", "- {v} -", "at {v}"],
        "end": ["{v}", "Call me at {v}!", "Text {v}.", "Phone: {v}"],
    },
    "CREDIT_CARD": {
        "start": ["Card {v} was charged.", "{v}:", "I paid with {v},"],
        "middle": ["(card {v})", ", charged to {v},", "- {v} -"],
        "end": ["{v}", "Charged to my card {v}.", "Card: {v}!"],
    },
    "ORDER_NUMBER": {
        "start": ["Order {v}:", "{v} -", "Order #{v} arrived."],
        "middle": ["(order {v})", ", order {v},", "#{v}"],
        "end": ["{v}", "Order number {v}.", "Ref: {v}!"],
    },
    "URL": {
        "start": ["{v} -", "See {v}.", "My page: {v},"],
        "middle": ["({v})", ", see {v},", "- {v} -"],
        "end": ["{v}", "Follow me at {v}!", "More at {v}."],
    },
    "IP_ADDRESS": {
        "start": ["{v}:", "IP {v} -", "My router is at {v}."],
        "middle": ["({v})", ", from {v},", "- {v} -"],
        "end": ["{v}", "Set it to {v}.", "IP: {v}!"],
    },
    "STREET_ADDRESS": {
        "start": ["{v}:", "I live at {v}.", "Ship to {v} -"],
        "middle": ["({v})", ", delivered to {v},", "- {v} -"],
        "end": ["{v}", "Sent to {v}.", "Address: {v}!"],
    },
}
NEGATIVE_CARRIERS = ["Works with my {v}.", "I compared it to the {v}", "({v})", "{v} owners will like it.", "Same as the {v}!"]
PRODUCTS = [
    "Galaxy S21 Ultra", "iPhone 13 Pro Max", "Pixel 7a", "Echo Dot (5th Gen)", "Fire TV Stick 4K", "Kindle Paperwhite",
    "AirPods Pro 2", "Anker PowerCore 10000", "Otterbox Defender", "Logitech MX Master 3", "Sony WH-1000XM4",
    "Bose QC35 II", "Moto G Power", "OnePlus 9 Pro", "SM-G991U", "A2172", "Roku Ultra 4800R", "JBL Flip 5",
    "Jabra Elite 75t", "Garmin Forerunner 245", "Fitbit Charge 5", "Apple Watch Series 7", "Nintendo Switch OLED",
    "TP-Link Archer AX50", "Netgear R7000", "Samsung 970 EVO", "SanDisk Ultra 128GB", "Dell XPS 13", "Alexa",
    "Ring Video Doorbell 3", "Lightning to USB-C cable", "B08N5WRWNW", "WD My Passport 2TB", "Canon EOS Rebel T7",
    "GoPro HERO9", "Chromecast with Google TV", "Surface Pro 8", "ThinkPad X1 Carbon", "Blink Mini", "Tile Mate",
    "Belkin BoostCharge", "Razer DeathAdder V2", "HyperX Cloud II", "Vizio M55Q7-J01", "TCL 55R635", "Arlo Pro 4",
]
PHONE_LAYOUTS = [
    "(###) ###-####", "###-###-####", "###.###.####", "+1 ### ### ####", "+1-###-###-####",  # North America
    "+44 20 #### ####", "020 #### ####", "07### ######",  # UK
    "+49 30 ########", "030/#######",  # Germany
    "+33 1 ## ## ## ##", "01 ## ## ## ##",  # France
    "+91 9#### #####", "+61 2 #### ####", "+34 6## ### ###", "+81 3-####-####",  # India, Australia, Spain, Japan
]
PROFILE_URLS = [
    "https://www.facebook.com/{u}", "facebook.com/{u}", "https://instagram.com/{u}", "instagram.com/{u}",
    "https://twitter.com/{u}", "www.linkedin.com/in/{u}", "https://www.youtube.com/@{u}", "https://www.tiktok.com/@{u}",
    "https://{d}/{u}", "http://{d}/blog/{u}", "www.{d}/~{u}", "https://github.com/{u}",
]
STREET_TYPES = ["Street", "St.", "Avenue", "Ave", "Road", "Rd.", "Lane", "Drive", "Dr", "Court", "Boulevard", "Way", "Place", "Terrace"]


@dataclass(frozen=True)
class Case:
    """One benchmark text: injected PII spans (entity, start, end, position) and negative spans that must stay."""

    text: str
    pii: tuple[tuple[str, int, int, str], ...]
    negatives: tuple[tuple[int, int], ...]


def real_sentences(texts: Sequence[str | None], *, limit: int, seed: int) -> list[str]:
    """Up to `limit` distinct review sentences of 30..200 chars ending in . ! or ?, seeded shuffle."""
    seen, pool = set(), []
    for text in texts:
        if not isinstance(text, str):
            continue
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
            sentence = sentence.strip()
            if 30 <= len(sentence) <= 200 and sentence[-1] in ".!?" and sentence not in seen:
                seen.add(sentence)
                pool.append(sentence)
    random.Random(seed).shuffle(pool)
    return pool[:limit]


class _Values:
    """Seeded PII values per entity type."""

    def __init__(self, seed: int):
        from faker import Faker

        self.rng = random.Random(seed)
        self.fakers = {loc: Faker(loc) for loc in sorted(set(NAME_LOCALES) | set(ADDRESS_LOCALES))}
        for i, fake in enumerate(self.fakers.values()):
            fake.seed_instance(seed + i)

    def _digits(self, n: int) -> str:
        return "".join(str(self.rng.randint(0, 9)) for _ in range(n))

    def person(self) -> str:
        fake = self.fakers[self.rng.choice(NAME_LOCALES)]
        first, last = fake.first_name(), fake.last_name()
        form = self.rng.random()
        if form < 0.35:
            return f"{first} {last}"
        if form < 0.55:
            return first
        if form < 0.70:
            return f"{first} {last}".lower()
        if form < 0.80:
            return f"{first} {last[0]}."
        if form < 0.90:
            return f"{first[0]}. {last}"
        return first.lower()

    def email_address(self) -> str:
        fake = self.fakers[self.rng.choice(NAME_LOCALES)]
        user = self.rng.choice([fake.user_name(), f"{fake.first_name()}.{fake.last_name()}".lower(), f"{fake.user_name()}+amazon"])
        user = "".join(c for c in user if c.isascii()) or "user"
        user = user.replace(" ", "")
        return f"{user}@{self.rng.choice([fake.free_email_domain(), fake.domain_name(), 'mail.co.uk', 'uni-bonn.de'])}"

    def phone_number(self) -> str:
        layout = self.rng.choice(PHONE_LAYOUTS)
        out = "".join(str(self.rng.randint(2 if i == 0 else 0, 9)) if c == "#" else c for i, c in enumerate(layout))
        return out

    def credit_card(self) -> str:
        kind = self.rng.choice(["visa", "mc", "amex"])
        if kind == "amex":
            body = self.rng.choice(["34", "37"]) + self._digits(12)
            groups = (4, 6, 5)
        else:
            body = ("4" if kind == "visa" else str(self.rng.randint(51, 55))) + self._digits(14 if kind == "visa" else 13)
            groups = (4, 4, 4, 4)
        number = body + luhn_check_digit(body)
        sep = self.rng.choice([" ", "-", ""])
        parts, pos = [], 0
        for g in groups:
            parts.append(number[pos : pos + g])
            pos += g
        return sep.join(parts)

    def order_number(self) -> str:
        return f"{self._digits(3)}-{self._digits(7)}-{self._digits(7)}"

    def url(self) -> str:
        fake = self.fakers[self.rng.choice(NAME_LOCALES)]
        user = "".join(c for c in fake.user_name() if c.isascii()) or "someone"
        return self.rng.choice(PROFILE_URLS).format(u=user, d=fake.domain_name())

    def ip_address(self) -> str:
        fake = self.fakers["en_US"]
        roll = self.rng.random()
        if roll < 0.6:
            return fake.ipv4_public()
        if roll < 0.85:
            return fake.ipv4_private()
        return fake.ipv6()

    def street_address(self) -> str:
        fake = self.fakers[self.rng.choice(ADDRESS_LOCALES)]
        if self.rng.random() < 0.5:
            line = fake.street_address().replace("\n", ", ")
        else:
            line = f"{self.rng.randint(1, 9999)} {fake.last_name()} {self.rng.choice(STREET_TYPES)}"
            if self.rng.random() < 0.3:
                line += f", Apt {self.rng.randint(1, 40)}{self.rng.choice(['', 'B'])}"
        if self.rng.random() < 0.3:
            usa = self.fakers["en_US"]
            line += f", {usa.city()}, {usa.state_abbr()} {usa.zipcode()}"
        return line


def _place(sentence: str, carrier: str, position: str) -> tuple[str, int]:
    """Put `carrier` at the start, middle or end of `sentence`; the text and where the carrier starts."""
    if position == "start":
        return f"{carrier} {sentence}", 0
    if position == "end":
        return f"{sentence} {carrier}", len(sentence) + 1
    spaces = [m.start() for m in re.finditer(" ", sentence)]
    cut = spaces[len(spaces) // 2] if spaces else len(sentence)
    return f"{sentence[:cut]} {carrier} {sentence[cut:].lstrip()}", cut + 1


def build_cases(sentences: Sequence[str], *, cases: int, negative_cases: int, seed: int) -> list[Case]:
    """`cases` positive cases cycling through entity types and positions, then the negative ones."""
    if not sentences:
        return []
    rng = random.Random(seed)
    values = _Values(seed)
    out = []
    for n in range(cases):
        entity = ENTITIES[n % len(ENTITIES)]
        position = POSITIONS[(n // len(ENTITIES)) % len(POSITIONS)]
        value = getattr(values, entity.lower())()
        carrier = rng.choice(CARRIERS[entity][position])
        sentence = sentences[n % len(sentences)]
        text, at = _place(sentence, carrier.replace("{v}", value), position)
        start = at + carrier.index("{v}")
        out.append(Case(text, ((entity, start, start + len(value), position),), ()))
    for n in range(negative_cases):
        product = rng.choice(PRODUCTS)
        carrier = rng.choice(NEGATIVE_CARRIERS)
        sentence = sentences[(cases + n) % len(sentences)]
        position = POSITIONS[n % len(POSITIONS)]
        text, at = _place(sentence, carrier.replace("{v}", product), position)
        start = at + carrier.index("{v}")
        out.append(Case(text, (), ((start, start + len(product)),)))
    return out


def _covered(start: int, end: int, spans: list[tuple[int, int]], text: str) -> bool:
    """Every non-space character of text[start:end] lies inside a detected span."""
    return all(text[i].isspace() or any(s <= i < e for s, e in spans) for i in range(start, end))


def score_cases(cases: Sequence[Case], detected: Sequence[Sequence]) -> dict:
    """Recall per entity type and position, precision, non-PII words changed, negatives kept."""
    hits, totals, pos_hits, pos_totals = Counter(), Counter(), Counter(), Counter()
    spans_total = spans_on_pii = 0
    words_total = words_changed = 0
    negatives_kept = negatives_total = 0
    for case, found in zip(cases, detected):
        spans = [(f.start, f.end) for f in found]
        for entity, start, end, position in case.pii:
            totals[entity] += 1
            pos_totals[position] += 1
            if _covered(start, end, spans, case.text):
                hits[entity] += 1
                pos_hits[position] += 1
        for s, e in spans:
            spans_total += 1
            spans_on_pii += any(s < pe and ps < e for _, ps, pe, _ in case.pii)
        for word in re.finditer(r"\w+", case.text):
            if any(word.start() < pe and ps < word.end() for _, ps, pe, _ in case.pii):
                continue
            words_total += 1
            words_changed += any(word.start() < e and s < word.end() for s, e in spans)
        for ns, ne in case.negatives:
            negatives_total += 1
            negatives_kept += not any(ns < e and s < ne for s, e in spans)
    metrics = {f"recall_{entity.lower()}": round(hits[entity] / totals[entity], 4) for entity in ENTITIES if totals[entity]}
    metrics.update({f"recall_at_{p}": round(pos_hits[p] / pos_totals[p], 4) for p in POSITIONS if pos_totals[p]})
    metrics.update(
        {
            "cases": sum(totals.values()),
            "negative_cases": negatives_total,
            "precision": round(spans_on_pii / spans_total, 4) if spans_total else 1.0,
            "nonpii_words_changed": round(words_changed / words_total, 5) if words_total else 0.0,
            "negatives_kept": round(negatives_kept / negatives_total, 4) if negatives_total else 1.0,
        }
    )
    return metrics


def run_benchmark(texts: Sequence[str | None], analyzer, *, cases: int, negative_cases: int, seed: int) -> dict:
    """Build the cases from `texts`, run `analyzer` on them and score it."""
    sentences = real_sentences(texts, limit=max(cases + negative_cases, 1), seed=seed)
    built = build_cases(sentences, cases=cases, negative_cases=negative_cases, seed=seed)
    before = analyzer.found_.copy(), dict(vars(analyzer.stats_))
    detected = list(analyzer.analyze([case.text for case in built]))
    analyzer.found_ = before[0]  # the benchmark's findings are not the data's
    vars(analyzer.stats_).update(before[1])
    metrics = score_cases(built, detected)
    metrics["sentences"] = len(sentences)
    return metrics
