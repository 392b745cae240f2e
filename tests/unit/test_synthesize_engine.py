"""The generation engine (seeded fixed batches, merged LoRA) and the cached-trunk training path."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from stages.synthesize.encoding import encode_records, per_example_loss
from stages.errors import ParamsError
from stages.synthesize.engine import batch_seed, generate_batch, generate_records, generation_engine, generation_model
from stages.synthesize.generator import attach_lora
from stages.synthesize.loading import load_base
from stages.synthesize.trunk import batch_from_cache, cache_trunk, split_index, top_model
from tests.unit.synthesize_helpers import quick_params, records

CONTROLS = pd.DataFrame({"rating": [1, 2, 3, 4, 5], "main_category": ["Computers", None, "Computers", None, None],
                         "text_chars": [40, 200, 500, None, 60]})


def _trained_lora(last_layers=1):
    params = quick_params(**{"generator.lora_last_layers": last_layers})
    model, tok = load_base("tiny-llama", seed=0)
    model = attach_lora(model, params.generator)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))  # as if trained
    return params, model, tok


def test_batches_depend_only_on_seed_and_batch_index():
    """Splitting the batches across workers (issue 13) cannot change a record."""
    params, model, tok = _trained_lora()
    gen = dataclasses.replace(params.generation, batch_size=2, max_new_tokens=12, min_text_chars=1)
    merged = generation_model(model, gen.dtype)
    whole = generate_records(merged, tok, CONTROLS, gen, seed=5)
    # batch 2 on its own (rows 4..5), as another worker would run it
    alone = generate_batch(merged, tok, CONTROLS.iloc[4:], gen, seed=5, batch_index=2)
    assert alone.texts == whole["texts"][4:] and alone.titles == whole["titles"][4:]
    again = generate_records(merged, tok, CONTROLS, gen, seed=5)
    assert again["texts"] == whole["texts"] and again["tokens"] == whole["tokens"] > 0
    assert len({batch_seed(5, i, a) for i in range(50) for a in range(3)}) == 150
    assert len(whole["prompts"]) == 5 and "5-star" in whole["prompts"][4]


def test_merged_generation_model_computes_what_the_adapter_does():
    _, model, tok = _trained_lora()
    ids = tok(["Title: a case"], return_tensors="pt", add_special_tokens=False)["input_ids"]
    merged = generation_model(model, "float32")
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5)
    assert not hasattr(merged, "peft_config")  # a plain model: no adapter detour per layer
    assert any("lora_B" in n for n, _ in model.named_parameters())  # the trained adapter is untouched
    assert next(generation_model(model, "bfloat16").parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("compute_type", ["float32", "int8"])
def test_ctranslate2_backend_writes_seeded_batches_from_the_merged_model(compute_type):
    params, model, tok = _trained_lora()
    gen = dataclasses.replace(params.generation, backend="ctranslate2", dtype=compute_type, batch_size=2,
                              max_new_tokens=12, min_text_chars=1)
    engine = generation_engine(model, tok, gen)
    whole = generate_records(engine, tok, CONTROLS, gen, seed=5)
    alone = generate_batch(engine, tok, CONTROLS.iloc[4:], gen, seed=5, batch_index=2)
    assert alone.texts == whole["texts"][4:]
    assert generate_records(engine, tok, CONTROLS, gen, seed=5)["texts"] == whole["texts"]
    assert generate_records(engine, tok, CONTROLS, gen, seed=6)["texts"] != whole["texts"]
    assert 0 < whole["tokens"] <= 5 * gen.max_attempts * gen.max_new_tokens
    if compute_type == "float32":  # the converted model is the merged model: greedy decoding agrees token for token
        greedy = dataclasses.replace(gen, top_k=1, repetition_penalty=1.0)
        reference = generate_records(generation_model(model, "float32"), tok, CONTROLS, greedy, seed=5)
        assert generate_records(engine, tok, CONTROLS, greedy, seed=5)["texts"] == reference["texts"]


def test_a_dtype_the_backend_cannot_run_is_a_params_error():
    params = quick_params()
    with pytest.raises(ParamsError, match="int8.*does not run on backend 'transformers'"):
        dataclasses.replace(params.generation, backend="transformers", dtype="int8")
    with pytest.raises(ParamsError, match="bfloat16.*ctranslate2"):
        dataclasses.replace(params.generation, backend="ctranslate2", dtype="bfloat16")


@pytest.mark.parametrize("last_layers", [1, 0])  # the top layer only; every layer (the trunk is the embedding)
def test_cached_trunk_gives_the_full_models_per_example_loss_and_gradients(last_layers):
    _, model, tok = _trained_lora(last_layers)
    enc = encode_records(tok, records(6), 320)
    full, _ = per_example_loss(model, enc.input_ids, enc.attention_mask, enc.labels)
    full.sum().backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()

    split = split_index(model, last_layers)
    assert split == (1 if last_layers else 0)
    cache = cache_trunk(model, enc, split, batch_size=4, dtype=torch.float32)
    top = top_model(model, split)
    loss, counts = top(*batch_from_cache(cache, list(range(6)), torch.float32))
    assert torch.allclose(loss, full, atol=1e-5)
    assert counts.tolist() == (enc.labels[:, 1:] != -100).sum(dim=1).tolist()
    loss.sum().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p.grad, want[name], atol=1e-5), name


def test_trunk_pass_by_length_keeps_each_examples_states_and_bf16_stays_close():
    """Sorting by length changes only which examples share a batch; bf16 autocast only the precision."""
    _, model, tok = _trained_lora(1)
    enc = encode_records(tok, records(7), 320)
    assert len(set(enc.attention_mask.sum(dim=1).tolist())) > 2  # lengths differ, so the order matters
    in_order = cache_trunk(model, enc, 1, batch_size=3, dtype=torch.float32, by_length=False)
    by_length = cache_trunk(model, enc, 1, batch_size=3, dtype=torch.float32)
    bf16 = cache_trunk(model, enc, 1, batch_size=3, dtype=torch.bfloat16, autocast=True)
    for i in range(7):
        assert torch.allclose(by_length.hidden[i], in_order.hidden[i], atol=1e-5)
        assert torch.equal(by_length.targets[i], in_order.targets[i])
        assert bf16.hidden[i].dtype == torch.bfloat16
        assert torch.allclose(bf16.hidden[i].float(), in_order.hidden[i], atol=0.1, rtol=0.05)
    top = top_model(model, 1)
    exact, _ = top(*batch_from_cache(in_order, list(range(7)), torch.float32))
    approx, _ = top(*batch_from_cache(bf16, list(range(7)), torch.float32))
    assert torch.allclose(approx, exact, rtol=0.02)


def test_guidance_samples_from_the_guided_distribution_towards_the_rating():
    """Greedy with guidance g picks argmax of g * (log p(.|prompt) - log p(.|unrated)) + log p(.|unrated)."""
    from stages.synthesize.engine import sample
    from stages.synthesize.prompts import record_prompt

    params, model, tok = _trained_lora()
    merged = generation_model(model, "float32")
    row = next(CONTROLS.iloc[[0]].itertuples(index=False))
    prompt, unrated = record_prompt(tok, row), record_prompt(tok, row, rated=False)
    assert "1-star" in prompt and "terrible" in prompt
    assert "star" not in unrated and "terrible" not in unrated
    greedy = dataclasses.replace(params.generation, top_k=1, repetition_penalty=1.0, max_new_tokens=1)
    with torch.no_grad():
        logp = [torch.log_softmax(merged(**tok([text], return_tensors="pt", add_special_tokens=False)).logits[0, -1], -1)
                for text in (prompt, unrated)]
    for g in (1.0, 4.0):
        want = int(torch.argmax(g * (logp[0] - logp[1]) + logp[1]))
        gen = dataclasses.replace(greedy, guidance_scale=g)
        got, _, _ = sample(merged, tok, [prompt], gen, seed=0, unconditioned=[unrated] if g != 1.0 else None)
        assert got == [tok.decode([want], skip_special_tokens=True)], g
    with pytest.raises(ValueError, match="unconditioned prompt"):
        sample(merged, tok, [prompt], dataclasses.replace(greedy, guidance_scale=2.0), seed=0)


def test_guided_batches_stay_seeded_and_differ_from_unguided_ones():
    params, model, tok = _trained_lora()
    gen = dataclasses.replace(params.generation, batch_size=2, max_new_tokens=12, min_text_chars=1)
    merged = generation_model(model, gen.dtype)
    guided = dataclasses.replace(gen, guidance_scale=3.0)
    whole = generate_records(merged, tok, CONTROLS, guided, seed=5)
    alone = generate_batch(merged, tok, CONTROLS.iloc[4:], guided, seed=5, batch_index=2)
    assert alone.texts == whole["texts"][4:]
    assert generate_records(merged, tok, CONTROLS, gen, seed=5)["texts"] != whole["texts"]


def test_guidance_on_a_backend_without_it_is_a_params_error():
    params = quick_params()
    with pytest.raises(ParamsError, match="guidance_scale.*needs backend 'transformers'"):
        dataclasses.replace(params.generation, backend="ctranslate2", dtype="int8", guidance_scale=2.0)
