"""Training examples as tensors, and the per-example loss on them.

`encode_records` renders each record through `prompts` (chat template or plain prompt)
and masks the prompt out of the labels, so the loss covers the response only: the
title line, the body and the end-of-sequence token. Evaluate's membership attack and
canary exposure score records through the same function, exactly as they were trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from stages.synthesize.prompts import format_response, record_prompt


@dataclass
class Encoded:
    """Right-padded token ids, attention mask and labels (-100 outside the completion)."""

    input_ids: Any
    attention_mask: Any
    labels: Any


def encode_examples(tokenizer, prompts: Sequence[str], completions: Sequence[str], max_len: int) -> Encoded:
    """Tokenise prompt + completion + eos, truncate to max_len, mask the prompt out of the loss.

    Truncation cuts the completion, never the prompt; an example whose prompt alone
    fills max_len keeps no label and so adds nothing to the loss.
    """
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




def encode_records(tokenizer, frame: pd.DataFrame, max_len: int) -> Encoded:
    """Encode record-schema rows as (prompt, response) training examples."""
    prompts = [record_prompt(tokenizer, r) for r in frame.itertuples(index=False)]
    responses = [format_response(r.title, r.text) for r in frame.itertuples(index=False)]
    return encode_examples(tokenizer, prompts, responses, max_len)
