"""Text fidelity: pure functions over embeddings and texts (no models, no files).

Every distance here is computed for synthetic vs real and, where a baseline makes
sense, for real vs real (train vs test), so that a number can be read against what
two samples of the same real distribution give.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from stages.textchecks import WRONG_VOICES

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)  # letters, with an inner apostrophe
_TOKEN = re.compile(r"\w+", re.UNICODE)
_TERMINAL = tuple(".!?)\"'”’…*:;]>~")  # endings that close a sentence or a quote, or an emoticon


def words(text: str) -> list[str]:
    """Lower-case alphabetic words of a text."""
    return _WORD.findall(text.lower())


# ---------------------------------------------------------------- embedding distances


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets (the FID formula)."""
    from scipy import linalg

    if len(a) < 2 or len(b) < 2:
        raise ValueError("frechet_distance needs at least two embeddings on each side")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    covmean = np.real(covmean)  # sqrtm returns tiny imaginary parts from round-off
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
    return max(value, 0.0)


def nn_cosine(queries: np.ndarray, reference: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
    """Per query, the cosine similarity to its nearest reference embedding (inputs L2-normalised)."""
    best = np.empty(len(queries), dtype=np.float64)
    for start in range(0, len(queries), chunk):
        sims = queries[start : start + chunk] @ reference.T
        best[start : start + chunk] = sims.max(axis=1)
    return best


def mauve(p: np.ndarray, q: np.ndarray, *, clusters: int | None, scaling: float, seed: int) -> float:
    """MAUVE (Pillutla et al., 2021): area under the divergence frontier of quantised embeddings.

    Both sets are reduced with PCA (90% of the variance), jointly quantised with k-means
    into `clusters` buckets (default n/10), and compared as histograms P and Q along the
    mixtures R = wP + (1-w)Q: the frontier is (exp(-c KL(Q|R)), exp(-c KL(P|R))).
    1 means indistinguishable, values near 0 mean disjoint.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    data = np.vstack([p, q]).astype(np.float64)
    pca = PCA(n_components=min(data.shape) - 1 or 1, random_state=seed).fit(data)
    keep = int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), 0.9) + 1)
    reduced = pca.transform(data)[:, :keep]
    k = clusters or max(2, round(len(data) / 10))
    k = min(k, len(data))
    labels = KMeans(n_clusters=k, n_init=5, max_iter=500, random_state=seed).fit_predict(reduced)
    hist_p = np.bincount(labels[: len(p)], minlength=k) / len(p)
    hist_q = np.bincount(labels[len(p) :], minlength=k) / len(q)
    return mauve_from_histograms(hist_p, hist_q, scaling=scaling)


def mauve_from_histograms(p: np.ndarray, q: np.ndarray, *, scaling: float, grid: int = 25) -> float:
    """Area under the divergence frontier of two histograms, as in the reference implementation."""
    weights = np.linspace(1e-6, 1 - 1e-6, grid)
    points = [(0.0, 1.0)]
    for w in weights:
        r = w * p + (1 - w) * q
        points.append((math.exp(-scaling * _kl(q, r)), math.exp(-scaling * _kl(p, r))))
    points.append((1.0, 0.0))
    xs, ys = np.array(points).T
    order = np.argsort(xs)
    return float(np.trapz(ys[order], xs[order]))


def _kl(a: np.ndarray, b: np.ndarray) -> float:
    mask = a > 0
    return float(np.sum(a[mask] * np.log(a[mask] / b[mask])))


# ---------------------------------------------------------------- word and length distributions


def word_js_divergence(texts_a: Iterable[str], texts_b: Iterable[str]) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) between the unigram distributions of two corpora."""
    from scipy.spatial.distance import jensenshannon

    counts_a = Counter(w for t in texts_a for w in words(t))
    counts_b = Counter(w for t in texts_b for w in words(t))
    vocab = sorted(set(counts_a) | set(counts_b))
    if not counts_a or not counts_b:
        return 1.0 if counts_a or counts_b else 0.0
    va = np.array([counts_a[w] for w in vocab], dtype=np.float64)
    vb = np.array([counts_b[w] for w in vocab], dtype=np.float64)
    return float(jensenshannon(va / va.sum(), vb / vb.sum(), base=2) ** 2)


def length_distance(texts_a: Sequence[str], texts_b: Sequence[str]) -> dict[str, float]:
    """KS statistic and Wasserstein distance (in words) between the word-count distributions."""
    from scipy.stats import ks_2samp, wasserstein_distance

    la = np.array([len(t.split()) for t in texts_a], dtype=np.float64)
    lb = np.array([len(t.split()) for t in texts_b], dtype=np.float64)
    return {
        "ks": float(ks_2samp(la, lb).statistic),
        "wasserstein_words": float(wasserstein_distance(la, lb)),
        "mean_words_a": float(la.mean()),
        "mean_words_b": float(lb.mean()),
    }


# ---------------------------------------------------------------- quality checks

QUALITY_CHECKS = ("empty", "truncated", "abrupt_ending", "repeated_phrase", "non_text_chars", *WRONG_VOICES)
REPEAT_NGRAM = 4  # a word 4-gram said three times in one review is a generation loop, not style
REPEAT_MIN_COUNT = 3
NON_TEXT_SHARE = 0.05  # above this share of symbol/control characters a text is flagged


def build_vocabulary(texts: Iterable[str]) -> frozenset[str]:
    """The set of lower-case words in a real corpus (the gibberish check's reference)."""
    return frozenset(w for t in texts for w in words(t))


def quality_flags(text: str, vocabulary: frozenset[str]) -> dict[str, bool]:
    """Which of QUALITY_CHECKS a text fails (True = problem)."""
    stripped = (text or "").strip()
    tokens = words(stripped)
    empty = not _TOKEN.search(stripped)
    ends_clean = stripped.endswith(_TERMINAL) or (bool(stripped) and not stripped[-1].isalnum())
    last = stripped.split()[-1].lower() if stripped.split() else ""
    # Truncated: stops inside a word, i.e. the last token is letters that are not a known word.
    truncated = not empty and not ends_clean and last.isalpha() and last not in vocabulary
    grams = Counter(tuple(tokens[i : i + REPEAT_NGRAM]) for i in range(len(tokens) - REPEAT_NGRAM + 1))
    odd = sum(1 for ch in stripped if _is_non_text(ch))
    return {
        "empty": empty,
        "truncated": truncated,
        "abrupt_ending": not empty and not ends_clean,
        "repeated_phrase": bool(grams) and max(grams.values()) >= REPEAT_MIN_COUNT,
        "non_text_chars": bool(stripped) and odd / len(stripped) > NON_TEXT_SHARE,
        # "Here's a 5-star review of ...", "our products": an answer or the shop, not a buyer (stages/textchecks.py)
        **{name: pattern.search(stripped) is not None for name, pattern in WRONG_VOICES.items()},
    }


def _is_non_text(ch: str) -> bool:
    import unicodedata

    if ch.isalnum() or ch.isspace():
        return False
    category = unicodedata.category(ch)
    # Punctuation (P*) and emoji/symbols people type (So) are text; controls, private use,
    # unassigned and the replacement character are not, nor are math/currency symbol runs.
    if category.startswith("P") or (category == "So" and ch != "\ufffd"):
        return False
    return category in ("Cc", "Cf", "Co", "Cn", "Cs", "Sm", "Sk") or ch == "\ufffd"


def quality_report(texts: Sequence[str], vocabulary: frozenset[str]) -> dict[str, float]:
    """Share of texts failing each quality check, plus the gibberish share of out-of-vocabulary words."""
    flags = [quality_flags(t, vocabulary) for t in texts]
    out = {f"{check}_share": float(np.mean([f[check] for f in flags])) if flags else 0.0 for check in QUALITY_CHECKS}
    tokens = [w for t in texts for w in words(t)]
    out["gibberish_share"] = float(np.mean([w not in vocabulary for w in tokens])) if tokens else 0.0
    out["any_problem_share"] = float(np.mean([any(f.values()) for f in flags])) if flags else 0.0
    out["texts"] = len(texts)
    return out


def label_fidelity(conditioned: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """How often the real-trained classifier recovers each synthetic record's rating.

    That is the rating its text was conditioned on, or the DP judge's where the selection
    relabelled the draft (synthesize.selection.prompt_trust below 1).
    """
    conditioned, predicted = np.asarray(conditioned), np.asarray(predicted)
    return {
        "accuracy": float((conditioned == predicted).mean()) if len(conditioned) else float("nan"),
        "within_one": float((np.abs(conditioned - predicted) <= 1).mean()) if len(conditioned) else float("nan"),
    }
