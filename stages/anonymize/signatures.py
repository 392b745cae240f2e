"""Names where reviewers sign: openers ("maddy927 here.", "This is Jen K."), sign-offs ("Thanks, vanel bernard",
"- J. R. "Bobby" Smith Jr.") and asides after a dash ("... - Hazel S - ...").

In these frames a name comes in any shape (handles, lower case, initials, quoted
nicknames, suffixes, ALL CAPS), so the frame, not the word, says it is a name. The frame
must close where a name would end (punctuation, "here", a line break or the end), and the
run of words inside it must read as a name: no function word, brand or everyday
adjective/verb, and at least one word that only a name would be (a known first or last
name, a handle, an initial or a word no dictionary lists). A dash in mid-text is a weaker
frame, so there every word must be name-like on its own.
"""

from __future__ import annotations

import functools
import re

from stages.anonymize.names import (
    AMBIGUOUS_FIRST, BRAND_WORDS, CUES, GREETING_WORDS, NAME_SUFFIXES, NOT_NAMES, PARTICLES, _stop_words, _WORD, is_common_word, name_tables,
)

_INITIALS = r"[A-ZÀ-Þ]\.(?:[ ]?[A-ZÀ-Þ]\.)*"
_QUOTED = r"[\"“'‘][^\W\d_][^\W\d_'\-]*[\"”'’]"
# maddy927, Raul73, john_smith, Alan_R, JohnSmith (not iPhone, A2172, QC35: models start upper-case with digits)
HANDLE = r"(?:[A-Za-z][A-Za-z0-9]*_[A-Za-z0-9_]*[A-Za-z0-9]|[A-Za-z][a-z]{2,}\d{1,5}|(?=\w{6})[A-Z]?[a-z]+(?:[A-Z][a-z]+)+)"
_SUFFIX = r"(?:Jr|Sr|JR|SR|II|III|IV)\.?"
_TOKEN = rf"(?:{_INITIALS}|{_QUOTED}|{_SUFFIX}(?![\w])|{HANDLE}(?![\w])|{_WORD})"
_NAME = rf"(?P<name>{_TOKEN}(?:[ \t]+{_TOKEN}){{0,6}})"
_OPEN = r"(?:^|(?<=\n)|(?<=[.!?][ ]))[ \t]*"
_GREETING = r"(?:(?i:hi|hello|hey|greetings)(?:[ ]+(?i:all|everyone|there|folks|guys|y'all))?[ ]*[,!.]*[ ]*)?"
_INTRO = r"(?i:this is|it's|it is|i'm|i am|my name is|my name's|name's)"
_SIGNOFF = r"(?i:thanks|thank you|thanks again|thx|cheers|regards|best regards|kind regards|best wishes|best|sincerely|signed|love|xoxo|peace)"
_END = r"[ \t]*[.!]*[ \t]*(?=\n|$)"
_SAYS = r"(?:says|said|agrees|agreed|loves|likes|uses|bought|got|thinks|mentioned|noted|suggested|and I|and me)\b"

HANDLE_RE = re.compile(rf"^{HANDLE}$")
_VERBS = frozenset("says said agrees agreed loves likes uses bought got thinks mentioned noted suggested".split())


# a dash before a name: a hyphen or tilde not inside a word ("10-foot"), or an en/em dash anywhere ("charm— Jo")
_DASH = r"(?:(?<![\w\-~])[-~]{1,2}|[–—]{1,2})"
_CLOSES = re.compile(r"[ \t]*(?:[.,!?:;\-–—)(]|\n|$)")
_CLOSES_OR_SAYS = re.compile(rf"[ \t]*(?:[.,!?:;\-–—)(]|\n|$)|[ \t]+{_SAYS}")


@functools.lru_cache(maxsize=1)
def _frames() -> tuple[tuple[re.Pattern, str, str, re.Pattern | None], ...]:
    """(pattern, strength, trim, close) per frame.

    strength: "strong" frames trust the frame ("cue": even more, after "my wife"), "mid"
    ones need name-like words on their own. trim: "" (the frame closes on both sides),
    "left" (leading words that are no name are dropped: "... and michele speri said") or
    "right" (the name is the longest run that `close` follows: "This is Jen K. Love it.").
    """
    return (
        (re.compile(rf"{_OPEN}{_GREETING}{_NAME}[ \t]+(?i:here)\b"), "strong", "", None),  # "maddy927 here."
        (re.compile(rf"{_OPEN}{_GREETING}{_INTRO}[ \t]+{_NAME}"), "strong", "right", _CLOSES),  # "This is Jen K."
        (re.compile(rf"(?:^|(?<=[\s.!?,;:)]))(?i:{_SIGNOFF})[ \t]*[,!.:\-–—]*[ \t\n]*{_NAME}{_END}"), "strong", "left", None),
        (re.compile(rf"{_DASH}[ \t]*{_NAME}{_END}"), "strong", "", None),  # "- Jen K." at the end
        (re.compile(rf"\n[ \t]*{_NAME}[ \t]*[.!]?[ \t]*$"), "strong", "", None),  # a last line that is only a name
        (re.compile(rf"\b(?i:{CUES})[ \t]+{_NAME}"), "cue", "right", _CLOSES_OR_SAYS),  # "my son derek142 agrees"
        (re.compile(rf"\((?i:thanks|thank you|thx|via|h/t|credit)[ \t,:]*{_NAME}[ \t]*\)"), "strong", "", None),  # "(thanks mar76)"
        (re.compile(rf"\b(?i:as|like)[ \t]+{_NAME}[ \t]+(?:said|says|mentioned|noted|suggested|pointed out)\b"), "strong", "", None),
        (re.compile(rf"{_OPEN}{_NAME}[ \t]+and I\b"), "strong", "", None),  # "paulette foucher and I both use it"
        (re.compile(rf"^[ \t]*{_NAME}:[ \t]"), "strong", "", None),  # "bhanumati sarin: It's about ..." opening the text
        (re.compile(rf"{_DASH}[ \t]*{_NAME}[ \t]*(?:[-–—]{{1,2}}(?=\s|$)|:)"), "strong", "", None),  # "— daisy —", "- max:"
        (re.compile(rf"{_DASH}[ \t]*{_NAME}"), "mid", "right", _CLOSES),  # "- Hazel S, ..." mid-text
        (re.compile(rf"(?<=\n){_NAME}:[ \t]"), "mid", "", None),  # "Diana: works fine" opening a line
    )


