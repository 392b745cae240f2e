"""The classical baseline: TF-IDF word n-grams and a multinomial logistic regression."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from stages.train.params import TfidfParams


class TfidfBaseline:
    """TF-IDF + logistic regression over star ratings; `fit` learns, fitted attributes end in _."""

    def __init__(self, params: TfidfParams, *, class_weighting: str, seed: int):
        self.params = params
        self.class_weighting = class_weighting
        self.seed = seed

    def fit(self, texts: Sequence[str], ratings: np.ndarray) -> TfidfBaseline:
        """Fit vectorizer and regression; records fit_seconds_."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        started = time.perf_counter()
        self.vectorizer_ = TfidfVectorizer(
            max_features=self.params.max_features, ngram_range=(1, self.params.ngram_max),
            sublinear_tf=True, min_df=1,
        )
        features = self.vectorizer_.fit_transform(list(texts))
        self.model_ = LogisticRegression(
            C=self.params.c, max_iter=self.params.max_iter, random_state=self.seed,
            class_weight="balanced" if self.class_weighting == "balanced" else None,
        )
        self.model_.fit(features, np.asarray(ratings))
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted star ratings."""
        return self.model_.predict(self.vectorizer_.transform(list(texts))).astype(np.int64)
