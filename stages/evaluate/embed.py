"""Sentence embeddings with all-MiniLM-L6-v2 from the installed package, offline."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stages.errors import PipelineInputError


def resolve_model_dir(spec: str) -> Path:
    """`package:<name>` -> that package's model/ folder; anything else is a local path."""
    if spec.startswith("package:"):
        name = spec.split(":", 1)[1]
        found = importlib.util.find_spec(name)
        if found is None or found.origin is None:
            raise PipelineInputError(
                f"embedding model {spec!r}: package {name!r} is not installed; install it "
                "(see requirements.lock) or set evaluate.fidelity.embedding_model to a local folder."
            )
        path = Path(found.origin).parent / "model"
    else:
        path = Path(spec)
    if not (path / "config.json").is_file():
        raise PipelineInputError(f"embedding model folder {path} has no config.json; point "
                                 "evaluate.fidelity.embedding_model at a sentence-transformers folder.")
    return path


class Embedder:
    """Encodes texts into L2-normalised sentence embeddings."""

    def __init__(self, spec: str, *, batch_size: int):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model_ = SentenceTransformer(str(resolve_model_dir(spec)), device="cpu")
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str], desc: str = "embed") -> np.ndarray:
        """Embeddings, shape (n, dim), unit length."""
        if not len(texts):
            return np.zeros((0, self.model_.get_sentence_embedding_dimension()), dtype=np.float32)
        return self.model_.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            show_progress_bar=sys.stderr.isatty() and len(texts) > self.batch_size,  # as tqdm's disable=None
            convert_to_numpy=True,
        ).astype(np.float32)
