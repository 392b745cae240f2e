"""The recognizers: Presidio's where they fit the review formats, ours where it has none or misses.

Every pattern that must not fold case says so inline with `(?-i:...)`, because Presidio
compiles patterns with IGNORECASE.
"""

from __future__ import annotations

import functools
import re

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, EmailRecognizer, IpRecognizer

from stages.anonymize.names import NameRecognizer


@functools.lru_cache(maxsize=1)
def offline_tld_extractor():
    """A tldextract extractor that uses its bundled suffix list and never fetches one."""
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, validating domains with the offline suffix list."""

    def validate_result(self, pattern_text: str) -> bool:  # noqa: D102
        return offline_tld_extractor()(pattern_text).fqdn != ""


class OrderNumberRecognizer(PatternRecognizer):
    """Amazon order numbers: ###-#######-#######."""

    PATTERNS = [
        Pattern("amazon order", r"(?<![\w-])\d{3}-\d{7}-\d{7}(?![\w-])", 0.95),
        Pattern("amazon order, spaced", r"(?<![\w-])\d{3} \d{7} \d{7}(?![\w-])", 0.85),
        Pattern("amazon order, run together", r"(?<![\w-])\d{17}(?![\w-])", 0.5),
    ]

    def __init__(self):
        super().__init__(supported_entity="ORDER_NUMBER", patterns=self.PATTERNS, name="OrderNumberRecognizer",
                         context=["order"])


class ReviewPhoneRecognizer(PatternRecognizer):
    """Phone numbers as reviewers write them: North American, international (+CC) and national formats."""

    PATTERNS = [
        Pattern("north american", r"(?<![\w+\-.])(?:\+?1[ .\-]?)?(?:\(\d{3}\)|\d{3})[ .\-]?\d{3}[ .\-]\d{4}(?![\w\-])", 0.7),
        Pattern("north american, digits", r"(?<![\w+\-.])(?:\+?1[ .\-]?)?(?:\(\d{3}\)[ ]?)\d{3}\d{4}(?![\w\-])", 0.7),
        Pattern("international", r"(?<![\w+])\+\d{1,3}(?:[ .\-]?\(?0?\)?[ .\-]?)?(?:\(?\d{1,5}\)?[ .\-/]?){1,5}\d{2,6}(?![\w\-])", 0.75),
        Pattern("uk national", r"(?<![\w+\-.])0\d{2,4}[ \-]\d{3,4}[ \-]?\d{3,4}(?![\w\-])", 0.6),
        Pattern("uk mobile", r"(?<![\w+\-.])07\d{3}[ ]?\d{6}(?![\w\-])", 0.6),
        Pattern("de national", r"(?<![\w+\-.])0\d{2,5}[ ]?/[ ]?\d{3,9}(?:-\d{1,5})?(?![\w\-])", 0.6),
        Pattern("fr national", r"(?<![\w+\-.])0[1-9](?:[ .]\d{2}){4}(?![\w\-])", 0.65),
        Pattern("in mobile", r"(?<![\w+\-.])[6-9]\d{4}[ \-]\d{5}(?![\w\-])", 0.55),
    ]

    def __init__(self):
        super().__init__(supported_entity="PHONE_NUMBER", patterns=self.PATTERNS, name="ReviewPhoneRecognizer",
                         context=["phone", "call", "text", "number", "tel", "mobile", "cell", "whatsapp"])

    def validate_result(self, pattern_text: str) -> bool:  # noqa: D102
        digits = [c for c in pattern_text if c.isdigit()]
        return 7 <= len(digits) <= 15 and len(set(digits)) > 1


# Words that make a digit run a product or record number, not a phone ("model number was 1234567890").
NOT_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:model|part|serial|item|tracking|sku|upc|ean|isbn|asin|imei|confirmation|ticket|"
    r"invoice|catalog|lot|batch|version|firmware|rma)\b[^.!?\n]{0,12}$"
)


