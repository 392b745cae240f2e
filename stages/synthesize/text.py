"""The text side of the generator: control prefixes, the base model, and batched generation.

A training example is one review written as

    rating: 4 | category: Cell Phones & Accessories | length: short
    title: <title>
    review: <text><eos>

The first line is the control prefix built from the record's structured columns; the
model learns to write the title and body that fit it. Generation runs in two batched
passes with the KV cache: the title (stopped at the newline), then the body (stopped
at end-of-sequence), so every output has the shape the parser expects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stages.errors import PipelineInputError
from stages.synthesize.params import TINY_LLAMA

UNKNOWN = "unknown"
LENGTH_BUCKETS = ((100, "short"), (400, "medium"), (math.inf, "long"))  # text chars -> label
TITLE_MARK = "\ntitle:"
REVIEW_MARK = "\nreview:"


def length_bucket(text_chars: float | None) -> str:
    """The length label the control prefix carries for a body of this many characters."""
    if text_chars is None or pd.isna(text_chars):
        return UNKNOWN
    return next(label for bound, label in LENGTH_BUCKETS if text_chars < bound)


def control_prefix(rating: Any, category: Any, text_chars: Any) -> str:
    """The first line of an example: the structured values the text is conditioned on."""
    cat = UNKNOWN if category is None or pd.isna(category) else str(category).replace("|", "/").strip()
    return f"rating: {int(rating)} | category: {cat or UNKNOWN} | length: {length_bucket(text_chars)}"


def parse_prefix(prefix: str) -> dict[str, str]:
    """Invert `control_prefix` (used by tests and by evaluate to read prompts back)."""
    fields = {}
    for part in prefix.split(" | "):
        key, _, value = part.partition(": ")
        fields[key.strip()] = value.strip()
    return fields


def format_example(prefix: str, title: Any, text: str) -> tuple[str, str]:
    """(prompt, completion) of a training example; the loss covers only the completion."""
    title_text = "" if title is None or pd.isna(title) else " " + " ".join(str(title).split())
    return prefix + TITLE_MARK, f"{title_text}{REVIEW_MARK} {text.strip()}"


def parse_title(generated: str) -> str | None:
    """The title from the first generation pass: everything up to the first newline."""
    title = generated.split("\n", 1)[0].strip()
    return title or None


def parse_body(generated: str, min_chars: int) -> str | None:
    """The body from the second pass, or None when it is too short to be a review."""
    body = generated.split(TITLE_MARK, 1)[0].split("\nrating:", 1)[0].strip()
    return body if len(body) >= min_chars else None


# ---------------------------------------------------------------- model loading


def byte_tokenizer():
    """A byte-level tokenizer built in code (256 byte symbols + specials); nothing is learned from data."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = ["<pad>", "<eos>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>")


