"""The rating-consistency filter: drop a synthetic record whose text reads the opposite of its rating.

The label of a synthetic record is the rating its text was generated for. When the text
says the opposite (a gushing "1-star" review, a furious "5-star" one), the record teaches a
classifier the wrong thing. The judge sees no private data: all-MiniLM-L6-v2 (a public
sentence encoder) and the fixed anchor sentences below, written for this project. A text's
judged rating is the softmax-weighted mean of 1..5 over its cosine similarity to each
rating's anchors. Running it on generated texts is post-processing, so it costs no privacy.

The judge is weak (Spearman 0.40 with the true rating on the real Electronics test split),
so it only acts on the gross cases: a 1- or 2-star record is dropped when its text is judged
above `low_max`, a 4- or 5-star record when judged below `high_min`; 3-star records are kept.
On real test reviews the default thresholds drop about 5% of each polar class (the judge's
false alarms); what it adds on synthetic data is measured in the README.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# One to five stars, three plain sentences each; no private text went into them.
ANCHORS: dict[int, tuple[str, ...]] = {
    1: ("Terrible product, one star. It broke and I want a refund.", "Worst purchase ever. Do not buy this junk.",
        "Completely useless, stopped working immediately."),
    2: ("Poor quality, disappointed. Two stars.", "Not good, it has many problems and I regret buying it.",
        "Below expectations, mostly does not work well."),
    3: ("It is okay, average. Three stars.", "Decent but nothing special, some pros and some cons.",
        "Mixed feelings, it works but has issues."),
    4: ("Good product, works well, four stars.", "Pretty good, I like it with a minor complaint.",
        "Solid and reliable, happy with it overall."),
    5: ("Excellent! Five stars, I love it.", "Perfect, works great, highly recommend.",
        "Amazing product, exactly what I wanted."),
}


def anchor_centroids(embedder, anchors: Mapping[object, Sequence[str]]) -> np.ndarray:
    """One unit-length centroid of each group's anchor embeddings, a row per group in the mapping's order."""
    centroids = np.stack([embedder.encode(list(group)).mean(axis=0) for group in anchors.values()])
    return centroids / np.linalg.norm(centroids, axis=1, keepdims=True)


class RatingJudge:
    """Judged star rating of texts: similarity to the anchors under a public sentence encoder."""

    def __init__(self, embedder, *, temperature: float):
        self.embedder = embedder
        self.temperature = temperature
        self.centroids_ = anchor_centroids(embedder, {r: ANCHORS[r] for r in sorted(ANCHORS)})

    def judge(self, texts: Sequence[str]) -> np.ndarray:
        """The judged rating (a real number in [1, 5]) of each text."""
        if not len(texts):
            return np.zeros(0)
        return self.judge_embedded(self.embedder.encode(list(texts), desc="synthesize: consistency"))

    def judge_embedded(self, embeddings: np.ndarray) -> np.ndarray:
        """The judged rating of each text from its unit embedding (this judge's encoder's)."""
        if not len(embeddings):
            return np.zeros(0)
        scores = embeddings @ self.centroids_.T
        weights = np.exp(self.temperature * (scores - scores.max(axis=1, keepdims=True)))
        weights /= weights.sum(axis=1, keepdims=True)
        return weights @ np.arange(1, 6, dtype=float)


def inconsistent(ratings: Sequence[int], judged: np.ndarray, *, low_max: float, high_min: float) -> np.ndarray:
    """True where a polar rating's text is judged on the other side: 1-2 stars above low_max, 4-5 below high_min."""
    ratings = np.asarray(ratings, dtype=int)
    judged = np.asarray(judged, dtype=float)
    return ((ratings <= 2) & (judged > low_max)) | ((ratings >= 4) & (judged < high_min))


def rating_judge(params, embedder=None) -> RatingJudge:
    """The judge of `synthesize.consistency` (ConsistencyParams); its encoder loaded offline unless one is given."""
    if embedder is None:
        from stages.evaluate.embed import Embedder

        embedder = Embedder(params.judge_model, batch_size=params.batch_size)
    return RatingJudge(embedder, temperature=params.temperature)