class ContactPhoneRecognizer(EntityRecognizer):
    """Unformatted phone numbers ("5551234567", "785 4973348") right after a contact cue: "call me at",
    "my cell:", "text ... for details", "the number was". Without a cue a bare digit run is a model
    number, a quantity or an id, and stays."""

    CUE = (
        r"(?i:\b(?:call(?:[ ]+me)?|text(?:[ ]+me)?|txt|sms|phone|cell(?:[ ]+phone)?|mobile|tel|telephone|whatsapp|"
        r"reach(?:[ ]+me)?|contact(?:[ ]+me)?|ring(?:[ ]+me)?|number|no\.)\b)"
    )
    PATTERN = re.compile(
        CUE + r"(?:[ ]+(?i:is|was|at|on|me|us|to|number|no\.?))*[ ]*[:#\-]?[ ]*"
        r"(?P<num>\+?\d(?:[ \-.]?\d){6,14})(?![\w]|[.,]\d)"
    )

    def __init__(self):
        super().__init__(supported_entities=["PHONE_NUMBER"], name="ContactPhoneRecognizer", supported_language="en")

    def load(self) -> None:  # noqa: D102 (nothing to load)
        pass

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        from presidio_analyzer import RecognizerResult

        out = []
        for m in self.PATTERN.finditer(text):
            digits = [c for c in m.group("num") if c.isdigit()]
            if not 7 <= len(digits) <= 15 or len(set(digits)) == 1:
                continue
            if NOT_PHONE_CONTEXT.search(text, 0, m.start()) or text[max(0, m.start() - 1) : m.start()] == "$":
                continue
            out.append(RecognizerResult("PHONE_NUMBER", m.start("num"), m.end("num"), 0.8,
                                        recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                                              RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return out


_STREET_TYPES = (
    "street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|terrace|ter|way|"
    "circle|cir|parkway|pkwy|highway|hwy|trail|trl|square|sq|loop|crescent|cres|close|row|walk|grove|"
    "gardens|park|hill|hills|heights|ridge|run|path|pike|plaza|alley|crossing|point|pointe|view|"
    "meadow|meadows|mews|green|rise|vale|wharf|estate|common|commons|mall|center|centre|junction|"
    "expressway|freeway|turnpike|causeway|bypass|pass|bend|cove|creek|falls|fork|forks|harbor|island|"
    "landing|mill|mills|orchard|spring|springs|station|summit|valley|village|ville|vista|well|wells"
)
_STREET_NAME_WORD = r"(?:[A-Z][A-Za-z'\-]*|\d{1,3}(?:st|nd|rd|th))"
_UNIT = r"(?:,?[ ](?i:apt|apartment|suite|ste|unit|flat|#|no)\.?[ ]?#?\d{1,6}[A-Za-z]?)?"
_CITY_ZIP = r"(?:,[ ][A-Z][a-z]+(?:[ ][A-Z][a-z]+){0,2},?[ ](?:[A-Z]{2}[ ]\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]?[ ]\d[A-Z]{2}))?"


@functools.lru_cache(maxsize=1)
def street_types() -> str:
    """Street types as a regex alternation: ours plus the USPS (en_US) and Australia Post (en_AU) suffix lists."""
    from faker.providers.address.en_AU import Provider as AuAddresses
    from faker.providers.address.en_US import Provider as UsAddresses

    types = set(_STREET_TYPES.split("|")) | {t.lower() for t in UsAddresses.street_suffixes + AuAddresses.street_suffixes}
    return "|".join(sorted((re.escape(t) for t in types), key=len, reverse=True))


_SECONDARY = r"(?:(?:(?i:apt|flat|suite|ste|unit|level|studio))\.?[ ]?\d{1,5}[A-Za-z]?,?[ ]|\d{1,5}/)"


# Street types that are rarely anything else; with the others ("Light", "Track", "Square", "Run"),
# which product titles use too, every street-name word must be a known name or an unusual word.
_CORE_STREET_TYPES = frozenset(
    "street st avenue ave road rd boulevard blvd lane ln drive dr court ct place pl terrace ter way "
    "circle cir parkway pkwy highway hwy close crescent cres".split()
)


class StreetAddressRecognizer(PatternRecognizer):
    """Street addresses: number, capitalised street name, street type, optional unit, city and ZIP/postcode."""

    def __init__(self):
        types = street_types()
        patterns = [
            Pattern(
                "number street type",
                rf"(?-i:(?<![\w\-.])(?:{_SECONDARY}?\d{{1,6}}|{_SECONDARY}\d{{0,6}})[ ](?:[NSEW]\.?[ ]|(?:North|South|East|West)[ ])?"
                rf"{_STREET_NAME_WORD}(?:[ ]{_STREET_NAME_WORD}){{0,3}}[ ](?i:{types})\b\.?{_UNIT}{_CITY_ZIP})",
                0.75,
            ),
            Pattern(
                "lower-case street name, capitalised type",
                rf"(?-i:(?<![\w\-.])\d{{1,6}}[ ](?:[a-z][a-z'\-]+[ ]){{1,3}}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Way|Terrace|Parkway)\b\.?{_UNIT})",
                0.6,
            ),
            Pattern("po box", r"(?-i:\b[Pp]\.?[ ]?[Oo]\.?[ ]?(?i:box)[ ]\d{1,6}\b)", 0.7),
        ]
        super().__init__(supported_entity="STREET_ADDRESS", patterns=patterns, name="StreetAddressRecognizer",
                         context=["address", "live", "ship", "deliver"])

    def validate_result(self, pattern_text: str) -> bool | None:  # noqa: D102
        from stages.anonymize.names import is_common_word, name_tables

        if re.match(r"(?i)p\.?\s?o\.?\s?box", pattern_text):
            return None
        street = re.split(r",| (?i:apt|apartment|suite|ste|unit|flat)\b", pattern_text)[0]
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z'\-]*", street) if w.lower() not in ("apt", "flat", "unit", "suite", "level", "studio", "n", "s", "e", "w", "north", "south", "east", "west")]
        if not words or any(w.isupper() and len(w) > 1 for w in words):
            return False  # "4 USB Charging Ports": capitals belong to products
        street_type, name_words = words[-1].lower(), words[:-1]
        if street_type in _CORE_STREET_TYPES:
            return None
        first, last = name_tables()
        ok = all(w.lower() in first or w.lower() in last or not is_common_word(w) for w in name_words)
        return None if ok else False


_PROFILE_SITES = (
    r"(?:facebook|fb|instagram|twitter|x|linkedin|youtube|tiktok|pinterest|reddit|github|medium|flickr|"
    r"tumblr|soundcloud|twitch|vimeo|etsy|patreon|snapchat|threads|mastodon\.social|about\.me|linktr\.ee)"
)
_PATH = r"[^\s<>\"')\]]*[^\s<>\"')\].,;:!?]"


class ReviewUrlRecognizer(PatternRecognizer):
    """Links: any http(s) or www. link, bare domains with a path, and personal profile pages.

    A bare domain without a path ("Amazon.com") names a shop, not a person, and stays.
    """

    PATTERNS = [
        Pattern("profile", rf"(?<![\w@])(?:https?://)?(?:www\.|m\.)?{_PROFILE_SITES}\.com/{_PATH}", 0.9),
        Pattern("scheme", rf"(?<![\w@])https?://{_PATH}", 0.7),
        Pattern("www", rf"(?<![\w@/])www\.{_PATH}", 0.7),
        Pattern("domain with path", rf"(?<![\w@/.])(?:[a-z0-9\-]+\.)+(?:com|net|org|io|co|uk|de|me|info|biz|us|ca|ly|gl|be)/{_PATH}", 0.6),
    ]

    def __init__(self):
        super().__init__(supported_entity="URL", patterns=self.PATTERNS, name="ReviewUrlRecognizer")


class FullIpv6Recognizer(PatternRecognizer):
    """Full eight-group IPv6 addresses, also right before a colon ("fe80:...:1: it works"), which Presidio's pattern cuts short."""

    PATTERNS = [Pattern("ipv6 full", r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?![\w]|:[0-9a-fA-F])", 0.6)]

    def __init__(self):
        super().__init__(supported_entity="IP_ADDRESS", patterns=self.PATTERNS, name="FullIpv6Recognizer")


def build_recognizers(entities: tuple[str, ...]) -> list[EntityRecognizer]:
    """The pattern and dictionary recognizers for `entities` (the NER one is added by the engine)."""
    all_recognizers = [
        OfflineEmailRecognizer(),
        CreditCardRecognizer(),
        IpRecognizer(),
        FullIpv6Recognizer(),
        OrderNumberRecognizer(),
        ReviewPhoneRecognizer(),
        ContactPhoneRecognizer(),
        StreetAddressRecognizer(),
        ReviewUrlRecognizer(),
        NameRecognizer(),
    ]
    wanted = set(entities)
    return [r for r in all_recognizers if wanted & set(r.supported_entities)]
