"""Conditioning: the natural-language instruction, its rendering, the response format and its parser."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from stages.synthesize.encoding import encode_examples, encode_records
from stages.synthesize.loading import byte_tokenizer
from stages.synthesize.prompts import (
    PLAIN_TEMPLATE,
    format_response,
    instruction,
    length_bucket,
    parse_response,
    record_prompt,
    render_prompt,
)


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        # rating, its sentiment word, the category and the length all reach the request
        ((2, "Computers", 50), ["2-star", "It was poor.", "the Computers category", "one or two sentences"]),
        # a product title, when there is one, is named instead of the category
        ((5, "Computers", 1000, "USB-C Hub 7 in 1"), ['"USB-C Hub 7 in 1"', "excellent", "detailed"]),
        # missing category and length: a plain request, nothing invented
        ((1, None, None), ["1-star Amazon review of a product you", "terrible"]),
        # the middle of the scale asks for the mixed and the qualified review
        ((3, None, 200), ["3-star", "It was okay, with good and bad points.", "three or four sentences"]),
        ((4, None, 200), ["4-star", "It was good, but not perfect."]),
    ],
)
def test_instruction_says_what_the_structured_values_ask_for(args, wanted):
    text = instruction(*args)
    for piece in wanted:
        assert piece in text
    assert 'Begin with "Title:"' in text
    assert 'Begin with "Title:"' not in instruction(*args, title=False) and text.startswith(instruction(*args, title=False))


@pytest.mark.parametrize(
    ("row", "asks"),
    [
        # a review asks for a title line exactly when it has a title
        (SimpleNamespace(rating=5, text="Great.", title="Love it"), True),
        (SimpleNamespace(rating=5, text="Great.", title=None), False),
        (SimpleNamespace(rating=5, text="Great.", title="  "), False),
        # a sampled control row: by its title length (NaN where the data has no titles)
        (SimpleNamespace(rating=2, text_chars=80.0, title_chars=12.0), True),
        (SimpleNamespace(rating=2, text_chars=80.0, title_chars=float("nan")), False),
        (SimpleNamespace(rating=2, text_chars=80.0, title_chars=None), False),
    ],
)
def test_the_title_line_is_asked_for_only_where_the_record_has_a_title(row, asks):
    assert ('Begin with "Title:"' in record_prompt(byte_tokenizer(), row)) is asks


def test_the_unrated_prompt_is_the_same_request_without_the_rating():
    """Guidance's unconditioned prompt: only the stars and the sentiment word go."""
    assert instruction(None, "Computers", 50, title=False) == (
        "Write an Amazon review of a product from the Computers category you bought. Keep it short: one or two sentences.")
    row = SimpleNamespace(rating=1, text_chars=50.0, title_chars=None, main_category="Computers")
    rated, unrated = record_prompt(byte_tokenizer(), row), record_prompt(byte_tokenizer(), row, rated=False)
    assert rated.replace("a 1-star Amazon", "an Amazon").replace(" It was terrible.", "") == unrated


@pytest.mark.parametrize(("chars", "bucket"), [(0, "short"), (99, "short"), (100, "medium"), (399, "medium"), (400, "long")])
def test_length_buckets(chars, bucket):
    assert length_bucket(chars) == bucket


class ChatTokenizer:
    """Stands for an instruct tokenizer: records the messages and renders them like ChatML."""

    chat_template = "{% for m in messages %}...{% endfor %}"

    def apply_chat_template(self, messages, *, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        turns = "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in messages)
        return turns + "<|assistant|>"


def test_chat_template_renders_the_instruction_and_opens_the_assistant_turn():
    prompt = render_prompt(ChatTokenizer(), "Write a 3-star review.")
    assert prompt.endswith("<|user|>Write a 3-star review.<|end|><|assistant|>")
    assert prompt.startswith("<|system|>")


def test_a_base_without_chat_template_gets_the_plain_prompt():
    tok = byte_tokenizer()
    assert render_prompt(tok, "Write a 3-star review.") == PLAIN_TEMPLATE.format(instruction="Write a 3-star review.")
    row = SimpleNamespace(rating=4, main_category="Computers", text="Works.", product_title=None)
    assert "4-star" in record_prompt(tok, row) and "one or two sentences" in record_prompt(tok, row)


@pytest.mark.parametrize(
    ("generated", "title", "body"),
    [
        # the trained/asked format
        ("Title: Fine mouse\nIt clicks and glides.", "Fine mouse", "It clicks and glides."),
        # no title line: not a failure, the title is None
        ("It clicks and glides well.", None, "It clicks and glides well."),
        # quoted or bold title, a "Review:" label before the body
        ('Title: "Loud"\nReview: Too loud for me.', "Loud", "Too loud for me."),
        # an empty title line is ignored; a body below min_chars is a parse failure
        ("Title:\nGood stuff here.", None, "Good stuff here."),
        ("Title: Meh\nok", "Meh", None),
    ],
)
def test_parse_response(generated, title, body):
    assert parse_response(generated, min_chars=5) == (title, body)


def test_format_and_parse_round_trip():
    response = format_response("Fine  mouse", " It clicks. ")
    assert response == "Title: Fine mouse\nIt clicks."
    assert parse_response(response, min_chars=3) == ("Fine mouse", "It clicks.")
    assert format_response(None, "It clicks.") == "It clicks."


def test_encoding_masks_the_prompt_out_of_the_loss():
    tok = byte_tokenizer()
    enc = encode_examples(tok, ["abc\n"], ["Title: T\nbody"], max_len=64)
    n_prompt = len("abc\n")
    n_total = n_prompt + len("Title: T\nbody") + 1  # + eos
    assert int(enc.attention_mask.sum()) == n_total
    assert (enc.labels[0, :n_prompt] == -100).all()
    assert (enc.labels[0, n_prompt:n_total] != -100).all()
    assert int(enc.labels[0, n_total - 1]) == tok.eos_token_id
    # Truncation keeps max_len tokens, cutting the response.
    short = encode_examples(tok, ["abc\n"], ["Title: T\n" + "x" * 200], max_len=32)
    assert int(short.attention_mask.sum()) == 32 and (short.labels[0, :n_prompt] == -100).all()


def test_encode_records_trains_on_the_generation_prompt():
    import pandas as pd

    tok = byte_tokenizer()
    frame = pd.DataFrame([{"rating": 2, "main_category": "Computers", "product_title": None, "title": "Meh",
                           "text": "Stopped after a week."}])
    enc = encode_records(tok, frame, 400)
    prompt = record_prompt(tok, frame.itertuples(index=False).__next__())
    first_label = int((enc.labels[0] != -100).nonzero()[0])
    assert tok.decode(enc.input_ids[0, :first_label]) == prompt
    assert tok.decode(enc.input_ids[0, first_label : int(enc.attention_mask.sum()) - 1]) == "Title: Meh\nStopped after a week."


def test_byte_tokenizer_round_trips_any_text():
    tok = byte_tokenizer()
    text = "Café ☕ — 5/5, would buy again!\n"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