# "... and michele speri said": found from the verb back (a name pattern tried at every word costs 20x more)
_SAID = re.compile(r"[ \t]+(?:said|says|agrees|agreed|mentioned|suggested)\b")
_NAME_BEFORE = re.compile(rf"(?<![\w'’]){_NAME}$")


def _kind(token: str, strength: str) -> str:
    bare = token.strip("\"“”'‘’")
    if bare == "I":
        return "word"  # the pronoun
    if re.fullmatch(_INITIALS, bare) or (len(bare) == 1 and bare.isupper()):
        return "initial"
    if strength != "mid" and len(bare) == 2 and bare.isupper() and bare.lower() not in _stop_words() | NOT_NAMES:
        return "initial"  # "LS here", "my wife JR says"
    if bare.rstrip(".").lower() in NAME_SUFFIXES:
        return "suffix"
    if bare.lower() in PARTICLES:
        return "particle"
    if HANDLE_RE.match(bare) and not bare.isalpha():
        return "handle"
    if HANDLE_RE.match(bare) and any(c.isupper() for c in bare[1:]):
        return "handle"  # camelCase
    return "word"


def reads_as_name(tokens: list[str], strength: str) -> bool:
    """Whether a run of tokens inside a frame of `strength` reads as a person's name."""
    first, last = name_tables()
    stop = _stop_words()
    kinds = [_kind(t, strength) for t in tokens]
    if kinds[0] in ("suffix", "particle") or kinds[-1] == "particle":
        return False
    telling = False  # a token only a name would be
    everyday = []  # for each everyday word, whether it is capitalised
    for token, kind in zip(tokens, kinds):
        if kind in ("initial", "handle"):
            telling = True
            continue
        if kind != "word":
            continue
        bare = token.strip("\"“”'‘’")
        low = bare.lower()
        capital = bare[:1].isupper()
        # a known name that is also an everyday verb or adjective ("small", "made", "Short") tells nothing on its own
        plain = not is_common_word(low, nouns=False)
        # in a strong frame any first name counts ("Thanks, peter"), mid-text only one that is no everyday word
        known = (low in first and (strength != "mid" or (low not in AMBIGUOUS_FIRST and (capital or plain)))) or (
            low in last and (not is_common_word(low) or (capital and plain)))
        if low in stop or low in BRAND_WORDS or low in _VERBS or low in GREETING_WORDS or (
                low in NOT_NAMES and not (capital and (low in first or low in last))):
            return False  # "Guy", "Little" may be names where "guy", "little" are not
        if known or not is_common_word(low) or (strength == "cue" and capital):
            telling = True  # after "my wife", any capitalised word is a name ("My wife Harsh says")
            continue
        if strength == "mid":  # mid-text only names that are everyday words too ("Mark", "barnes")
            everyday.append((low in first or low in last) and (capital or plain))
        else:  # capitalised words, nouns and names ("Kick L. van den Berg", "rachael shepherd"); after "my son" any word
            everyday.append(capital or plain or low in first or low in last or strength == "cue")
    # everyday words pass only next to a telling word, and never alone
    return telling and all(everyday) and len(everyday) < len(tokens)


def _closed(text: str, end: int, close: re.Pattern) -> bool:
    """A name may end at `end`: `close` follows, or its last token is an initial whose full stop ends the sentence."""
    return bool(close.match(text, end)) or (text[end - 1] == "." and text[end : end + 1] in (" ", "\t"))


def _matches(text: str):
    """(match, strength, trim, close) of every frame, the name-before-a-verb one included."""
    for pattern, strength, trim, close in _frames():
        for m in pattern.finditer(text):
            yield m, strength, trim, close
    for verb in _SAID.finditer(text):
        window = max(0, verb.start() - 200)
        m = _NAME_BEFORE.search(text, window, verb.start())
        if m:
            yield m, "mid", "left", None


def find_signatures(text: str) -> list[tuple[int, int]]:
    """(start, end) of names in openers, sign-offs and dash asides."""
    found = []
    for m, strength, trim, close in _matches(text):
        start = m.start("name")
        tokens = [(t.start() + start, t.group()) for t in re.finditer(r"\S+", m.group("name"))]
        if trim == "left":
            runs = [tokens[i:] for i in range(len(tokens))]
        elif trim == "right":
            runs = [tokens[:j] for j in range(len(tokens), 0, -1)
                    if _closed(text, tokens[j - 1][0] + len(tokens[j - 1][1]), close)]
        else:
            runs = [tokens]
        for run in runs:
            if run and reads_as_name([t for _, t in run], strength):
                found.append((run[0][0], run[-1][0] + len(run[-1][1])))
                break
    return found
