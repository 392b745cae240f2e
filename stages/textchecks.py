"""Checks on a text alone, shared by synthesize (a filter) and evaluate (a quality check).

Assistant talk is an instruct model answering the request instead of writing the review:
"Here's a 5-star review of ...:", "As an AI ...", "Sure! ...", "A 5-star review of a product.".
The patterns are specific to that framing; on the 10,000 real Electronics reviews of the
shared sample they match 1 text (0.01%), on the synthetic texts of the experiment
`s16b-default` (before this filter existed) 57 of 1,000.
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
    )),
    re.IGNORECASE,
)


def is_assistant_talk(text: str | None) -> bool:
    """True when the text frames itself as an answer or a sample rather than being a review."""
    return bool(text) and ASSISTANT_TALK.search(text) is not None
