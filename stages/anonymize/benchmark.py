"""The labelled PII benchmark: real review sentences with PII injected at known spans.

Only the builder, the value tables and the templates are committed. The cases are built
at run time from real sentences of the stage's own input (the pipeline's train split; the
shared sample in tests), so no review text enters the repository. Everything is seeded.

Values are drawn so that the benchmark does not simply echo the recognizers: person names
come from Faker locales the name lexicon leaves out (see names.LEXICON_LOCALES), in every
shape of name_shapes.NAME_SHAPES (initials, handles, lower case, nicknames, suffixes), as
openers, mid-text and as sign-offs; addresses from several English-speaking locales and
hand-written street types; phones in national layouts and bare digit runs after a contact
cue. Each value is placed at the start, in the middle or at the end of the sentence, often
next to punctuation. Negative cases inject product names, model numbers, quantities and
prices that must stay.

labelled.py reads a user's own labelled JSONL into the same cases, so that
`score_cases` scores the analyzer on their names and formats too.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from stages.anonymize.name_shapes import MIDDLES, NAME_SHAPES, OPENERS, SIGNOFFS, make_name
from stages.anonymize.operators import luhn_check_digit

ENTITIES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "ORDER_NUMBER", "URL", "IP_ADDRESS", "STREET_ADDRESS")
POSITIONS = ("start", "middle", "end")
NAME_LOCALES = ("en_GB", "en_IE", "en_AU", "en_IN", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR")
ADDRESS_LOCALES = ("en_US", "en_CA", "en_IE", "en_AU")

# {v} marks the value. Some carriers have a cue word, some none, many put punctuation next to it.
CARRIERS = {
    "PERSON": {"start": OPENERS, "middle": MIDDLES, "end": SIGNOFFS},
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
    # bare digit runs are phones only after a contact cue (elsewhere they are model numbers)
    "BARE_PHONE_NUMBER": {
        "start": ["Call me at {v}.", "My cell: {v}.", "Text {v} for details.", "My number was {v},"],
        "middle": [", call me at {v},", "(my cell: {v})", "- text me at {v} -", ", the number was {v},"],
        "end": ["Call me at {v}!", "My cell: {v}", "Text {v} for details.", "Their number was {v}.", "Reach me on {v}."],
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
# digit runs that are not phones, with the words that stand next to them in reviews
NUMBER_NEGATIVES = [
    "Model number was {d10}.", "Part number {d10} fits.", "Serial number: {d10}", "ISBN {d13} arrived.",
    "UPC {d12} on the box.", "I ordered {q} of them.", "Paid ${p} for two.", "Call it {q} stars.",
    "It holds {q}mAh, not {q2}mAh.", "SKU {d10} in the listing.", "The item number was {d10}.",
]
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
BARE_PHONE_LAYOUTS = ["##########", "##########", "1##########", "+1##########", "### #######"]
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
    pii: tuple[tuple[str, int, int, str, str], ...]  # entity, start, end, position, shape ("" when unknown)
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

    def person_shaped(self, shape: str) -> str:
        return make_name(self.fakers[self.rng.choice(NAME_LOCALES)], shape, self.rng)

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

    def phone_number(self, bare: bool = False) -> str:
        layout = self.rng.choice(BARE_PHONE_LAYOUTS if bare else PHONE_LAYOUTS)
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


def _inject(sentence: str, carrier: str, value: str, position: str) -> tuple[str, int]:
    text, at = _place(sentence, carrier.replace("{v}", value), position)
    return text, at + carrier.index("{v}")


def _number_negative(rng: random.Random) -> str:
    def digits(n):
        return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))

    return rng.choice(NUMBER_NEGATIVES).format(d10=digits(10), d12=digits(12), d13=digits(13), q=rng.choice(["2", "10", "500", "1000", "10000", "20000"]),
                                               q2=rng.choice(["5000", "12000"]), p=f"{rng.randint(5, 1999)}.{rng.randint(0, 99):02d}")


def build_cases(sentences: Sequence[str], *, cases: int, negative_cases: int, seed: int, person_cases: int = 0) -> list[Case]:
    """`cases` positive cases cycling through entity types and positions, `person_cases` more names
    cycling through the name shapes and positions, then the negative ones (half products, half numbers)."""
    if not sentences:
        return []
    rng = random.Random(seed)
    values = _Values(seed)
    out = []
    for n in range(cases):
        entity = ENTITIES[n % len(ENTITIES)]
        position = POSITIONS[(n // len(ENTITIES)) % len(POSITIONS)]
        shape = ""
        if entity == "PERSON":
            shape = NAME_SHAPES[(n // len(ENTITIES)) % len(NAME_SHAPES)]
            value, carriers = values.person_shaped(shape), CARRIERS["PERSON"]
        elif entity == "PHONE_NUMBER" and (n // len(ENTITIES)) % 4 == 3:  # a quarter are bare digit runs
            value, carriers, shape = values.phone_number(bare=True), CARRIERS["BARE_PHONE_NUMBER"], "bare"
        else:
            value, carriers = getattr(values, entity.lower())(), CARRIERS[entity]
        text, start = _inject(sentences[n % len(sentences)], rng.choice(carriers[position]), value, position)
        out.append(Case(text, ((entity, start, start + len(value), position, shape),), ()))
    for n in range(person_cases):
        shape = NAME_SHAPES[n % len(NAME_SHAPES)]
        position = POSITIONS[(n // len(NAME_SHAPES)) % len(POSITIONS)]
        value = values.person_shaped(shape)
        text, start = _inject(sentences[(cases + n) % len(sentences)], rng.choice(CARRIERS["PERSON"][position]), value, position)
        out.append(Case(text, (("PERSON", start, start + len(value), position, shape),), ()))
    for n in range(negative_cases):
        sentence = sentences[(cases + person_cases + n) % len(sentences)]
        position = POSITIONS[n % len(POSITIONS)]
        if n % 2:
            carrier = _number_negative(rng)
            text, at = _place(sentence, carrier, position)
            negatives = tuple((at + m.start(), at + m.end()) for m in re.finditer(r"\d+(?:\.\d+)?", carrier))
        else:
            product = rng.choice(PRODUCTS)
            text, start = _inject(sentence, rng.choice(NEGATIVE_CARRIERS), product, position)
            negatives = ((start, start + len(product)),)
        out.append(Case(text, (), negatives))
    return out


def _covered(start: int, end: int, spans: list[tuple[int, int]], text: str) -> bool:
    """Every non-space character of text[start:end] lies inside a detected span."""
    return all(text[i].isspace() or any(s <= i < e for s, e in spans) for i in range(start, end))


def score_cases(cases: Sequence[Case], detected: Sequence[Sequence]) -> dict:
    """Recall per entity type, position and name shape, precision, non-PII words changed, negatives kept."""
    hits, totals = Counter(), Counter()
    spans_total = spans_on_pii = 0
    words_total = words_changed = 0
    negatives_kept = negatives_total = 0
    for case, found in zip(cases, detected):
        spans = [(f.start, f.end) for f in found]
        for entity, start, end, position, shape in case.pii:
            hit = _covered(start, end, spans, case.text)
            groups = [entity, f"at_{position}"] + ([f"{entity.lower()}_{shape}"] if shape else [])
            for group in groups:
                totals[group] += 1
                hits[group] += hit
        for s, e in spans:
            spans_total += 1
            spans_on_pii += any(s < pe and ps < e for _, ps, pe, *_ in case.pii)
        for word in re.finditer(r"\w+", case.text):
            if any(word.start() < pe and ps < word.end() for _, ps, pe, *_ in case.pii):
                continue
            words_total += 1
            words_changed += any(word.start() < e and s < word.end() for s, e in spans)
        for ns, ne in case.negatives:
            negatives_total += 1
            negatives_kept += not any(ns < e and s < ne for s, e in spans)
    entities = [e for e in dict.fromkeys([*ENTITIES, *(p[0] for c in cases for p in c.pii)]) if totals[e]]
    metrics = {f"recall_{entity.lower()}": round(hits[entity] / totals[entity], 4) for entity in entities}
    metrics.update({f"recall_{group}": round(hits[group] / totals[group], 4) for group in sorted(totals) if group not in entities})
    positives = sum(totals[e] for e in entities)
    metrics.update(
        {
            "cases": positives,
            "cases_per_entity": {entity.lower(): totals[entity] for entity in entities},
            "recall_all": round(sum(hits[e] for e in entities) / positives, 4) if positives else 1.0,
            "negative_cases": sum(1 for case in cases if case.negatives),
            "negative_spans": negatives_total,
            "precision": round(spans_on_pii / spans_total, 4) if spans_total else 1.0,
            "nonpii_words": words_total,
            "nonpii_words_changed": round(words_changed / words_total, 5) if words_total else 0.0,
            "negatives_kept": round(negatives_kept / negatives_total, 4) if negatives_total else 1.0,
        }
    )
    return metrics


def leak_estimate(benchmark: dict) -> dict:
    """The share of labelled PII values the analyzer missed, per entity and over all, with the benchmark's size.

    This, not the re-occurrence count, estimates what leaks: a missed value is left in
    the output verbatim. It is an estimate from `cases` labelled values, not a count.
    """
    out = {"benchmark_cases": benchmark["cases"], "pii_missed_share": round(1 - benchmark["recall_all"], 4)}
    for entity, n in benchmark["cases_per_entity"].items():
        out[f"{entity}_cases"] = n
        out[f"{entity}_missed_share"] = round(1 - benchmark[f"recall_{entity}"], 4)
    return out


def run_benchmark(texts: Sequence[str | None], analyzer, *, cases: int, negative_cases: int, seed: int, person_cases: int = 0) -> dict:
    """Build the cases from `texts`, run `analyzer` on them and score it."""
    sentences = real_sentences(texts, limit=max(cases + person_cases + negative_cases, 1), seed=seed)
    built = build_cases(sentences, cases=cases, negative_cases=negative_cases, seed=seed, person_cases=person_cases)
    metrics = score_with(analyzer, built)
    metrics["sentences"] = len(sentences)
    return metrics


def score_with(analyzer, cases: Sequence[Case]) -> dict:
    """Run `analyzer` on the cases and score it; the analyzer's own counts are left as they were."""
    before = analyzer.found_.copy(), dict(vars(analyzer.stats_))
    detected = list(analyzer.analyze([case.text for case in cases]))
    analyzer.found_ = before[0]  # the benchmark's findings are not the data's
    vars(analyzer.stats_).update(before[1])
    return score_cases(cases, detected)
