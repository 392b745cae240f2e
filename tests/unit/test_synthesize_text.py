"""Conditioning: control prefixes, example encoding, the tiny model and batched generation."""

from __future__ import annotations

import pytest

from stages.errors import PipelineInputError
from stages.synthesize.text import (
    byte_tokenizer,
    control_prefix,
    encode_examples,
    format_example,
    generate,
    length_bucket,
    load_base,
    parse_body,
    parse_prefix,
    parse_title,
    resolve_base_model,
)


@pytest.mark.parametrize(
    ("rating", "category", "chars", "expected"),
    [
        # every control value appears, in a fixed order
        (4, "Cell Phones & Accessories", 50, "rating: 4 | category: Cell Phones & Accessories | length: short"),
        # a missing category or length says so rather than guessing
        (1, None, None, "rating: 1 | category: unknown | length: unknown"),
        # a '|' inside a category cannot break the prefix apart
        (5, "A|B", 1000, "rating: 5 | category: A/B | length: long"),
    ],
)
def test_control_prefix_carries_the_structured_values(rating, category, chars, expected):
    prefix = control_prefix(rating, category, chars)
    assert prefix == expected
    fields = parse_prefix(prefix)
    assert fields["rating"] == str(rating)


@pytest.mark.parametrize(("chars", "bucket"), [(0, "short"), (99, "short"), (100, "medium"), (399, "medium"), (400, "long")])
def test_length_buckets(chars, bucket):
    assert length_bucket(chars) == bucket


def test_format_and_parse_round_trip():
    prompt, completion = format_example(control_prefix(3, "Computers", 20), "Fine  mouse", "It clicks.")
    assert prompt.endswith("\ntitle:") and prompt.startswith("rating: 3 | category: Computers")
    assert completion == " Fine mouse\nreview: It clicks."
    assert parse_title(completion) == "Fine mouse"
    assert parse_body(completion.split("\nreview:", 1)[1], min_chars=3) == "It clicks."
    # A body that runs on into a new example is cut; one that is too short is a parse failure.
    assert parse_body(" Good.\nrating: 5 | category: x", min_chars=3) == "Good."
    assert parse_body("  ok ", min_chars=3) is None


def test_encoding_masks_the_prompt_out_of_the_loss():
    tok = byte_tokenizer()
    enc = encode_examples(tok, ["abc\ntitle:"], [" T\nreview: body"], max_len=64)
    n_prompt = len("abc\ntitle:")
    n_total = n_prompt + len(" T\nreview: body") + 1  # + eos
    assert int(enc.attention_mask.sum()) == n_total
    assert (enc.labels[0, :n_prompt] == -100).all()
    assert (enc.labels[0, n_prompt:n_total] != -100).all()
    assert int(enc.labels[0, n_total - 1]) == tok.eos_token_id
    # Truncation keeps max_len tokens.
    short = encode_examples(tok, ["abc\ntitle:"], [" T\nreview: " + "x" * 200], max_len=32)
    assert int(short.attention_mask.sum()) == 32


def test_byte_tokenizer_round_trips_any_text():
    tok = byte_tokenizer()
    text = "Café ☕ — 5/5, would buy again!\n"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_batched_generation_is_reproducible_and_counts_tokens():
    model, tok = load_base("tiny-llama", seed=0)
    prompts = [control_prefix(r, "Computers", 50) + "\ntitle:" for r in (1, 2, 3)]
    a, n_a = generate(model, tok, prompts, max_new_tokens=8, temperature=1.0, top_p=1.0, batch_size=2,
                      stop_at_newline=False, seed=3)
    b, n_b = generate(model, tok, prompts, max_new_tokens=8, temperature=1.0, top_p=1.0, batch_size=2,
                      stop_at_newline=False, seed=3)
    assert a == b and n_a == n_b
    assert len(a) == 3 and 0 < n_a <= 3 * 8


@pytest.mark.parametrize(
    ("base_model", "message"),
    [
        # a GGUF path that is not there: say how to fetch it
        ("models/base/missing.gguf", r"does not exist; fetch it with `python -m stages.base_models`"),
        # a folder or hub id that cannot be loaded offline
        ("/nonexistent/model-dir", r"could not load the base model '/nonexistent/model-dir'"),
    ],
)
def test_unloadable_base_model_is_a_clear_error(base_model, message):
    with pytest.raises(PipelineInputError, match=message):
        load_base(base_model, seed=0)


def test_relative_base_model_resolves_through_a_dvc_temp_copy(tmp_path, monkeypatch):
    """`dvc exp run --queue` runs in .dvc/tmp/exps/..., which lacks the git-ignored models/base/."""
    (tmp_path / "models" / "base").mkdir(parents=True)
    gguf = tmp_path / "models" / "base" / "base.gguf"
    gguf.write_bytes(b"GGUF")
    copy = tmp_path / ".dvc" / "tmp" / "exps" / "run" / "abc123"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    assert resolve_base_model("models/base/base.gguf") == str(gguf)
    # a path that exists nowhere, and a name that is no path, are left as given
    assert resolve_base_model("models/base/other.gguf") == "models/base/other.gguf"
    assert resolve_base_model("tiny-llama") == "tiny-llama"
