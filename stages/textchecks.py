"""Checks on a text alone, shared by synthesize (a filter) and evaluate (a quality check).

Assistant talk is an instruct model answering the request instead of writing the review:
"Here's a 5-star review of ...:", "As an AI ...", "Sure! ...", "A 5-star review of a product.".
The patterns are specific to that framing; on the 10,000 real Electronics reviews of the
shared sample they match 1 text (0.01%), on the synthetic texts of the experiment
`s16b-default` (before this filter existed) 57 of 1,000.

Seller talk is the model writing as the shop or its support desk instead of as the buyer:
"our products", "I'm happy to work with you", "the customer is happy with their purchase",
"I'm glad you liked the product!". On the shared sample's 12,764 real reviews (Electronics
and the multi-category file) the patterns match 1 text (0.008%, a "please let me know" to
other buyers); on the 1,000 synthetic texts of `s24-default` (before this check existed) 43.
The last two seller patterns and the two "give you a 5-star" / "here is my four-star score"
assistant patterns came from reading `s26-default`'s records: 10 of its 1,000 texts, no real one.

A prompt echo is the request's own wording carried into the text: "a 5-star product", "The
5-star Amazon rating", "an Amazon customer review", "I'm happy to offer a 5-star review". Real
buyers write such phrases too ("Absolutely a 5-star product."), but rarely: the patterns match
23 of the shared sample's 12,764 real reviews (0.18%; Electronics and the multi-category
file) against 78 of `s43-default`'s 1,000 synthetic texts (7.8%), where they are mostly the
model talking about the rating instead of the product.
"""

from __future__ import annotations

import re

_STAR = r"\d(?:\.\d)?[- ]star"
ASSISTANT_TALK = re.compile(
    "|".join((
        r"^\s*(?:sure|certainly|of course|absolutely)\b\s*[,!.]",  # an answer's opening
        r"\bhere(?:'s|\u2019s| is)\b[^.\n]{0,60}?\b(?:review|example|sample|template)\b",  # "Here's a 4-star review"
        r"\bas an ai\b|\b(?:ai|language) model\b",
        r"\bi(?:'d|\u2019d| would) be (?:happy|glad) to\b",
        rf"\b(?:sample|example|template) (?:of )?(?:an? )?(?:(?:{_STAR}|amazon|product|customer) )*review\b",
        rf"^\s*(?:a|an|the|this is an?)\s+{_STAR} (?:amazon |product |customer )?review\b",  # "A 5-star review of ..."
        r"\b(?:give|giving|provide|offer|send|write) you (?:a|an|my|this|the )?\s*(?:[\w.]+[- ])?stars?\b",  # "give you a 5-star"
        r"\bhere(?:'s|\u2019s| is) (?:my|your|the) (?:[\w-]+ ){0,2}(?:star|rating|score)\b",  # "Here is my four-star score"
    )),
    re.IGNORECASE,
)


SELLER_TALK = re.compile(
    "|".join((
        r"\b(?:happy|glad|pleased) to (?:help|assist|work with|serve|provide|answer|hear)\b",  # support-desk voice
        r"\bour (?:customers?|clients?|company|store|shop|team|brand|products?|product range|services?)\b",  # the shop's "our"
        r"\bour (?:amazing|awesome|best|finest|latest|little|new|newest|own|small) (?:products?|brand|business|company)\b",
        r"\bthe customer (?:is|was|purchased|bought|gave|has|had|loves?|wants?)\b",  # the buyer in the third person
        r"\bthe (?:original )?customer(?:'|\u2019)s\b",  # "The original customer's answer is worth ..."
        r"\b(?:thank you|thanks) for (?:your|the) (?:purchase|order|business|review|feedback|interest)\b",
        r"\bplease (?:let (?:me|us) know|contact us|check your)\b",
        r"\b(?:glad|happy|pleased) (?:that )?you (?:like|liked|love|loved|enjoy|enjoyed)\b",  # "I'm glad you liked it!"
        r"\b(?:happy|glad|pleased|delighted) to (?:give|offer|send|tell|inform|show) you\b",
    )),
    re.IGNORECASE,
)


_RATED = r"(?:[0-5](?:\.\d)?|one|two|three|four|five)"
PROMPT_ECHO = re.compile(
    "|".join((
        # "a 5-star product", "the 4-star Amazon device", "a 5-star review" (not the others' "1-star reviews")
        rf"\b{_RATED}[- ]star (?:amazon|customer|product|item|device|purchase|package|recommendation|rated|review\b)",
        # "an Amazon customer review", "this Amazon product" (not "the Amazon product page")
        r"\bamazon (?:customer |product )?(?:review|rating|customer|product)s?\b"
        r"(?! (?:page|listing|said|says|say|state|states|stated))",
        rf"\b(?:offer|give you|provide) (?:an? |my )?{_RATED}[- ]?star (?:rating|review)",
    )),
    re.IGNORECASE,
)


# Voices that are not a buyer reviewing (and the request echoed), by the name synthesize counts
# their drops under (dropped_<name>) and evaluate flags them as quality problems; checked in this order.
WRONG_VOICES = {"assistant_talk": ASSISTANT_TALK, "seller_talk": SELLER_TALK, "prompt_echo": PROMPT_ECHO}


def wrong_voice(text: str | None, names=tuple(WRONG_VOICES)) -> str | None:
    """The first of `names` (keys of WRONG_VOICES) whose patterns the text matches, or None."""
    if not text:
        return None
    return next((name for name in names if WRONG_VOICES[name].search(text)), None)


def is_assistant_talk(text: str | None) -> bool:
    """True when the text frames itself as an answer or a sample rather than being a review."""
    return wrong_voice(text, ("assistant_talk",)) is not None


def is_seller_talk(text: str | None) -> bool:
    """True when the text speaks as the seller or its support desk, not as a buyer reviewing."""
    return wrong_voice(text, ("seller_talk",)) is not None


def is_prompt_echo(text: str | None) -> bool:
    """True when the text carries the request's own wording ("a 5-star product", "Amazon customer review")."""
    return wrong_voice(text, ("prompt_echo",)) is not None
