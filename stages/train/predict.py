"""Rate reviews with a trained classifier directory; also the class the MLflow pyfunc serves."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stages.errors import PipelineInputError, SchemaError
from stages.schema import RATINGS
from stages.train.classifier import CONFIG_NAME, _offline, resolve_base_model

PROB_COLUMNS = tuple(f"prob_{rating}" for rating in RATINGS)


def review_texts(frame: pd.DataFrame, *, use_title: bool, where: str = "input") -> list[str]:
    """The model input per row: the text, with the title in front when asked and present."""
    if "text" not in frame.columns:
        raise SchemaError(
            f"{where} has no 'text' column (columns: {list(frame.columns)}); "
            "give one string column named 'text' holding the review body."
        )
    text = frame["text"].fillna("").astype(str)
    if use_title and "title" in frame.columns:
        title = frame["title"].fillna("").astype(str)
        text = (title + "\n" + text).where(title.str.len() > 0, text)
    return text.tolist()


class RatingClassifier:
    """A LoRA-fine-tuned rating classifier loaded from its directory (see save_classifier)."""

    def __init__(self, model, tokenizer, config: Mapping):
        self.model_ = model
        self.tokenizer_ = tokenizer
        self.config_ = dict(config)

    @classmethod
    def from_dir(cls, path: str | Path) -> RatingClassifier:
        """Load base + adapter + tokenizer from a models/classifier/<source> directory."""
        path = Path(path)
        config_file = path / CONFIG_NAME
        if not config_file.is_file():
            raise PipelineInputError(f"{path} is not a trained classifier: {CONFIG_NAME} is missing; run the train stage.")
        _offline()
        from peft import PeftModel
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        config = json.loads(config_file.read_text(encoding="utf-8"))
        base = path / config["base_dir"] if config["base_dir"] else resolve_base_model(config["base_model"])
        id2label = {int(k): str(v) for k, v in config["id2label"].items()}
        model = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()}
        )
        tokenizer = AutoTokenizer.from_pretrained(path / config["tokenizer_dir"])
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        model = PeftModel.from_pretrained(model, path / config["adapter_dir"])
        model.eval()
        return cls(model, tokenizer, config)

    @classmethod
    def load(cls, artifacts: Mapping[str, str]) -> RatingClassifier:
        """The pyfunc entry point (stages.tracking): artifacts['model_dir'] is the classifier directory."""
        return cls.from_dir(artifacts["model_dir"])

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape (n, 5), columns in rating order 1..5."""
        import torch
        from tqdm.auto import tqdm

        encoded = self.tokenizer_(list(texts), truncation=True, max_length=self.config_["max_length"])["input_ids"]
        # Batches of similar length waste less on padding; the order is undone at the end.
        order = np.argsort([len(ids) for ids in encoded], kind="stable")
        probs = np.zeros((len(encoded), len(RATINGS)), dtype=np.float32)
        size = self.config_["batch_size"]
        with torch.no_grad():
            for start in tqdm(range(0, len(order), size), desc="predict", unit="batch", disable=None):
                idx = order[start : start + size]
                batch = self.tokenizer_.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt")
                logits = self.model_(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                probs[idx] = torch.softmax(logits.float(), dim=-1).numpy()
        return probs

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predicted rating and class probabilities per row (review_id kept when present)."""
        if not isinstance(frame, pd.DataFrame):
            raise SchemaError(f"predict expects a DataFrame with a 'text' column, got {type(frame).__name__}.")
        texts = review_texts(frame, use_title=self.config_["use_title"])
        probs = self.predict_proba(texts)
        out = pd.DataFrame(probs, columns=list(PROB_COLUMNS))
        out.insert(0, "rating_pred", (np.asarray(RATINGS)[probs.argmax(axis=1)]).astype(np.int8))
        if "review_id" in frame.columns:
            out.insert(0, "review_id", frame["review_id"].to_numpy())
        return out
