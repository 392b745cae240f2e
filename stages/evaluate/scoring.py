"""The generator's losses, for the membership-inference attack and the canaries' exposure.

Both use the synthesize stage's own example format (`encode_records`), so a record is
scored exactly as the generator saw it in training.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import pandas as pd

from stages.errors import PipelineInputError


def record_losses(model, tokenizer, frame: pd.DataFrame, *, max_len: int, batch_size: int, desc: str) -> np.ndarray:
    """Mean token loss of each record's completion (title and body) under the generator."""
    import torch
    from tqdm.auto import tqdm

    from stages.synthesize.encoding import encode_records, per_example_loss

    out = np.empty(len(frame), dtype=np.float64)
    model.eval()
    with torch.no_grad():
        for start in tqdm(range(0, len(frame), batch_size), desc=desc, unit="batch", disable=None):
            enc = encode_records(tokenizer, frame.iloc[start : start + batch_size], max_len)
            width = int(enc.attention_mask.sum(dim=1).max())  # drop all-padding columns: the model is slow
            loss, _ = per_example_loss(model, enc.input_ids[:, :width], enc.attention_mask[:, :width],
                                       enc.labels[:, :width])
            out[start : start + len(loss)] = loss.double().numpy()
    return out


def base_losses(model, tokenizer, frame: pd.DataFrame, *, max_len: int, batch_size: int, desc: str) -> np.ndarray:
    """`record_losses` under the base model: the PEFT generator with its adapter switched off.

    A zero-shot generator is the base model itself: its losses are the reference.
    """
    if not hasattr(model, "disable_adapter"):
        return record_losses(model, tokenizer, frame, max_len=max_len, batch_size=batch_size, desc=desc)
    with model.disable_adapter():
        return record_losses(model, tokenizer, frame, max_len=max_len, batch_size=batch_size, desc=desc)


def _first_adapted_layer(model) -> int | None:
    """The lowest decoder layer holding a LoRA weight (None: the model has no adapter)."""
    from stages.synthesize.trunk import _inner

    for index, layer in enumerate(_inner(model).model.layers):
        if any("lora_" in name for name, _ in layer.named_parameters()):
            return index
    return None


def paired_losses(model, tokenizer, frame: pd.DataFrame, *, max_len: int, batch_size: int,
                  desc: str) -> tuple[np.ndarray, np.ndarray]:
    """Each record's `record_losses` under the generator and under the base model (`base_losses`), in one pass.

    The adapters sit on the top layers only, so the layers below them compute the same states
    with the adapter on or off: they run once per record (`trunk.cache_trunk`, in order of
    length), and only the adapted top layers and the head run twice. The losses are those of
    the two full passes (to float rounding, about 1e-5). Models without that layout, and a
    zero-shot generator (no adapter: it is its own base), are scored as before.
    """
    import torch
    from tqdm.auto import tqdm

    from stages.synthesize.encoding import encode_records
    from stages.synthesize.trunk import batch_from_cache, cache_trunk, supports_trunk, top_model

    if not hasattr(model, "disable_adapter"):  # zero-shot: the generator is the base model
        own = record_losses(model, tokenizer, frame, max_len=max_len, batch_size=batch_size, desc=desc)
        return own, own.copy()
    split = _first_adapted_layer(model) if supports_trunk(model) else None
    if split is None or len(frame) == 0:
        own = record_losses(model, tokenizer, frame, max_len=max_len, batch_size=batch_size, desc=desc)
        base = base_losses(model, tokenizer, frame, max_len=max_len, batch_size=batch_size, desc=f"{desc}, base model")
        return own, base
    model.eval()
    encoded = encode_records(tokenizer, frame, max_len)
    with tqdm(total=3 * len(frame), desc=f"{desc} (trunk, generator, base model)", unit="record",
              disable=None) as bar:
        cache = cache_trunk(model, encoded, split, batch_size=batch_size, dtype=torch.float32, progress=bar)
        top = top_model(model, split).eval()
        order = sorted(range(len(frame)), key=lambda i: (len(cache.targets[i]), i))

        def score() -> np.ndarray:
            out = np.empty(len(frame), dtype=np.float64)
            with torch.no_grad():
                for start in range(0, len(order), batch_size):
                    rows = order[start : start + batch_size]
                    loss, _ = top(*batch_from_cache(cache, rows, torch.float32))
                    out[rows] = loss.double().numpy()
                    bar.update(len(rows))
            return out

        own = score()
        with model.disable_adapter():
            base = score()
    return own, base


def canary_context(canary: dict, tokenizer) -> tuple[str, str]:
    """(context, suffix template) of a canary's training example, split just before its secret.

    The secret ends the text, so every candidate secret shares the context and only the
    suffix `" <secret>."` differs; the context is run once and cached.
    """
    from types import SimpleNamespace

    from stages.synthesize.prompts import format_response, record_prompt

    row = SimpleNamespace(rating=canary["rating"], main_category=None, text=canary["text"], product_title=None,
                          title=canary["title"])
    full = record_prompt(tokenizer, row) + format_response(canary["title"], canary["text"])
    if not canary["secret"] or canary["secret"] not in full:
        raise PipelineInputError(
            f"canary {canary.get('canary_id')}: its secret does not occur in its text; the canaries file "
            "(models/generator/canaries.json) is not what synthesize wrote - rerun synthesize."
        )
    cut = full.rindex(canary["secret"])
    if full[cut - 1] == " ":
        cut -= 1  # keep the space with the secret, as a tokenizer joins it to the next word
    return full[:cut], full[cut:].replace(canary["secret"], "{secret}", 1)


def suffix_losses(model, tokenizer, context: str, suffixes: Sequence[str], *, batch_size: int) -> np.ndarray:
    """Summed negative log-likelihood of each suffix (+ eos) after a shared context, one KV cache for all."""
    import torch
    import torch.nn.functional as F

    ctx = tokenizer(context, add_special_tokens=False, return_tensors="pt")["input_ids"]
    encoded = [tokenizer(s, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for s in suffixes]
    out = np.empty(len(suffixes), dtype=np.float64)
    model.eval()
    with torch.no_grad():
        first = model(input_ids=ctx, use_cache=True)
        last_logits, cache = first.logits[:, -1:], first.past_key_values
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start : start + batch_size]
            width = max(len(b) for b in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, b in enumerate(batch):
                ids[i, : len(b)] = torch.tensor(b)
                mask[i, : len(b)] = 1
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(len(batch))
            attention = torch.cat([torch.ones((len(batch), ctx.shape[1]), dtype=torch.long), mask], dim=1)
            logits = model(input_ids=ids, attention_mask=attention, past_key_values=past, use_cache=True).logits
            # Token 0 is predicted by the context's last position, token t by suffix position t-1.
            logits = torch.cat([last_logits.expand(len(batch), -1, -1), logits[:, :-1]], dim=1)
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids.reshape(-1), reduction="none")
            out[start : start + len(batch)] = (nll.view(ids.shape) * mask).sum(dim=1).double().numpy()
    return out
