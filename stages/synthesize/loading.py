"""Base model loading: a .gguf file, an HF id or folder, or the tiny Llama built in code.

The tokenizer is always the base's own (a byte-level one, built in code, for tiny-llama),
so its chat template, when it has one, is what `prompts.render_prompt` uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.errors import PipelineInputError
from stages.synthesize.params import TINY_LLAMA



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
