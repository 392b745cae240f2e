"""Conditioning: the instruction a record's structured columns become, and the response format.

An example is a chat exchange in the base model's own template:

    user:      Write a 2-star Amazon review of a product from the Computers category you
               bought. It was poor. Keep it short: one or two sentences. Begin with
               "Title:" and a short title on its own line.   <- only when the record has a title
    assistant: Title: <title>
               <text><eos>

The same rendering (``tokenizer.apply_chat_template(..., add_generation_prompt=True)``)
is the training prompt, whose tokens carry no loss, and the generation prompt, so an
instruct base understands the request before any fine-tuning (the zero-shot reference
runs on it unchanged). A base without a chat template (the quick profile's tiny-llama,
a plain pretrained LM) gets `PLAIN_TEMPLATE`: the same instruction between fixed markers.
The sentiment words per rating measurably strengthen the rating signal of the text; at 3 and 4
stars they ask for the mixed and the qualified review real buyers write there.
The title is asked for only where the record has one (a training review's own title, a
sampled row's title length): data without titles (the shared Electronics sample) would
otherwise train a request its responses never follow, and pay about 15 prompt tokens per
example in every training step and generated record for a line that is then discarded.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

UNKNOWN = "unknown"
LENGTH_BUCKETS = ((100, "short"), (400, "medium"), (math.inf, "long"))  # text chars -> label
# "It was ..." per rating. Half of real 3- and 4-star reviews weigh a good point against a bad one; asked
# for "okay" and "good" alone, the base writes praise or a shrug. The mixed asks raise the zero-shot
# TF-IDF macro-F1 from 0.245 to 0.288 (README: benchmarks/bench_prompt_wording.py).
SENTIMENT = {1: "terrible", 2: "poor", 3: "okay, with good and bad points", 4: "good, but not perfect", 5: "excellent"}
LENGTH_ASK = {
    "short": "Keep it short: one or two sentences.",
    "medium": "Write three or four sentences.",
    "long": "Write a detailed review of several sentences.",
    UNKNOWN: "",
}
SYSTEM = "You write Amazon customer reviews."
TITLE_MARK = "Title:"
PLAIN_TEMPLATE = "### Instruction\n{instruction}\n### Review\n"  # bases without a chat template
PROMPT_COLUMNS = ("rating", "main_category", "text_chars", "title_chars", "product_title")  # what record_prompt reads of a control row
MAX_PRODUCT_CHARS = 120  # a catalogue title can be a paragraph; the prompt stays short


def length_bucket(text_chars: float | None) -> str:
    """The length label the instruction asks for, from a body of this many characters."""
    if text_chars is None or pd.isna(text_chars):
        return UNKNOWN
    return next(label for bound, label in LENGTH_BUCKETS if text_chars < bound)


def _present(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = " ".join(str(value).split())
    return text or None


def instruction(rating: Any, category: Any, text_chars: Any, product_title: Any = None, *, title: bool = True) -> str:
    """The request, in natural language, for a review with these structured values (and a title line if `title`).

    `rating` None gives the same request without the stars and the sentiment word: the
    unconditioned prompt of classifier-free guidance, which then strengthens the rating alone.
    """
    product = _present(product_title)
    cat = _present(category)
    if product:
        subject = f'"{product[:MAX_PRODUCT_CHARS]}"'
    elif cat:
        subject = f"a product from the {cat} category"
    else:
        subject = "a product"
    if rating is None:
        ask = f"Write an Amazon review of {subject} you bought."
    else:
        stars = int(rating)
        ask = f"Write a {stars}-star Amazon review of {subject} you bought. It was {SENTIMENT[stars]}."
    parts = [
        ask,
        LENGTH_ASK[length_bucket(text_chars)],
        f'Begin with "{TITLE_MARK}" and a short title on its own line.' if title else "",
    ]
    return " ".join(p for p in parts if p)


def has_chat_template(tokenizer) -> bool:
    """True when the tokenizer carries a chat template (instruct models do)."""
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer, request: str) -> str:
    """The prompt text: the base's chat template with the assistant turn opened, or the plain one."""
    if has_chat_template(tokenizer):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": request}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return PLAIN_TEMPLATE.format(instruction=request)


def has_title(row) -> bool:
    """Whether a record has a title: a review's own `title`, or a sampled control row's `title_chars`."""
    if hasattr(row, "title_chars"):
        chars = row.title_chars
        return chars is not None and not pd.isna(chars) and chars > 0
    return _present(getattr(row, "title", None)) is not None


def record_prompt(tokenizer, row, *, rated: bool = True) -> str:
    """The rendered prompt of one record or control row (rating, main_category, text length, product, title).

    `rated=False`: the same prompt without the rating (the unconditioned prompt of guidance).
    """
    chars = getattr(row, "text_chars", None)
    if chars is None and isinstance(getattr(row, "text", None), str):
        chars = len(row.text)
    return render_prompt(tokenizer, instruction(row.rating if rated else None, getattr(row, "main_category", None), chars,
                                                getattr(row, "product_title", None), title=has_title(row)))


def format_response(title: Any, text: str) -> str:
    """The assistant's answer in training: the title line (when the review has one), then the body."""
    head = _present(title)
    body = text.strip()
    return f"{TITLE_MARK} {head}\n{body}" if head else body


def parse_response(generated: str, min_chars: int) -> tuple[str | None, str | None]:
    """(title, body) of a generated answer; body None when too short to be a review.

    A missing title line is not a failure (the title is then None); a "Title:" line
    with nothing after it is ignored; a "Review:" label before the body is removed.
    """
    text = generated.strip()
    title = None
    first, _, rest = text.partition("\n")
    if first.strip().lower().startswith(TITLE_MARK.lower()):
        title = _present(first.strip()[len(TITLE_MARK):].strip().strip('"*'))
        text = rest.strip()
    if text.lower().startswith("review:"):
        text = text[len("review:"):].strip()
    return title, (text if len(text) >= min_chars else None)
