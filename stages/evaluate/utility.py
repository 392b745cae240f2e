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
    """Spearman correlation over the union of both top-k lists, and the top-k overlap |A ∩ B| / k.

    A feature missing from one model's vocabulary has importance 0 there.
    """
    from scipy.stats import spearmanr

    top_real = sorted(real, key=lambda f: (-real[f], f))[:k]
    top_syn = sorted(synthetic, key=lambda f: (-synthetic[f], f))[:k]
    union = sorted(set(top_real) | set(top_syn))
    a = np.array([real.get(f, 0.0) for f in union])
    b = np.array([synthetic.get(f, 0.0) for f in union])
    rho = float(spearmanr(a, b).statistic) if len(union) > 1 and a.std() > 0 and b.std() > 0 else float("nan")
    k_eff = min(k, len(top_real), len(top_syn)) or 1
    return {
        "feature_rank_correlation": rho,
        "feature_topk_overlap": len(set(top_real) & set(top_syn)) / k_eff,
        "feature_topk": k_eff,
    }
