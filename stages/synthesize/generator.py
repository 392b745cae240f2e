"""ReviewGenerator: the fine-tuned LM behind one interface for the stage, its tests and MLflow.

Saved as a folder: `adapter/` (the PEFT LoRA weights), `tokenizer/` (the base model's
public tokenizer, saved for convenience), `config.json` (the base model reference and
its checksum, LoRA and generation settings, the prefix format). The base weights are
not copied: they are found again from the reference and checked against the checksum.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from stages.errors import PipelineInputError
from stages.synthesize.params import TINY_LLAMA, GenerationParams, GeneratorParams
from stages.synthesize.text import (
    REVIEW_MARK,
    control_prefix,
    generate,
    load_base,
    parse_body,
    parse_title,
    resolve_base_model,
)

FORMAT_VERSION = 1


def base_checksum(model, base_model: str) -> str:
    """SHA-256 identifying the base weights: the file for .gguf, else the parameters' bytes."""
    if str(base_model).endswith(".gguf"):
        from stages.io import file_sha256

        return file_sha256(resolve_base_model(base_model))
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            if "lora_" in name:
                continue
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def attach_lora(model, gen: GeneratorParams):
    """Wrap a base model with trainable LoRA adapters on the top `lora_last_layers` layers."""
    from peft import LoraConfig, get_peft_model

    n_layers = model.config.num_hidden_layers
    layers = None
    if gen.lora_last_layers:
        layers = list(range(max(0, n_layers - gen.lora_last_layers), n_layers))
    config = LoraConfig(
        r=gen.lora_r,
        lora_alpha=gen.lora_alpha,
        lora_dropout=gen.lora_dropout,
        target_modules=list(gen.target_modules),
        layers_to_transform=layers,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise PipelineInputError(
            f"LoRA could not be attached ({exc}); set synthesize.generator.target_modules to Linear "
            "layer names of the base model (e.g. q_proj, v_proj for Llama models)."
        ) from exc


class ReviewGenerator:
    """A LoRA-tuned causal LM that writes a title and body for given structured values."""

    def __init__(self, model, tokenizer, config: dict):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config

    # ------------------------------------------------------------ persistence

    def save(self, directory: Path) -> None:
        """Write adapter/, tokenizer/ and config.json into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(directory / "adapter"))
        self.tokenizer.save_pretrained(str(directory / "tokenizer"))
        (directory / "config.json").write_text(json.dumps(self.config, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load_dir(cls, directory: str | Path) -> ReviewGenerator:
        """Rebuild the generator from a saved folder; the base model must still be where it was."""
        from peft import PeftModel

        directory = Path(directory)
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise PipelineInputError(f"{directory} holds no generator (config.json is missing); rerun synthesize.")
        config = json.loads(config_path.read_text())
        base, tokenizer = load_base(config["base_model"], seed=config["base_seed"])
        checksum = base_checksum(base, config["base_model"])
        if checksum != config["base_sha256"]:
            raise PipelineInputError(
                f"the base model {config['base_model']!r} differs from the one the adapter was trained on "
                "(checksum mismatch); restore that base model or rerun synthesize."
            )
        model = PeftModel.from_pretrained(base, str(directory / "adapter"))
        model.eval()
        return cls(model, tokenizer, config)

    @classmethod
    def load(cls, artifacts: dict) -> ReviewGenerator:
        """MLflow pyfunc entry point: artifacts['generator'] is the saved folder."""
        return cls.load_dir(artifacts["generator"])

    # ------------------------------------------------------------ generation

    def write(self, controls: pd.DataFrame, gen: GenerationParams, *, seed: int, progress=None) -> dict:
        """Title and body per control row, retrying parse failures; returns texts and counts.

        `controls` has rating, main_category and text_chars. Rows that still fail after
        `gen.max_attempts` have text None and are counted in `failed`.
        """
        prefixes = [
            control_prefix(r.rating, r.main_category, r.text_chars) for r in controls.itertuples(index=False)
        ]
        n = len(prefixes)
        titles: list[str | None] = [None] * n
        texts: list[str | None] = [None] * n
        pending = list(range(n))
        failures = 0
        tokens = 0
        common = dict(temperature=gen.temperature, top_p=gen.top_p, batch_size=gen.batch_size)
        for attempt in range(gen.max_attempts):
            if not pending:
                break
            round_seed = seed + 1_000_003 * attempt
            prompts = [prefixes[i] + "\ntitle:" for i in pending]
            raw_titles, t1 = generate(self.model, self.tokenizer, prompts, max_new_tokens=gen.max_title_tokens,
                                      stop_at_newline=True, seed=round_seed, **common)
            got_titles = [parse_title(t) for t in raw_titles]
            prompts = [
                f"{p}{' ' + t if t else ''}{REVIEW_MARK}" for p, t in zip(prompts, got_titles)
            ]
            raw_bodies, t2 = generate(self.model, self.tokenizer, prompts, max_new_tokens=gen.max_new_tokens,
                                      stop_at_newline=False, seed=round_seed + 1, progress=progress, **common)
            tokens += t1 + t2
            still = []
            for i, title, raw in zip(pending, got_titles, raw_bodies):
                body = parse_body(raw, gen.min_text_chars)
                if body is None:
                    failures += 1
                    still.append(i)
                else:
                    titles[i], texts[i] = title, body
            pending = still
        return {"titles": titles, "texts": texts, "parse_failures": failures, "failed": len(pending),
                "tokens": tokens, "prefixes": prefixes}

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """MLflow: control columns (rating, main_category, text_chars) -> title and text per row."""
        gen = GenerationParams(**self.config["generation"])
        frame = frame.copy()
        for col in ("main_category", "text_chars"):
            if col not in frame:
                frame[col] = None
        out = self.write(frame[["rating", "main_category", "text_chars"]], gen, seed=self.config["seed"])
        return pd.DataFrame({"title": out["titles"], "text": out["texts"]})


def generator_config(gen: GeneratorParams, generation: GenerationParams, *, base_sha256: str, seed: int,
                     base_seed: int, privacy: dict) -> dict:
    """The config.json of a saved generator."""
    return {
        "format_version": FORMAT_VERSION,
        "base_model": gen.base_model,
        "base_sha256": base_sha256,
        "base_seed": base_seed,
        "tokenizer": "byte-level, built in code" if gen.base_model == TINY_LLAMA else f"the base model's ({gen.base_model})",
        "lora": {k: v for k, v in asdict(gen).items() if k.startswith("lora_") or k == "target_modules"},
        "max_seq_len": gen.max_seq_len,
        "generation": asdict(generation),
        "seed": seed,
        "privacy": privacy,
        "prompt_format": "<control prefix>\\ntitle: <title>\\nreview: <text><eos>",
    }
