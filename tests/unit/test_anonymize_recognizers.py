"""Each recognizer on a table of review-like texts: what it must find and what it must leave."""

from __future__ import annotations

import pytest

from stages.anonymize.engine import Finding, chunk_text, plausible_person, resolve_overlaps
from stages.anonymize.names import find_names
from stages.anonymize.recognizers import (
    ContactPhoneRecognizer,
    FullIpv6Recognizer,
    OfflineEmailRecognizer,
    OrderNumberRecognizer,
    ReviewPhoneRecognizer,
    ReviewUrlRecognizer,
    StreetAddressRecognizer,
    offline_tld_extractor,
)


def _found(recognizer, text):
    return [text[r.start : r.end] for r in recognizer.analyze(text, recognizer.supported_entities)]


@pytest.mark.parametrize(
    "recognizer, text, expected",
    [
        # order numbers: dashed, spaced; a phone-like or short run is not one
        (OrderNumberRecognizer, "Order 112-3456789-1234567 came late.", ["112-3456789-1234567"]),
        (OrderNumberRecognizer, "ref 112 3456789 1234567.", ["112 3456789 1234567"]),
        (OrderNumberRecognizer, "call 555-123-4567", []),
        # phones: North American, UK, German, French, Indian, international
        (ReviewPhoneRecognizer, "Call (555) 123-4567 now", ["(555) 123-4567"]),
        (ReviewPhoneRecognizer, "text 555.123.4567!", ["555.123.4567"]),
        (ReviewPhoneRecognizer, "uk: +44 20 7946 0958.", ["+44 20 7946 0958"]),
        (ReviewPhoneRecognizer, "ring 07700 900123", ["07700 900123"]),
        (ReviewPhoneRecognizer, "Tel 030/1234567", ["030/1234567"]),
        (ReviewPhoneRecognizer, "appelez 01 23 45 67 89", ["01 23 45 67 89"]),
        (ReviewPhoneRecognizer, "+91 98765 43210 is mine", ["+91 98765 43210"]),
        # not phones: sizes, years, model numbers
        (ReviewPhoneRecognizer, "a 1080p 60Hz screen from 2019, 3.5mm jack", []),
        # bare digit runs after a contact cue are phones ...
        (ContactPhoneRecognizer, "Call me at 5551234567.", ["5551234567"]),
        (ContactPhoneRecognizer, "my cell: 785 4973348)", ["785 4973348"]),
        (ContactPhoneRecognizer, "text 15551234567 for details", ["15551234567"]),
        (ContactPhoneRecognizer, "their number was +15551234567!", ["+15551234567"]),
        (ContactPhoneRecognizer, "I use this product on, the number was 7158799684.", ["7158799684"]),
        # ... not model or part numbers, quantities, prices, or digits without a cue
        (ContactPhoneRecognizer, "Model number was 5551234567.", []),
        (ContactPhoneRecognizer, "The serial number: 5551234567", []),
        (ContactPhoneRecognizer, "I ordered 1000 of them; call it 10000 stars", []),
        (ContactPhoneRecognizer, "phone cost $1234567890.00 lol", []),
        (ContactPhoneRecognizer, "SKU 5551234567 in the listing", []),
        # street addresses: US with unit and ZIP, lower-case street name, PO box; not "5 stars all the way"
        (StreetAddressRecognizer, "I live at 42 Maple Street, Apt 3, Springfield, IL 62704.", ["42 Maple Street, Apt 3, Springfield, IL 62704"]),
        (StreetAddressRecognizer, "sent to 17 oak hill Road", ["17 oak hill Road"]),
        (StreetAddressRecognizer, "Use P.O. Box 123 please", ["P.O. Box 123"]),
        (StreetAddressRecognizer, "5 stars all the way", []),
        # URLs: profile pages, links with a path; a bare shop domain stays
        (ReviewUrlRecognizer, "see https://www.facebook.com/jane.doe.", ["https://www.facebook.com/jane.doe"]),
        (ReviewUrlRecognizer, "instagram.com/bob_k and", ["instagram.com/bob_k"]),
        (ReviewUrlRecognizer, "bought it on Amazon.com last week", []),
        # a full IPv6 address right before a colon
        (FullIpv6Recognizer, "7ae5:a156:4ad5:833f:ca7d:1216:4d4c:ea0c: works", ["7ae5:a156:4ad5:833f:ca7d:1216:4d4c:ea0c"]),
        (FullIpv6Recognizer, "at 10:30:15 it rebooted", []),
        # e-mail with the offline suffix list
        (OfflineEmailRecognizer, "mail jane@example.co.uk!", ["jane@example.co.uk"]),
    ],
)
def test_recognizer_table(recognizer, text, expected):
    assert _found(recognizer(), text) == expected


def test_tldextract_never_fetches_its_suffix_list():
    extractor = offline_tld_extractor()
    assert extractor.suffix_list_urls == ()
    assert extractor("mail.example.co.uk").suffix == "co.uk"


@pytest.mark.parametrize(
    "text, names",
    [
        ("my name is jane doe and this case is great", ["jane doe"]),  # strong cue, lower case
        ("My husband Bob loves it.", ["Bob"]),  # relational cue, ambiguous first name
        ("Works fine. Thanks, Silva Bolnbach!", ["Silva Bolnbach"]),  # sign-off
        ("Great cable.\n- Jen K.", ["Jen K."]),  # dash sign-off with an initial
        ("As J. Lieshout said, it fits.", ["J. Lieshout"]),  # initial + surname
        ("Jennifer Lopez bought one too", ["Jennifer Lopez"]),  # dictionary first + last name
        ("I gave one to jessica.", ["jessica"]),  # lower-case dictionary name, not a word
        ("Anna van der Berg here. It works.", ["Anna van der Berg"]),  # particles
        ("It works great, will buy again.", []),  # "will" is a word, not a name
        ("My son loves it and my wife too.", []),  # cue followed by ordinary words
    ],
)
def test_name_recognizer_table(text, names):
    found = sorted({text[s:e] for s, e, _ in find_names(text)}, key=len, reverse=True)
    # the longest finding for each expected name covers it exactly
    assert [n for n in names if n in found] == names
    assert all(any(n in f or f in n for n in names) for f in found)


@pytest.mark.parametrize(
    "span, allow, keep",
    [
        ("Ingeborg Coffman", frozenset(), True),  # unknown capitalised words: a name
        ("Bose", frozenset(), False),  # brand
        ("wireless mouse", frozenset(), False),  # everyday words
        ("Xacti", frozenset({"sanyo", "xacti", "camera"}), False),  # word of this record's product title
        ("IPAD2", frozenset(), False),  # digits / capitals
    ],
)
def test_plausible_person_filters_products(span, allow, keep):
    assert plausible_person(span, source="ner", score=0.85, allow=allow) is keep


def test_overlapping_findings_merge_into_the_longest():
    merged = resolve_overlaps([Finding("CREDIT_CARD", 4, 19, 1.0), Finding("ORDER_NUMBER", 0, 19, 0.95), Finding("URL", 30, 40, 0.7)])
    assert merged == [Finding("ORDER_NUMBER", 0, 19, 1.0), Finding("URL", 30, 40, 0.7)]


@pytest.mark.parametrize("text", ["word " * 300, "a. " * 500 + "end", "x" * 1200])
def test_chunks_join_back_and_respect_the_limit(text):
    pieces = chunk_text(text, 250)
    assert "".join(pieces) == text
    assert all(len(p) <= 250 for p in pieces)
