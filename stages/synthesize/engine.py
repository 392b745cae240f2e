"""The generation engine: control rows in, (title, body) pairs out, in independently seeded batches.

Controls are cut into fixed-size batches of `GenerationParams.batch_size`, addressed by
their global index. Each batch is generated (and its parse failures retried) from a seed
derived from (seed, batch index, attempt) only, so batches can run in any order or on
any worker (`generate_batch`) and the records come out the same.

Generation runs on a copy of the model with the LoRA merged into the weights (no
adapter detour per layer). Two backends (`generation.backend`): `transformers`
`generate` (the reference path; float32 or bfloat16, KV cache on) and CTranslate2
(`stages/synthesize/ct2.py`; int8 or float32), with the same decoding settings:
temperature, top-k, top-p and a repetition penalty.

Classifier-free guidance (`generation.guidance_scale` > 1, transformers only) samples
from log p(x | prompt) + g * (log p(x | prompt) - log p(x | unrated prompt)): the
unconditioned prompt is the same request without the rating (`record_prompt(...,
rated=False)`), so guidance strengthens what the rating changes in the text and nothing
else. It costs a second forward pass per token (transformers' own
`UnbatchedClassifierFreeGuidanceLogitsProcessor`, with its own KV cache). It reads only
the model and the control row, so it is post-processing like the rest of generation.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from stages.synthesize.ct2 import CT2Generator
from stages.synthesize.params import GenerationParams
from stages.synthesize.prompts import parse_response, record_prompt

_SENTENCE_END = re.compile(r"[.!?)](?=[^.!?)]*$)")


def generation_model(model, dtype: str):
    """A copy of `model` for generation: LoRA merged into the weights, cast to `dtype`, in eval mode."""
    import torch

    out = copy.deepcopy(model)
    if hasattr(out, "merge_and_unload"):
        out = out.merge_and_unload()
    if dtype == "bfloat16":
        out = out.to(torch.bfloat16)
    return out.eval()


def generation_engine(model, tokenizer, gen: GenerationParams):
    """What `sample` runs on for these params: the merged transformers model, or a CTranslate2 generator."""
    if gen.backend == "ctranslate2":
        import torch

        return CT2Generator(model, tokenizer, compute_type=gen.dtype, threads=torch.get_num_threads())
    return generation_model(model, gen.dtype)


def batch_seed(seed: int, batch_index: int, attempt: int = 0) -> int:
    """The sampling seed of one batch and attempt: a function of these three numbers only."""
    return int(np.random.SeedSequence([seed, batch_index, attempt]).generate_state(1)[0])


def sample(model, tokenizer, prompts: Sequence[str], gen: GenerationParams, *, seed: int,
           unconditioned: Sequence[str] | None = None) -> tuple[list[str], list[bool], int]:
    """One sampled continuation per prompt: (texts, whether each reached end-of-sequence, new tokens).

    `unconditioned` (one per prompt) is the guidance's unconditioned prompt; needed when
    gen.guidance_scale > 1.
    """
    import torch

    if isinstance(model, CT2Generator):
        return model.sample(tokenizer, prompts, gen, seed=seed)
    tokenizer.padding_side = "left"
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    guidance = {}
    if gen.guidance_scale != 1.0:
        if unconditioned is None or len(unconditioned) != len(prompts):
            raise ValueError("guidance_scale > 1 needs one unconditioned prompt per prompt")
        neg = tokenizer(list(unconditioned), return_tensors="pt", padding=True, add_special_tokens=False)
        guidance = {"guidance_scale": gen.guidance_scale, "negative_prompt_ids": neg["input_ids"],
                    "negative_prompt_attention_mask": neg["attention_mask"]}
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(
            **enc,
            do_sample=True,
            temperature=gen.temperature,
            top_k=gen.top_k or None,
            top_p=gen.top_p,
            repetition_penalty=gen.repetition_penalty,
            max_new_tokens=gen.max_new_tokens,
            use_cache=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **guidance,
        )
    new = out[:, enc["input_ids"].shape[1] :]
    finished = (new == tokenizer.eos_token_id).any(dim=1).tolist()
    n_tokens = int((new != tokenizer.pad_token_id).sum())
    return tokenizer.batch_decode(new, skip_special_tokens=True), finished, n_tokens


def _trim(text: str, min_chars: int) -> str:
    """A body cut off by max_new_tokens ends at its last full sentence, if that leaves a review."""
    match = _SENTENCE_END.search(text)
    if match and match.end() >= min_chars:
        return text[: match.end()]
    return text


@dataclass
class BatchOutput:
    """Titles and bodies of one batch (None where every attempt failed), and its counts."""

    titles: list[str | None]
    texts: list[str | None]
    parse_failures: int = 0
    failed: int = 0
    tokens: int = 0
    prompts: list[str] = field(default_factory=list)


def generate_batch(model, tokenizer, controls: pd.DataFrame, gen: GenerationParams, *, seed: int,
                   batch_index: int) -> BatchOutput:
    """Title and body per control row of one batch, retrying parse failures up to gen.max_attempts."""
    rows = list(controls.itertuples(index=False))
    prompts = [record_prompt(tokenizer, r) for r in rows]
    unrated = [record_prompt(tokenizer, r, rated=False) for r in rows] if gen.guidance_scale != 1.0 else None
    out = BatchOutput([None] * len(prompts), [None] * len(prompts), prompts=prompts)
    pending = list(range(len(prompts)))
    for attempt in range(gen.max_attempts):
        if not pending:
            break
        raw, finished, tokens = sample(model, tokenizer, [prompts[i] for i in pending], gen,
                                       seed=batch_seed(seed, batch_index, attempt),
                                       unconditioned=[unrated[i] for i in pending] if unrated else None)
        out.tokens += tokens
        still = []
        for i, text, done in zip(pending, raw, finished):
            title, body = parse_response(text, gen.min_text_chars)
            if body is None:
                out.parse_failures += 1
                still.append(i)
            else:
                out.titles[i], out.texts[i] = title, body if done else _trim(body, gen.min_text_chars)
        pending = still
    out.failed = len(pending)
    return out


def generate_records(model, tokenizer, controls: pd.DataFrame, gen: GenerationParams, *, seed: int,
                     progress=None) -> dict:
    """`generate_batch` over every fixed-size batch of `controls`, in order; texts and summed counts."""
    titles: list[str | None] = []
    texts: list[str | None] = []
    prompts: list[str] = []
    counts = {"parse_failures": 0, "failed": 0, "tokens": 0}
    for index, start in enumerate(range(0, len(controls), gen.batch_size)):
        part = controls.iloc[start : start + gen.batch_size]
        batch = generate_batch(model, tokenizer, part, gen, seed=seed, batch_index=index)
        titles += batch.titles
        texts += batch.texts
        prompts += batch.prompts
        for key in counts:
            counts[key] += getattr(batch, key)
        if progress is not None:
            progress.update(len(part))
    return {"titles": titles, "texts": texts, "prompts": prompts, **counts}
