"""Privacy metrics as pure functions: distances to closest records, membership inference, canaries.

Conventions: a DCR share near 0.5 means synthetic records are no closer to the
training records than to held-out real records (equal numbers of rows, each user
counted at most a fixed number of times; no memorisation); 1.0 means every synthetic
record sits closest to a training record (copies).
"""

from __future__ import annotations

import math
import random
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

CANARY_FIELDS = ("name", "street", "phone", "secret")
SECRET_ALPHABET = string.ascii_uppercase + string.digits


# ---------------------------------------------------------------- distance to closest record


def nearest_distances(queries: np.ndarray, reference: np.ndarray, *, metric: str, k: int = 2) -> np.ndarray:
    """Distances from each query to its k nearest reference rows, shape (n, k), ascending."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(reference))
    nn = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(reference)
    distances, _ = nn.kneighbors(queries)
    return distances


BOOTSTRAP_RESAMPLES = 2000


def capped_rows(units: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of a random subset with at most `cap` rows per unit, in random order (all rows when cap is None)."""
    order = rng.permutation(len(units))
    if cap is None:
        return order
    from stages.synthesize.dp import first_per_unit  # the training set's per-user bound, on a given order

    return first_per_unit(units, cap, order)


def dcr_metrics(synthetic: np.ndarray, train: np.ndarray, holdout: np.ndarray, *, metric: str, seed: int,
                confidence: float = 0.95, train_units: np.ndarray | None = None,
                holdout_units: np.ndarray | None = None, rows_per_unit: int | None = None,
                draws: int = 1) -> dict:
    """DCR to train vs to held-out, the DCR share with its interval, and the NN distance ratio.

    The two references must be alike but for membership, or the share reads a difference
    between them as leakage. Each draw therefore takes at most `rows_per_unit` rows per
    privacy unit (user) from either side, then as many rows from both: with a user-level
    split a held-out set of few, prolific users is less diverse than the training set, and
    anything generic sits closer to the training rows by that alone. A record's score is
    its share of draws in which it is closer to the training reference (ties count half);
    the share is the mean score.

    The interval covers both sources of chance. Resampling the synthetic rows alone misses
    the larger one when the references hold a few hundred people: generic texts share a
    few nearest neighbours, and whether those sit in train or held-out moves the share by
    ±0.1. So each draw is repeated on half of the drawn rows per side (half-sampling
    without replacement spreads like a bootstrap of the full reference), and every
    bootstrap replicate pairs one half-sample draw with a resample of the synthetic rows;
    the replicates' spread around their mean is laid around the share.

    Exact copies are counted against the whole training sample, not a draw: a copy of a
    row left out of the draw would otherwise go unseen.
    """
    if len(train) < 2 or len(holdout) < 2 or len(synthetic) == 0:
        raise ValueError("dcr_metrics needs >= 2 training rows, >= 2 held-out rows and >= 1 synthetic row")
    if draws < 1 or (rows_per_unit is not None and rows_per_unit < 1):
        raise ValueError(f"dcr_metrics: draws ({draws}) and rows_per_unit ({rows_per_unit}) must be >= 1")
    train_units = np.arange(len(train)) if train_units is None else np.asarray(train_units)
    holdout_units = np.arange(len(holdout)) if holdout_units is None else np.asarray(holdout_units)
    if len(train_units) != len(train) or len(holdout_units) != len(holdout):
        raise ValueError("dcr_metrics: train_units/holdout_units need one unit per reference row")
    rng = np.random.default_rng(seed)
    full, half = np.zeros((draws, len(synthetic))), np.zeros((draws, len(synthetic)))
    d_train_all, d_hold_all, nndr, nndr_hold = [], [], [], []
    n = 0
    for draw in range(draws):
        a = capped_rows(train_units, rows_per_unit, rng)
        b = capped_rows(holdout_units, rows_per_unit, rng)
        n = min(len(a), len(b))
        if n < 4:
            raise ValueError(f"dcr_metrics: only {n} reference row(s) per side after the per-unit cap; "
                             "sample more rows or raise rows_per_unit")
        d_train = nearest_distances(synthetic, train[a[:n]], metric=metric)
        d_hold = nearest_distances(synthetic, holdout[b[:n]], metric=metric)
        full[draw] = _closer(d_train[:, 0], d_hold[:, 0])
        half[draw] = _closer(nearest_distances(synthetic, train[a[: n // 2]], metric=metric, k=1)[:, 0],
                             nearest_distances(synthetic, holdout[b[: n // 2]], metric=metric, k=1)[:, 0])
        d_train_all.append(d_train[:, 0])
        d_hold_all.append(d_hold[:, 0])
        nndr.append(d_train[:, 0] / np.maximum(d_train[:, 1], 1e-12))
        nndr_hold.append(d_hold[:, 0] / np.maximum(d_hold[:, 1], 1e-12))
    share = float(full.mean())
    pick = rng.integers(0, draws, BOOTSTRAP_RESAMPLES)
    rows = rng.integers(0, len(synthetic), (BOOTSTRAP_RESAMPLES, len(synthetic)))
    spread = half[pick[:, None], rows].mean(axis=1) - half.mean()
    tail = (1 - confidence) / 2
    d_train_all, d_hold_all = np.concatenate(d_train_all), np.concatenate(d_hold_all)
    d_full = nearest_distances(synthetic, train, metric=metric, k=1)[:, 0]
    return {
        "dcr_train_median": float(np.median(d_train_all)),
        "dcr_holdout_median": float(np.median(d_hold_all)),
        "dcr_train_p05": float(np.quantile(d_train_all, 0.05)),
        "dcr_share": share,
        "dcr_share_ci_low": float(np.clip(share + np.quantile(spread, tail), 0.0, 1.0)),
        "dcr_share_ci_high": float(np.clip(share + np.quantile(spread, 1 - tail), 0.0, 1.0)),
        "dcr_share_ci_confidence": confidence,
        "dcr_share_draw_sd": float(full.mean(axis=1).std()),  # how far the references alone move the share
        "exact_copies": int((d_full <= 1e-6).sum()),  # float32 cosine of a copy is ~1e-7, not 0
        "nndr_median": float(np.median(np.concatenate(nndr))),
        "nndr_holdout_median": float(np.median(np.concatenate(nndr_hold))),
        "reference_rows": n,
        "reference_draws": draws,
        "synthetic_rows": len(synthetic),
    }


def _closer(d_train: np.ndarray, d_holdout: np.ndarray) -> np.ndarray:
    """1 where the training reference is nearer, 0 where the held-out one is, 0.5 on a tie."""
    return (d_train < d_holdout) + 0.5 * (d_train == d_holdout)


def encode_structured(frames: Sequence[pd.DataFrame], *, numeric: Sequence[str], categorical: Sequence[str]):
    """Encode tables so that the L1 (manhattan) distance between two rows is their Gower distance × columns.

    Numeric columns are divided by their range over all frames; categories are one-hot
    halves (two differing categories are 1 apart); a null is its own category for
    categoricals and a 0/1 indicator next to a median-filled value for numerics.
    """
    joined = pd.concat(frames, ignore_index=True)
    blocks = []
    for col in numeric:
        values = pd.to_numeric(joined[col].astype("Float64"), errors="coerce").astype(float)
        null = values.isna().to_numpy()
        lo, hi = np.nanmin(values) if (~null).any() else 0.0, np.nanmax(values) if (~null).any() else 0.0
        span = (hi - lo) or 1.0
        filled = values.fillna(values.median() if (~null).any() else 0.0).to_numpy()
        blocks.append(((filled - lo) / span)[:, None])
        if null.any():
            blocks.append(null[:, None].astype(float))
    for col in categorical:
        codes = joined[col].astype("object").where(joined[col].notna(), "<null>").astype(str)
        blocks.append(pd.get_dummies(codes).to_numpy(dtype=float) * 0.5)
    encoded = np.hstack(blocks) if blocks else np.zeros((len(joined), 0))
    out, start = [], 0
    for frame in frames:
        out.append(encoded[start : start + len(frame)])
        start += len(frame)
    return out


# ---------------------------------------------------------------- membership inference


def membership_inference(member_losses: np.ndarray, nonmember_losses: np.ndarray, *, fpr: float = 0.01) -> dict:
    """Loss-threshold attack (Yeom et al.): lower loss -> 'member'. AUC and TPR at a fixed FPR."""
    from sklearn.metrics import roc_auc_score, roc_curve

    labels = np.r_[np.ones(len(member_losses)), np.zeros(len(nonmember_losses))]
    scores = -np.r_[member_losses, nonmember_losses]
    fprs, tprs, _ = roc_curve(labels, scores)
    return {
        "auc": float(roc_auc_score(labels, scores)),
        "tpr_at_1pct_fpr": float(np.interp(fpr, fprs, tprs)),
        "members": len(member_losses),
        "nonmembers": len(nonmember_losses),
        "member_loss_mean": float(np.mean(member_losses)),
        "nonmember_loss_mean": float(np.mean(nonmember_losses)),
    }


def calibrated_membership_inference(member_losses: np.ndarray, nonmember_losses: np.ndarray,
                                    member_reference: np.ndarray, nonmember_reference: np.ndarray,
                                    *, fpr: float = 0.01) -> dict:
    """Difficulty-calibrated loss attack (Watson et al., 2022): score = generator loss - base-model loss.

    The plain loss attack also separates members from non-members that differ in how hard
    they are to model, with no memorisation at all. Subtracting each record's loss under
    the base model (the adapter switched off) removes that; `base_model_auc` is the plain
    attack run on the base model alone, i.e. what the split's difference gives away.
    """
    calibrated = membership_inference(np.asarray(member_losses) - np.asarray(member_reference),
                                      np.asarray(nonmember_losses) - np.asarray(nonmember_reference), fpr=fpr)
    return {
        "calibrated.auc": calibrated["auc"],
        "calibrated.tpr_at_1pct_fpr": calibrated["tpr_at_1pct_fpr"],
        "base_model_auc": membership_inference(member_reference, nonmember_reference, fpr=fpr)["auc"],
    }


# ---------------------------------------------------------------- canaries


def _squash(text: str, field: str) -> str:
    """What matching compares: digits only for phones, lower-case alphanumerics otherwise."""
    if field == "phone":
        return re.sub(r"\D", "", text)
    return re.sub(r"[^0-9a-z]", "", text.lower())


def canary_leaks(canaries: Sequence[Mapping], synthetic_texts: Iterable[str], *, partial_fraction: float) -> dict:
    """Verbatim and partial leaks of each canary field in the synthetic texts, per field and per repeat.

    Verbatim: the whole value (lower-cased, spacing and punctuation ignored; digits only for
    phones) appears in some synthetic text. Partial: not verbatim, but a run of at least
    `partial_fraction` of the value's characters does.
    """
    corpus = list(synthetic_texts)
    squashed = {field: "\n".join(_squash(t, field) for t in corpus) for field in ("phone", "name")}
    out: dict = {"canaries": len(canaries)}
    for field in CANARY_FIELDS:
        for kind in ("verbatim", "partial"):
            out[f"{kind}.{field}"] = 0
    repeats = sorted({int(c["repeat"]) for c in canaries})
    for r in repeats:
        out[f"repeat_{r}.canaries"] = 0
        out[f"repeat_{r}.verbatim"] = 0
        out[f"repeat_{r}.partial"] = 0
    for canary in canaries:
        r = int(canary["repeat"])
        out[f"repeat_{r}.canaries"] += 1
        for field in CANARY_FIELDS:
            haystack = squashed["phone" if field == "phone" else "name"]
            value = _squash(str(canary[field]), field)
            kind = _leak_kind(value, haystack, partial_fraction)
            if kind:
                out[f"{kind}.{field}"] += 1
                out[f"repeat_{r}.{kind}"] += 1
    out["verbatim_total"] = sum(out[f"verbatim.{f}"] for f in CANARY_FIELDS)
    out["partial_total"] = sum(out[f"partial.{f}"] for f in CANARY_FIELDS)
    return out


def _leak_kind(value: str, haystack: str, fraction: float) -> str | None:
    if not value:
        return None
    if value in haystack:
        return "verbatim"
    run = max(2, math.ceil(fraction * len(value)))
    if run < len(value) and any(value[i : i + run] in haystack for i in range(len(value) - run + 1)):
        return "partial"
    return None


def reference_secrets(secret: str, n: int, *, seed: int) -> list[str]:
    """n random strings in the canary secret's format (same length and alphabet), never trained on."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        candidate = "".join(rng.choices(SECRET_ALPHABET, k=len(secret)))
        if candidate != secret:
            out.add(candidate)
    return sorted(out)


def exposure(canary_loss: float, reference_losses: np.ndarray) -> dict[str, float]:
    """Secret Sharer exposure: log2 |R| - log2 rank of the canary among itself and its references by loss.

    |R| counts the canary and its references; a rank of 1 (the canary is the most likely
    candidate) gives the maximum, log2 |R|; a canary ranked like a random candidate gives ~1.
    """
    reference_losses = np.asarray(reference_losses, dtype=np.float64)
    rank = 1 + int((reference_losses < canary_loss).sum()) + 0.5 * int((reference_losses == canary_loss).sum())
    size = len(reference_losses) + 1
    return {"exposure": math.log2(size) - math.log2(rank), "rank": rank, "max_exposure": math.log2(size)}


def canary_exposures(
    canaries: Sequence[Mapping], loss_of: Callable[[Mapping, list[str]], np.ndarray], *, references: int, seed: int
) -> pd.DataFrame:
    """Exposure of each canary's secret, scored against `references` random never-trained secrets.

    `loss_of(canary, secrets)` is the generator's loss of the canary's example with each
    secret in place of the real one (first entry: the real secret).
    """
    rows = []
    for i, canary in enumerate(canaries):
        secret = str(canary["secret"])
        candidates = [secret] + reference_secrets(secret, references, seed=seed + i)
        losses = np.asarray(loss_of(canary, candidates), dtype=np.float64)
        rows.append({"canary_id": canary.get("canary_id", i), "repeat": int(canary["repeat"]),
                     **exposure(losses[0], losses[1:])})
    return pd.DataFrame(rows)


def summarise_exposures(table: pd.DataFrame) -> dict[str, float]:
    """Mean and max exposure overall and per repeat count."""
    if table.empty:
        return {}
    out = {"exposure_mean": float(table["exposure"].mean()), "exposure_max": float(table["exposure"].max()),
           "exposure_ceiling": float(table["max_exposure"].max())}
    for r, group in table.groupby("repeat"):
        out[f"repeat_{r}.exposure_mean"] = float(group["exposure"].mean())
        out[f"repeat_{r}.exposure_max"] = float(group["exposure"].max())
    return out
