"""The voice judge: drop a synthetic draft that reads as the shop, its support desk or another kind of text, not a buyer.

An instruct model asked for a review sometimes answers as someone else: "I'm happy to do
that for you. Can I ask what's the problem?", "We appreciate your patience.", "I'm glad to
have you on the team." The fixed patterns of stages/textchecks.py catch the phrasings
someone has read; this judge catches the voice. It sees no private data: all-MiniLM-L6-v2
(a public sentence encoder) and the anchor sentences below, written for this project and
kept free of any one product category. A text's margin is its cosine similarity to the
buyers' centroid minus the larger of its similarities to the others' centroids; a draft
below `min_margin` is dropped. Running it on generated texts is post-processing: no
privacy cost.

The judge is weak on short generic texts: real reviews of two or three words of approval or
of delivery news sit near the shop's anchors, so the default margin only takes the clear cases. Measured on the
shared sample (benchmarks/bench_voice.py, README): -0.15 drops 0.5% of the real Electronics
reviews and 0.9% of the multi-category file, against 2.1% of `s27-default`'s released
texts, which had passed the seller-talk patterns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stages.synthesize.consistency import anchor_centroids

# No private text went into these; the buyers' cover no single category, so other categories are not "other".
ANCHORS: dict[str, tuple[str, ...]] = {
    "buyer": (
        "I bought this and it works great. Good quality for the price.",
        "Stopped working after two weeks. Very disappointed with this purchase.",
        "It fits well and looks nice, but it arrived with a scratch.",
        "Love this product! Would buy again.",
        "Returned it. Cheap material and it broke the first time I used it.",
        "My son loves it. Easy to use and it does what it says.",
        "Not worth the money. The description was misleading.",
    ),
    "seller": (
        "Thank you for contacting us. We are happy to help you with your order.",
        "I'm happy to do that for you. Can I ask what the problem is?",
        "We apologize for the inconvenience. Please send us your order number and we will replace it.",
        "Our team is always here to assist you. We value you as our customer.",
        "I'm glad you liked it! Let me know if you have any other questions.",
    ),
    "other": (
        "We spent a week travelling through the mountains and stayed in a small hotel.",
        "Once upon a time there was a king who lived in a castle.",
        "The meeting is scheduled for Monday. Please bring your notes.",
        "The company announced its quarterly results and plans to expand its business.",
        "In this essay I will discuss the importance of education.",
    ),
}


class VoiceJudge:
    """How much more a text reads like a buyer's review than like the shop or another kind of text."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.centroids_ = anchor_centroids(embedder, ANCHORS)  # the buyers' first, then the others

    def margins_of(self, embeddings: np.ndarray) -> np.ndarray:
        """Each unit embedding's buyer similarity minus its largest other similarity (in [-2, 2])."""
        similarity = embeddings @ self.centroids_.T
        return similarity[:, 0] - similarity[:, 1:].max(axis=1)

    def margins(self, texts: Sequence[str]) -> np.ndarray:
        """The margin of each text; an empty list gives an empty array."""
        if not len(texts):
            return np.zeros(0)
        return self.margins_of(self.embedder.encode(list(texts), desc="synthesize: voice"))


def voice_judge(params, embedder=None) -> VoiceJudge:
    """The judge of `synthesize.voice` (VoiceParams); its encoder loaded offline unless one is given."""
    if embedder is None:
        from stages.evaluate.embed import Embedder

        embedder = Embedder(params.judge_model, batch_size=params.batch_size)
    return VoiceJudge(embedder)
