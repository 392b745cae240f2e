"""Person names in the shapes reviewers write them, and the openers and sign-offs that carry them.

Shared by the labelled benchmark (benchmark.py) and the name-survival benchmark
(benchmarks/bench_names.py). Names come from Faker's person providers of the given
locales; the shapes are string transformations of them (case, initials, handles,
nicknames, suffixes), so every name is generated, none is real.
"""

from __future__ import annotations

import random

# The shapes a user found surviving on real reviewer names (issue 12), one generator each.
NAME_SHAPES = ("first_last", "initials", "single_cap", "single_lower", "lower_multi", "handle", "multi_part")

# Where a name sits in a review, as reviewers put it there; {v} marks the name.
OPENERS = ["{v} here.", "{v} here,", "This is {v}.", "This is {v} -", "Hi, {v} here.", "Hi all, this is {v}.",
           "Hello! {v} here:", "{v}:", "Hi, I'm {v}.", "{v} and I both use it.", "My wife {v} says:"]
MIDDLES = ["- {v} -", "- {v}:", "— {v}.", "(thanks {v})", ", as {v} said,", "my daughter {v} and I", "- my husband {v} -"]
SIGNOFFS = ["- {v}", "-{v}", "~ {v}", "Thanks, {v}", "Thanks, {v}!", "Thanks {v}", "Thank you, {v}", "Cheers, {v}",
            "Regards, {v}", "Love, {v}", "Signed, {v}.", "\n{v}", "Thanks!\n{v}", "My son {v} agrees.", "-- {v}"]


def _initials(rng: random.Random, first: str, last: str) -> str:
    form = rng.randrange(5)
    if form == 0:
        return f"{first[0]}. {last}"  # "J. Smith"
    if form == 1:
        return f"{first} {last[0]}."  # "Sherri C."
    if form == 2:
        return f"{first[0]}.{rng.choice('ABCDEFGHJKLMNPRSTW')}. {last}"  # "J.R. Smith"
    if form == 3:
        return f"{first} {last[0]}"  # "Sherri C" (no full stop)
    return f"{first[0]}{rng.choice('ABCDEFGHJKLMNPRSTW')}"  # "JR": bare initials


def _handle(rng: random.Random, first: str, last: str, user_name: str) -> str:
    f, l = _ascii(first).lower() or "user", _ascii(last).lower() or "name"
    form = rng.randrange(6)
    if form == 0:
        return f"{f[: rng.randint(3, 6)]}{rng.randint(1, 999)}"  # "maddy927"
    if form == 1:
        return f"{f}_{l}"  # "john_smith"
    if form == 2:
        return f"{f.capitalize()}{l.capitalize()}"  # "JohnSmith"
    if form == 3:
        return f"{f[0]}{l}{rng.randint(10, 99)}"  # "jsmith88"
    if form == 4:
        return f"{f.capitalize()}_{l[0].upper()}"  # "Maddy_B"
    return _ascii(user_name) or f"{f}{l}"  # Faker's own ("vfowler", "ines18")


def _multi_part(rng: random.Random, first: str, middle: str, last: str) -> str:
    form = rng.randrange(6)
    if form == 0:
        return f"{first} {middle} {last}"  # three words
    if form == 1:
        return f"{first} {last}".upper()  # ALL CAPS
    if form == 2:
        return f'{first} "{middle[:4].capitalize()}" {last}'  # a quoted nickname
    if form == 3:
        return f"{first} {middle[0]}. {last} {rng.choice(['Jr.', 'Sr.', 'III', 'Jr'])}"  # suffix
    if form == 4:
        return f'{first[0]}. {middle[0]}. "{middle[:4].capitalize()}" {last} Jr.'  # initials, nickname and suffix
    return f"{first} {middle} {rng.choice(['de la', 'van der', 'da', 'von'])} {last}".upper()


def _ascii(text: str) -> str:
    return "".join(c for c in text if c.isascii() and c.isalnum())


def make_name(fake, shape: str, rng: random.Random) -> str:
    """A generated person name of `shape` from the Faker instance `fake`."""
    first, middle, last = fake.first_name(), fake.first_name(), fake.last_name()
    if shape == "first_last":
        return f"{first} {last}"
    if shape == "initials":
        return _initials(rng, first, last)
    if shape == "single_cap":
        return first
    if shape == "single_lower":
        return first.lower()
    if shape == "lower_multi":
        return (f"{first} {last}" if rng.random() < 0.7 else f"{first} {middle} {last}").lower()
    if shape == "handle":
        return _handle(rng, first, last, fake.user_name())
    if shape == "multi_part":
        return _multi_part(rng, first, middle, last)
    raise ValueError(f"unknown name shape {shape!r}; choose from {NAME_SHAPES}")
