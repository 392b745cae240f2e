"""Fine-tuning the top of the model only: the frozen trunk's hidden states are computed once.

The LoRA adapters sit on the top `lora_last_layers` decoder layers, so everything below
(the embeddings and the lower layers) is frozen and its output for a training example
never changes. `cache_trunk` runs it once over every example; each step then runs only
the `top_model` (the adapted layers, the final norm and the head) on the cached states. The
maths is the full model's: right padding under a causal mask leaves every real token's
states unchanged, and the head is applied only where a label is, which is all the loss
reads. Opacus wraps the top model, so per-example gradients stay exact.

Supported: decoder-only models whose `model.model` has `embed_tokens`, `layers`, `norm`
and `rotary_emb` (Llama, Mistral, Qwen2, SmolLM...). Others train through the full model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stages.synthesize.encoding import Encoded


def _inner(model):
    """The bare *ForCausalLM under a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports_trunk(model) -> bool:
    """True when the model has the decoder layout `top_model` runs."""
    body = getattr(_inner(model), "model", None)
    return all(hasattr(body, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")) and hasattr(
        _inner(model), "lm_head"
    )


def split_index(model, lora_last_layers: int) -> int:
    """The first adapted layer: the trunk is layers [0, split)."""
    n = _inner(model).config.num_hidden_layers
    return max(0, n - lora_last_layers) if lora_last_layers else 0


def _run_layers(body, layers, hidden, config):
    import torch
    from transformers.masking_utils import create_causal_mask

    positions = torch.arange(hidden.shape[1]).unsqueeze(0)
    mask = create_causal_mask(config=config, inputs_embeds=hidden, attention_mask=None,
                              past_key_values=None, position_ids=positions)
    rotary = body.rotary_emb(hidden, position_ids=positions)
    for layer in layers:
        hidden = layer(hidden, attention_mask=mask, position_embeddings=rotary, position_ids=positions)
    return hidden


@dataclass
class TrunkCache:
    """Per example, the trunk's output over its real tokens (ragged), and the shifted labels."""

    hidden: list[Any]  # (length_i, hidden_size) each
    targets: list[Any]  # (length_i,) each: the label of the next token, -100 where none
    split: int


def cache_trunk(model, encoded: Encoded, split: int, *, batch_size: int, dtype, autocast: bool = False,
                by_length: bool = True, progress=None) -> TrunkCache:
    """Run the frozen embeddings and layers [0, split) once over every example.

    Examples go through in order of length, so that a batch pads to lengths close to its own
    rather than to the longest review of a random batch; the cache keeps the original order.
    `autocast` runs the layers under bf16 autocast (the states are stored as `dtype` anyway).
    `by_length=False` keeps the given order (the earlier pass, which the benchmark compares).
    """
    import torch

    inner = _inner(model)
    body = inner.model
    lengths = encoded.attention_mask.sum(dim=1).tolist()
    targets_all = torch.cat([encoded.labels[:, 1:], torch.full((len(lengths), 1), -100)], dim=1)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i)) if by_length else list(range(len(lengths)))
    hidden: list[Any] = [None] * len(lengths)
    targets: list[Any] = [None] * len(lengths)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(1, int(max(lengths[i] for i in rows)))
            h = body.embed_tokens(encoded.input_ids[rows, :width])
            h = _run_layers(body, body.layers[:split], h, inner.config)
            for j, i in enumerate(rows):
                n = lengths[i]
                hidden[i] = h[j, :n].to(dtype).clone()
                targets[i] = targets_all[i, :n].clone()
            if progress is not None:
                progress.update(len(rows))
    return TrunkCache(hidden, targets, split)


def top_model(model, split: int):
    """An nn.Module running layers [split, n), the final norm and the head of `model` (shared weights)."""
    import torch

    inner = _inner(model)

    class _Top(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList(list(inner.model.layers[split:]))
            self.norm = inner.model.norm
            self.lm_head = inner.lm_head
            self._body = [inner.model]  # not a submodule: its other parts are not run here
            self._config = inner.config

        def forward(self, hidden, targets):
            """Per-example mean loss over labelled positions, and the label counts."""
            import torch.nn.functional as F

            h = _run_layers(self._body[0], self.layers, hidden, self._config)
            h = self.norm(h)
            where = targets != -100
            rows = where.nonzero()[:, 0]
            logits = self.lm_head(h[where])  # the head only where the loss looks: most of its cost saved
            tok = F.cross_entropy(logits.float(), targets[where], reduction="none")
            counts = where.sum(dim=1)
            total = torch.zeros(hidden.shape[0], dtype=tok.dtype).index_add(0, rows, tok)
            return total / counts.clamp(min=1), counts

    return _Top()


def batch_from_cache(cache: TrunkCache, rows: list[int], dtype):
    """Right-padded (hidden, targets) for the given example indices."""
    import torch

    width = max(len(cache.targets[r]) for r in rows)
    size = cache.hidden[rows[0]].shape[-1]
    hidden = torch.zeros((len(rows), width, size), dtype=dtype)
    targets = torch.full((len(rows), width), -100, dtype=torch.long)
    for j, r in enumerate(rows):
        n = len(cache.targets[r])
        hidden[j, :n] = cache.hidden[r]
        targets[j, :n] = cache.targets[r]
    return hidden, targets
