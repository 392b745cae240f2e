"""ReviewGenerator: the (fine-tuned or zero-shot) LM behind one interface for the stage, its tests and MLflow.

Saved as a folder: `adapter/` (the PEFT LoRA weights; absent for the zero-shot
reference, `config.json` then says `fine_tuned: false`), `tokenizer/` (the base model's
public tokenizer, saved for convenience), `config.json` (the base model reference and
its checksum, LoRA and generation settings, the prompt format). The base weights are
not copied: they are found again from the reference and checked against the checksum.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from stages.errors import PipelineInputError
from stages.synthesize.engine import generate_batch, generate_records, generation_engine
from stages.synthesize.params import TINY_LLAMA, GenerationParams, GeneratorParams
from stages.synthesize.loading import load_base, resolve_base_model
from stages.synthesize.prompts import PLAIN_TEMPLATE, SYSTEM, has_chat_template

FORMAT_VERSION = 2  # 2: chat-template instruction prompts, one pass with a "Title:" line


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
    """A causal LM (LoRA-tuned, or the base itself for zero-shot) that writes a title and body per control row."""

    def __init__(self, model, tokenizer, config: dict):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self._generation_model = None  # the merged, cast copy (or its CTranslate2 conversion), built on first use
        self._generation_key = None

    @property
    def fine_tuned(self) -> bool:
        """False for the zero-shot reference (no adapter, nothing learned from the data)."""
        return bool(self.config.get("fine_tuned", True))

    # ------------------------------------------------------------ persistence

    def save(self, directory: Path) -> None:
        """Write adapter/ (fine-tuned only), tokenizer/ and config.json into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        if self.fine_tuned:
            self.model.save_pretrained(str(directory / "adapter"))
        self.tokenizer.save_pretrained(str(directory / "tokenizer"))
        (directory / "config.json").write_text(json.dumps(self.config, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load_dir(cls, directory: str | Path) -> ReviewGenerator:
        """Rebuild the generator from a saved folder; the base model must still be where it was."""
        directory = Path(directory)
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise PipelineInputError(f"{directory} holds no generator (config.json is missing); rerun synthesize.")
        config = json.loads(config_path.read_text())
        if config.get("format_version") != FORMAT_VERSION:
            raise PipelineInputError(
                f"{directory} holds a generator of format {config.get('format_version')}, this code reads "
                f"format {FORMAT_VERSION}; rerun synthesize."
            )
        base, tokenizer = load_base(config["base_model"], seed=config["base_seed"])
        checksum = base_checksum(base, config["base_model"])
        if checksum != config["base_sha256"]:
            raise PipelineInputError(
                f"the base model {config['base_model']!r} differs from the one the adapter was trained on "
                "(checksum mismatch); restore that base model or rerun synthesize."
            )
        model = base
        if config["fine_tuned"]:
            from peft import PeftModel

            model = PeftModel.from_pretrained(base, str(directory / "adapter"))
        model.eval()
        return cls(model, tokenizer, config)

    @classmethod
    def load(cls, artifacts: dict) -> ReviewGenerator:
        """MLflow pyfunc entry point: artifacts['generator'] is the saved folder."""
        return cls.load_dir(artifacts["generator"])

    # ------------------------------------------------------------ generation

    def write(self, controls: pd.DataFrame, gen: GenerationParams, *, seed: int, progress=None) -> dict:
        """Title and body per control row, retrying parse failures; returns texts, prompts and counts.

        `controls` has rating, main_category and text_chars (product_title optional). Rows
        that still fail after `gen.max_attempts` have text None and are counted in `failed`.
        """
        return generate_records(self._generation(gen), self.tokenizer, controls, gen, seed=seed, progress=progress)

    def write_batch(self, controls: pd.DataFrame, gen: GenerationParams, *, seed: int, batch_index: int) -> dict:
        """Batch `batch_index` of `write` alone: its records depend only on (seed, batch_index) (Ray workers)."""
        out = generate_batch(self._generation(gen), self.tokenizer, controls, gen, seed=seed, batch_index=batch_index)
        return {"titles": out.titles, "texts": out.texts, "prompts": out.prompts,
                "parse_failures": out.parse_failures, "failed": out.failed, "tokens": out.tokens}

    def _generation(self, gen: GenerationParams):
        """The generation copy of the model (LoRA merged, gen.backend, gen.dtype), built once per setting."""
        key = (gen.backend, gen.dtype)
        if self._generation_model is None or self._generation_key != key:
            self._generation_model = None  # free the previous copy before building the next
            self._generation_model = generation_engine(self.model, self.tokenizer, gen)
            self._generation_key = key
        return self._generation_model

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """MLflow: control columns (rating, main_category, text_chars, product_title) -> title and text per row."""
        gen = GenerationParams(**self.config["generation"])
        frame = frame.copy()
        for col in ("main_category", "text_chars", "product_title"):
            if col not in frame:
                frame[col] = None
        out = self.write(frame[["rating", "main_category", "text_chars", "product_title"]], gen, seed=self.config["seed"])
        return pd.DataFrame({"title": out["titles"], "text": out["texts"]})


def generator_config(gen: GeneratorParams, generation: GenerationParams, *, base_sha256: str, seed: int,
                     base_seed: int, privacy: dict, tokenizer) -> dict:
    """The config.json of a saved generator."""
    return {
        "format_version": FORMAT_VERSION,
        "fine_tuned": gen.epochs > 0,
        "base_model": gen.base_model,
        "base_sha256": base_sha256,
        "base_seed": base_seed,
        "tokenizer": "byte-level, built in code" if gen.base_model == TINY_LLAMA else f"the base model's ({gen.base_model})",
        "lora": {k: v for k, v in asdict(gen).items() if k.startswith("lora_") or k == "target_modules"},
        "max_seq_len": gen.max_seq_len,
        "generation": asdict(generation),
        "seed": seed,
        "privacy": privacy,
        "prompt_format": (
            f"the base's chat template: system {SYSTEM!r}, user <instruction>, assistant 'Title: <title>\\n<text>'"
            if has_chat_template(tokenizer) else f"plain: {PLAIN_TEMPLATE!r}, then 'Title: <title>\\n<text><eos>'"
        ),
    }