def tiny_llama(vocab_size: int, seed: int):
    """A two-layer Llama with random weights, for tests and the quick profile."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def resolve_base_model(base_model: str | Path) -> str:
    """The base model as given, or, for a relative path missing here, the project's copy.

    `dvc exp run --queue/--temp` runs in a copy under .dvc/tmp/exps that holds only what
    git tracks, so the git-ignored base model fetched into models/base/ is looked up in
    the project that owns the copy. Anything else (an HF id, 'tiny-llama') is unchanged.
    """
    path = Path(base_model)
    if path.is_absolute() or path.exists():
        return str(base_model)
    from stages.tracking import project_root

    candidate = project_root() / path
    return str(candidate) if candidate.exists() else str(base_model)


def load_base(base_model: str | Path, *, seed: int):
    """(model, tokenizer) for a .gguf file, an HF id / local dir, a saved dir, or 'tiny-llama'."""
    import torch

    name = resolve_base_model(base_model)
    if name == TINY_LLAMA:
        tokenizer = byte_tokenizer()
        return tiny_llama(len(tokenizer), seed), tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(name)
    kwargs: dict[str, Any] = {}
    source = str(path) if path.exists() else name  # else an HF id
    if path.suffix == ".gguf":
        if not path.is_file():
            raise PipelineInputError(
                f"base model {path} does not exist; fetch it with `python -m stages.base_models` "
                "(or `make models`), or set synthesize.generator.base_model to another model."
            )
        source, kwargs = str(path.parent), {"gguf_file": path.name}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise PipelineInputError(
            f"could not load the base model {name!r} ({type(exc).__name__}: {str(exc)[:300]}). "
            "Set synthesize.generator.base_model to a .gguf file, a local model folder, or an HF id "
            "reachable from here (the hub is offline unless HF_HUB_OFFLINE=0)."
        ) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


# ---------------------------------------------------------------- encoding


@dataclass
class Encoded:
    """Right-padded token ids, attention mask and labels (-100 outside the completion)."""

    input_ids: Any
    attention_mask: Any
    labels: Any


def encode_examples(tokenizer, prompts: Sequence[str], completions: Sequence[str], max_len: int) -> Encoded:
    """Tokenise prompt + completion + eos, truncate to max_len, mask the prompt out of the loss."""
    import torch

    n = len(prompts)
    ids = torch.full((n, max_len), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, max_len), dtype=torch.long)
    labels = torch.full((n, max_len), -100, dtype=torch.long)
    p_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    c_ids = tokenizer(list(completions), add_special_tokens=False)["input_ids"]
    for i, (p, c) in enumerate(zip(p_ids, c_ids)):
        seq = (p + c + [tokenizer.eos_token_id])[:max_len]
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, len(p) : len(seq)] = ids[i, len(p) : len(seq)]
    return Encoded(ids, mask, labels)


def per_example_loss(model, input_ids, attention_mask, labels):
    """Mean token cross-entropy of each example's completion, shape (batch,), and token counts."""
    import torch.nn.functional as F

    width = int(attention_mask.sum(dim=1).max())  # right padding only: all-padding columns cost time for nothing
    input_ids, attention_mask, labels = input_ids[:, :width], attention_mask[:, :width], labels[:, :width]
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    target = labels[:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), reduction="none")
    loss = loss.view(target.shape)
    counts = (target != -100).sum(dim=1)
    return loss.sum(dim=1) / counts.clamp(min=1), counts


def held_out_loss(model, encoded: Encoded, batch_size: int) -> dict[str, float]:
    """Token-weighted mean loss and perplexity on encoded examples (no gradients)."""
    import torch

    total, tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(encoded.input_ids), batch_size):
            sl = slice(start, start + batch_size)
            loss, counts = per_example_loss(model, encoded.input_ids[sl], encoded.attention_mask[sl], encoded.labels[sl])
            total += float((loss * counts).sum())
            tokens += int(counts.sum())
    mean = total / max(tokens, 1)
    return {"loss": mean, "perplexity": math.exp(min(mean, 50.0)), "tokens": tokens}


# ---------------------------------------------------------------- generation


def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, temperature: float,
             top_p: float, batch_size: int, stop_at_newline: bool, seed: int,
             progress=None) -> tuple[list[str], int]:
    """Sample a continuation per prompt (left-padded batches, KV cache on, per-row stopping).

    Returns the decoded continuations and the number of tokens generated (padding excluded).
    """
    import torch

    tokenizer.padding_side = "left"
    model.eval()
    outputs: list[str] = []
    n_tokens = 0
    extra = {"stop_strings": ["\n"], "tokenizer": tokenizer} if stop_at_newline else {}
    for start in range(0, len(prompts), batch_size):
        batch = list(prompts[start : start + batch_size])
        enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(seed + start)
        with torch.no_grad():
            out = model.generate(
                **enc,
                do_sample=True,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                use_cache=True,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **extra,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        n_tokens += int((new != tokenizer.pad_token_id).sum())
        outputs.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
        if progress is not None:
            progress.update(len(batch))
    return outputs, n_tokens
