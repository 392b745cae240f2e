"""Operators per entity type, and the keyed, consistent Faker surrogates behind `replace`.

A surrogate depends only on the key, the entity type and the original value: the same
value gets the same surrogate everywhere in a run and in every run with that key, and
a model trained on the output still sees that a name recurs. Card surrogates pass the
Luhn check, phone surrogates keep the original's layout, and no surrogate contains a
detected original value as a word (so their re-occurrence count can hold it to zero).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Collection

from stages.errors import ParamsError


def keyed_digest(key: bytes, purpose: str, value: str) -> bytes:
    """HMAC-SHA256 of a value under the key, domain-separated by purpose."""
    return hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()


def luhn_check_digit(digits: str) -> str:
    """The Luhn check digit that makes `digits + check` valid."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """True when the digits of `number` pass the Luhn check."""
    digits = "".join(c for c in number if c.isdigit())
    return len(digits) > 1 and luhn_check_digit(digits[:-1]) == digits[-1]


def _reshape(template: str, digits: str) -> str:
    """Put `digits` into the digit positions of `template`, keeping every other character."""
    it = iter(digits)
    return "".join(next(it) if c.isdigit() else c for c in template)


def _match_case(original: str, surrogate: str) -> str:
    if original.islower():
        return surrogate.lower()
    if original.isupper() and len(original) > 1:
        return surrogate.upper()
    return surrogate


# Faker draws before the fallbacks; each draw is a fresh keyed seed.
FAKER_ATTEMPTS = 20
# Name suffixes kept as written: they say nothing about who someone is.
NAME_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv", "phd", "md"})
_HANDLE = re.compile(r"^(?=.*(?:\d|_|[a-z][A-Z]))[A-Za-z0-9_.]+$")


class Surrogates:
    """Realistic, keyed, consistent replacement values per entity type.

    The search always ends: `FAKER_ATTEMPTS` keyed Faker draws, then (for a person) an
    initial-free pseudonym of full first and last names, then a keyed tag
    (`Person-3fa9c1`) lengthened until it avoids every forbidden value, which a finite
    set must allow. Values that needed a fallback are counted in `fallbacks_`.
    """

    def __init__(self, key: bytes, forbidden: Collection[str] = ()):
        from faker import Faker

        self._key = key
        self._faker = Faker("en_US")
        self._cache: dict[tuple[str, str], str] = {}
        self._forbidden = _word_matcher(forbidden)
        self._attempt = 0
        self._initials = True
        self.fallbacks_: Counter = Counter()  # entity -> values that needed a fallback
        self.fallback_values_: list[tuple[str, str]] = []  # (entity, value) of those; raw PII, memory only

    def _ok(self, candidate: str, value: str) -> bool:
        return candidate != value and not (self._forbidden and self._forbidden.search(candidate))

    def get(self, entity: str, value: str) -> str:
        """The surrogate of `value` (an `entity`), the same on every call."""
        cache_key = (entity, value)
        if cache_key not in self._cache:
            self._cache[cache_key] = self._search(entity, value)
        return self._cache[cache_key]

    def _search(self, entity: str, value: str) -> str:
        make = getattr(self, f"_{entity.lower()}")
        norm = self._norm(entity, value)
        for attempt in range(FAKER_ATTEMPTS):
            seed = int.from_bytes(keyed_digest(self._key, f"surrogate:{entity}:{attempt}", norm)[:8], "big")
            self._attempt = attempt
            candidate = make(value, random.Random(seed), seed)
            if self._ok(candidate, value):
                return candidate
        self.fallbacks_[entity] += 1
        self.fallback_values_.append((entity, value))
        if entity == "PERSON":  # initials are the usual collision: single letters are detected values too
            self._initials = False
            try:
                for attempt in range(FAKER_ATTEMPTS, 2 * FAKER_ATTEMPTS):
                    self._attempt = attempt
                    candidate = self._person(value, None, 0)
                    if self._ok(candidate, value):
                        return candidate
            finally:
                self._initials = True
        digest = keyed_digest(self._key, f"tag:{entity}", norm).hex()
        prefix = entity.split("_")[0].capitalize()
        for width in range(6, len(digest) + 1):
            candidate = f"{prefix}-{digest[:width]}"
            if self._ok(candidate, value):
                return candidate
        n = 0  # a forbidden set holding every prefix of the digest: count on past it
        while not self._ok(f"{prefix}-{digest}-{n}", value):
            n += 1
        return f"{prefix}-{digest}-{n}"

    @staticmethod
    def _norm(entity: str, value: str) -> str:
        return value.lower() if entity in ("PERSON", "EMAIL_ADDRESS", "URL", "STREET_ADDRESS") else value

    def _seeded(self, seed: int):
        self._faker.seed_instance(seed)
        return self._faker

    def _person(self, value: str, rng: random.Random | None, seed: int) -> str:
        tokens = value.split()
        if len(tokens) == 1 and _HANDLE.match(value):  # "maddy927", "JohnSmith": a handle for a handle
            tseed = int.from_bytes(keyed_digest(self._key, f"person-handle:{self._attempt}", value.lower())[:8], "big")
            fake = self._seeded(tseed)
            return f"{fake.user_name()}{random.Random(tseed).randint(1, 999)}"
        out = []
        for i, token in enumerate(tokens):
            # keep quotes and commas around a token ('"Bob"', "Smith,"); replace the word inside
            lead, word, trail = re.match(r"^(\W*)(.*?)(\W*)$", token).groups()
            if token.endswith(".") and len(word) <= 2 and word.isalpha():
                word, trail = word + ".", trail[1:]
            bare = word.rstrip(".").lower()
            if not bare or bare in NAME_SUFFIXES:
                out.append(token)
                continue
            # each token on its own, so "John Smith" and "John" share the first name
            tseed = int.from_bytes(keyed_digest(self._key, f"person-token:{self._attempt}", bare)[:8], "big")
            fake = self._seeded(tseed)
            initial = len(bare) == 1 or (word.endswith(".") and len(word) <= 3)
            if initial and self._initials:
                new = random.Random(tseed).choice(string.ascii_uppercase) + ("." if word.endswith(".") else "")
            elif i == len(tokens) - 1 and len(tokens) > 1:
                new = fake.last_name()
            else:
                new = fake.first_name()
            out.append(lead + _match_case(word, new) + trail)
        return " ".join(out)

    def _email_address(self, value: str, rng: random.Random, seed: int) -> str:
        fake = self._seeded(seed)
        return f"{fake.user_name()}{rng.randint(1, 99)}@{fake.free_email_domain()}"

    def _phone_number(self, value: str, rng: random.Random, seed: int) -> str:
        # keep "+CC", the layout and every group's leading 0 (a trunk prefix); draw the rest
        keep = re.match(r"\+\d{1,3}", value)
        head, body = (keep.group(), value[keep.end():]) if keep else ("", value)
        out, group_start = [], True
        for c in body:
            if c.isdigit():
                out.append("0" if group_start and c == "0" else str(rng.randint(2, 9) if group_start else rng.randint(0, 9)))
                group_start = False
            else:
                out.append(c)
                group_start = c in " -.()/"
        return head + "".join(out)

    def _credit_card(self, value: str, rng: random.Random, seed: int) -> str:
        digits = [c for c in value if c.isdigit()]
        body = digits[0] + "".join(str(rng.randint(0, 9)) for _ in digits[1:-1])
        return _reshape(value, body + luhn_check_digit(body))

    def _order_number(self, value: str, rng: random.Random, seed: int) -> str:
        return _reshape(value, "".join(str(rng.randint(0, 9)) for c in value if c.isdigit()))

    def _url(self, value: str, rng: random.Random, seed: int) -> str:
        fake = self._seeded(seed)
        scheme = re.match(r"(?i)https?://", value)
        www = "www." if re.match(r"(?i)(https?://)?www\.", value) else ""
        return f"{scheme.group() if scheme else ''}{www}{fake.domain_name()}/{fake.user_name()}"

    def _ip_address(self, value: str, rng: random.Random, seed: int) -> str:
        fake = self._seeded(seed)
        return fake.ipv6() if ":" in value else fake.ipv4_public()

    def _street_address(self, value: str, rng: random.Random, seed: int) -> str:
        fake = self._seeded(seed)
        out = fake.street_address()
        if "," in value:
            out += f", {fake.city()}, {fake.state_abbr()} {fake.zipcode()}"
        return out


def _word_matcher(values: Collection[str]) -> re.Pattern | None:
    """One regex matching any of `values` as a whole word (case-sensitive), longest first."""
    values = sorted({v for v in values if v and v.strip()}, key=len, reverse=True)
    if not values:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, values)) + r")(?!\w)")


class Operator:
    """Turns one detected value into its output text."""

    name = ""

    def __init__(self, *, key: bytes, surrogates: Surrogates, mask_char: str):
        self.key, self.surrogates, self.mask_char = key, surrogates, mask_char

    def __call__(self, entity: str, value: str) -> str:
        raise NotImplementedError


class Replace(Operator):
    """A realistic, consistent Faker surrogate."""

    name = "replace"

    def __call__(self, entity, value):
        return self.surrogates.get(entity, value)


class Redact(Operator):
    """Removes the value."""

    name = "redact"

    def __call__(self, entity, value):
        return ""


class Mask(Operator):
    """Masks every character except the spaces and separators."""

    name = "mask"

    def __call__(self, entity, value):
        return "".join(self.mask_char if c.isalnum() else c for c in value)


class Hash(Operator):
    """A keyed HMAC-SHA256 of the value (16 hex chars): consistent, not reversible without the key."""

    name = "hash"

    def __call__(self, entity, value):
        return keyed_digest(self.key, f"hash:{entity}", value).hex()[:16]


class Tag(Operator):
    """The entity type in angle brackets, e.g. `<PERSON>`."""

    name = "tag"

    def __call__(self, entity, value):
        return f"<{entity}>"


OPERATORS: dict[str, type[Operator]] = {cls.name: cls for cls in (Replace, Redact, Mask, Hash, Tag)}


def build_operators(
    choice: Callable[[str], str], entities: Collection[str], *, key: bytes, surrogates: Surrogates, mask_char: str
) -> dict[str, Operator]:
    """Operator per entity from `choice(entity) -> operator name`."""
    out = {}
    for entity in entities:
        name = choice(entity)
        if name not in OPERATORS:
            raise ParamsError(f"operators.{entity.lower()}: unknown operator {name!r}; choose one of {list(OPERATORS)}")
        out[entity] = OPERATORS[name](key=key, surrogates=surrogates, mask_char=mask_char)
    return out
