"""Utility: the train stage's scores, and feature-importance consistency of the TF-IDF baselines."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# metrics/train.json key -> evaluate key (utility.<...>)
TRAIN_KEYS = {
    "real.lora.accuracy": "real.lora.accuracy",
    "real.lora.macro_f1": "real.lora.macro_f1",
    "synthetic.lora.accuracy": "synthetic.lora.accuracy",
    "synthetic.lora.macro_f1": "synthetic.lora.macro_f1",
    "real.tfidf.accuracy": "real.tfidf.accuracy",
    "real.tfidf.macro_f1": "real.tfidf.macro_f1",
    "synthetic.tfidf.accuracy": "synthetic.tfidf.accuracy",
    "synthetic.tfidf.macro_f1": "synthetic.tfidf.macro_f1",
    "real.majority.accuracy": "real.majority.accuracy",
    "real.majority.macro_f1": "real.majority.macro_f1",
    "ratio.lora.accuracy": "ratio.lora.accuracy",
    "ratio.lora.macro_f1": "ratio.lora.macro_f1",
    "ratio.tfidf.accuracy": "ratio.tfidf.accuracy",
    "ratio.tfidf.macro_f1": "ratio.tfidf.macro_f1",
    "lift.lora.macro_f1": "lift.lora.macro_f1",
    "lift.tfidf.macro_f1": "lift.tfidf.macro_f1",
    "train_rows_equal": "train_rows_equal",
}


def train_scores(train_metrics: Mapping) -> dict[str, float | None]:
    """The train stage's test scores and synthetic/real ratios, under utility.* names (missing ones: None)."""
    return {dst: train_metrics.get(src) for src, dst in TRAIN_KEYS.items()}


def feature_importance(baseline) -> dict[str, float]:
    """Per TF-IDF feature, the L2 norm of its logistic-regression weights across the rating classes."""
    names = baseline.vectorizer_.get_feature_names_out()
    weights = np.linalg.norm(np.atleast_2d(baseline.model_.coef_), axis=0)
    return dict(zip(names, weights.tolist()))


def importance_consistency(real: Mapping[str, float], synthetic: Mapping[str, float], *, k: int) -> dict[str, float]:
    """Spearman correlation of the importances over the shared vocabulary, and the top-k overlap |A ∩ B| / k.

    The correlation is taken over every feature both models know, not over the union of
    the two top-k lists: on that union, features picked for being high in one model are
    low in the other by selection alone, so two unrelated models would score near -1.
    NaN when fewer than three features are shared or either side is constant.
    """
    from scipy.stats import spearmanr

    shared = sorted(set(real) & set(synthetic))
    a = np.array([real[f] for f in shared])
    b = np.array([synthetic[f] for f in shared])
    rho = float(spearmanr(a, b).statistic) if len(shared) >= 3 and a.std() > 0 and b.std() > 0 else float("nan")
    top_real = sorted(real, key=lambda f: (-real[f], f))[:k]
    top_syn = sorted(synthetic, key=lambda f: (-synthetic[f], f))[:k]
    k_eff = min(k, len(top_real), len(top_syn)) or 1
    return {
        "feature_rank_correlation": rho,
        "feature_shared_vocabulary": len(shared),
        "feature_topk_overlap": len(set(top_real) & set(top_syn)) / k_eff,
        "feature_topk": k_eff,
    }
