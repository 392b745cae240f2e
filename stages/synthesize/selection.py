"""DP selection: the generator writes more drafts than are released, and private data decides which go out.

Two ways to score the drafts, both one Gaussian mechanism over the training rows the
generator saw (bounded per user, canaries included), both in a public sentence-embedding
space (all-MiniLM-L6-v2), both choosing per rating: the `targets[r]` best drafts of each
rating r (the first n_records sampled control rows' rating mix) are released.

- `judge` (the default): a DP rating judge. The training rows are projected onto the top
  `dims` principal axes of the drafts' embeddings (a public basis: the drafts are DP
  outputs), and each privacy unit's per-rating sums and counts of those projections form
  one vector, clipped to L2 norm 1. Their total plus OpenDP Gaussian noise gives noisy
  per-rating means; with the drafts' pooled within-rating covariance (public again) they
  make a linear discriminant (equal priors, or with `priors` "counts" the rating mix of
  its own noisy counts). A draft's score is the judge's probability
  of the rating it was written for: the released texts are the ones real reviews of that
  rating would be mistaken for. With `prompt_trust` below 1 the judge also labels: a draft
  it reads clearly as another rating is released under that rating (`relabel`), and
  scored by its probability of it. This is PATE's idea (a private teacher labels
  non-private data) with one noisy teacher of sufficient statistics.
- `votes`: each training row votes for the draft of its own rating nearest to it
  (cosine), each unit's votes clipped to L2 norm 1; the noisy histogram scores the drafts.
  This is the voting step of Private Evolution (Lin et al., ICLR 2024; Aug-PE, Xie et
  al., ICML 2024), once. At this project's sample size (1,200 users, thousands of drafts)
  a draft gets about one vote against noise of 1 to 4, and it measured no better than a
  random pick (README); it is here for data with many more users per draft.

The guarantee. Adding or removing one unit moves the released statistics by at most 1 in
L2 (the clipping), `calibrate` picks the smallest Gaussian scale meeting (epsilon, delta)
under OpenDP's map, and the mechanism is rho-zCDP with rho = 1 / (2 scale²), composed into
the release's epsilon_total (budget.py). Everything after the noise is post-processing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.synthesize.dp_tabular import calibrate, gaussian_measurement


@dataclass(frozen=True)
class Selection:
    """Which drafts were kept, their scores, and the accounting."""

    keep: np.ndarray  # indices into the drafts, in the order they are released
    scores: np.ndarray  # each draft's score: the judged probability of its rating, or its noisy vote count
    privacy: dict
    ratings: np.ndarray  # each draft's released rating (the asked one unless the judge relabelled it)
    judge: Judge | None = None  # method judge: the fitted DP judge (a classifier in its own right)


def clipped_votes(private: np.ndarray, private_ratings: np.ndarray, units: np.ndarray,
                  drafts: np.ndarray, draft_ratings: np.ndarray) -> np.ndarray:
    """The vote histogram over the drafts: one vote per private row, each unit's votes clipped to L2 norm 1.

    `private` and `drafts` are unit-length embeddings; a row votes only among drafts of its
    own rating (a rating without drafts casts no vote).
    """
    votes = np.zeros((int(units.max()) + 1 if len(units) else 0, len(drafts)))
    for rating in np.unique(private_ratings):
        pool = np.flatnonzero(draft_ratings == rating)
        rows = np.flatnonzero(private_ratings == rating)
        if not len(pool) or not len(rows):
            continue
        nearest = pool[np.argmax(private[rows] @ drafts[pool].T, axis=1)]
        np.add.at(votes, (units[rows], nearest), 1.0)
    norms = np.linalg.norm(votes, axis=1, keepdims=True)
    return (votes / np.maximum(norms, 1.0)).sum(axis=0)


def noisy(histogram: np.ndarray, scale: float) -> np.ndarray:
    """The histogram plus Gaussian noise of `scale`, drawn by OpenDP's mechanism.

    OpenDP samples from the operating system's secure RNG, so the noise is never
    reproducible from a seed, by design (as in the DP tabular model).
    """
    if not len(histogram):
        return histogram.astype(float)
    return np.asarray(gaussian_measurement(scale)(histogram.astype(float).tolist()), dtype=float)


def top_per_rating(votes: np.ndarray, draft_ratings: np.ndarray, targets: dict[int, int], n: int,
                   *, seed: int) -> np.ndarray:
    """Indices of the kept drafts: the `targets[r]` most-voted of each rating r, then the most-voted others up to n.

    Ties (most drafts get no vote) break at random, seeded. A rating with fewer drafts than
    its target gives all it has, and the shortfall goes to the best of the rest.
    """
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(votes)), -votes))  # most votes first, random among equals
    taken = np.zeros(len(votes), dtype=bool)
    for rating, target in sorted(targets.items()):
        mine = order[draft_ratings[order] == rating][: max(0, target)]
        taken[mine] = True
    rest = order[~taken[order]][: max(0, n - int(taken.sum()))]
    taken[rest] = True
    kept = order[taken[order]][:n]
    return np.sort(kept)


RATINGS = np.arange(1, 6)


def public_basis(drafts: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The drafts' mean and their top `dims` principal axes (columns): a basis computed from DP outputs only."""
    mean = drafts.mean(axis=0)
    _, _, axes = np.linalg.svd(drafts - mean, full_matrices=False)
    return mean, axes[:dims].T


def class_statistics(projected: np.ndarray, ratings: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Per-rating sums and counts of the rows (5 x (dims + 1)), each unit's share clipped to L2 norm 1.

    A row is clipped to norm 1 first, so a unit's unclipped share is at most sqrt(2) per row.
    """
    rows = projected / np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1.0)
    per_unit = np.zeros((int(units.max()) + 1 if len(units) else 0, len(RATINGS), rows.shape[1] + 1))
    np.add.at(per_unit, (units, ratings - 1), np.hstack([rows, np.ones((len(rows), 1))]))
    flat = per_unit.reshape(len(per_unit), -1)
    flat = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1.0)
    return flat.sum(axis=0).reshape(len(RATINGS), rows.shape[1] + 1)


def discriminant(statistics: np.ndarray, drafts: np.ndarray, draft_ratings: np.ndarray, *, ridge: float = 0.1,
                 priors: str = "equal"):
    """Linear discriminant weights (dims x 5) and biases from (noisy) per-rating statistics and the drafts' covariance.

    The within-rating covariance is pooled over the drafts grouped by the rating they were
    written for, shrunk towards its mean variance by `ridge`. `priors` "equal" gives every
    rating the same prior; "counts" takes them from the statistics' own (noisy) counts
    column, so the judge reads a text as real data's mix would (post-processing: no
    further privacy cost).
    """
    means = statistics[:, :-1] / np.maximum(statistics[:, -1:], 1.0)
    groups = [drafts[draft_ratings == r] for r in RATINGS if (draft_ratings == r).sum() > 1]
    within = np.concatenate([g - g.mean(axis=0) for g in groups]) if groups else drafts - drafts.mean(axis=0)
    cov = np.atleast_2d(np.cov(within.T)) if len(within) > 1 else np.eye(drafts.shape[1])
    cov = cov + ridge * np.trace(cov) / len(cov) * np.eye(len(cov)) + 1e-12 * np.eye(len(cov))
    weights = np.linalg.solve(cov, means.T)
    bias = -0.5 * np.einsum("kd,dk->k", means, weights)
    if priors == "counts":
        counts = np.maximum(statistics[:, -1], 1.0)  # noise can drive a rare rating's count below 1
        bias = bias + np.log(counts / counts.sum())
    elif priors != "equal":
        raise ValueError(f"priors must be 'equal' or 'counts', got {priors!r}")
    return weights, bias


@dataclass(frozen=True)
class Judge:
    """The fitted DP rating judge: a public basis and a discriminant from noisy statistics."""

    mean: np.ndarray
    axes: np.ndarray  # dims principal axes, as columns
    weights: np.ndarray  # dims x 5
    bias: np.ndarray  # 5

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """P(rating | text) for unit embeddings, one row per text, columns 1..5 stars."""
        logits = (embeddings - self.mean) @ self.axes @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)


def relabel(probabilities: np.ndarray, asked: np.ndarray, prompt_trust: float) -> np.ndarray:
    """Each draft's rating: the judge's reading P(s | text) weighed against the rating the prompt asked for.

    The prior is that a draft asked for r stars reads as r with probability `prompt_trust`
    and as each other rating with (1 - trust) / 4; the label is the posterior's argmax. At
    trust 1 every draft keeps its asked rating; lower, a draft the judge reads clearly as
    another rating is released as that one instead of competing, mislabelled, for a place
    (post-processing of the DP judge: no further privacy cost).
    """
    if not 0.2 <= prompt_trust <= 1.0:
        raise ValueError(f"prompt_trust must lie in [0.2, 1] (0.2: the prompt carries no weight), got {prompt_trust}")
    prior = np.full((5, 5), (1.0 - prompt_trust) / 4)
    np.fill_diagonal(prior, prompt_trust)
    return (probabilities * prior[asked - 1]).argmax(axis=1) + 1


def refill_short_ratings(labels: np.ndarray, asked: np.ndarray, probabilities: np.ndarray,
                         targets: dict[int, int]) -> np.ndarray:
    """Undo the relabels that leave a rating short of its target: such a rating takes back the drafts asked
    for it that the judge moved elsewhere, those the judge gives it most probability first.

    Relabelling must not change the released rating mix. A judge whose noise swamps its
    statistics (little data, a generator that writes noise) reads every draft as one
    rating, and would otherwise release nothing else. Reverting can leave the rating the
    drafts had moved to short in turn, so this repeats until nothing changes; every pass
    only reverts relabels, so it ends.
    """
    labels = labels.copy()
    changed = True
    while changed:
        changed = False
        for rating, target in sorted(targets.items()):
            short = target - int((labels == rating).sum())
            moved = np.flatnonzero((asked == rating) & (labels != rating))
            if short <= 0 or not len(moved):
                continue
            back = moved[np.argsort(-probabilities[moved, rating - 1], kind="stable")][:short]
            labels[back] = rating
            changed = True
    return labels


def fit_judge(private: np.ndarray, private_ratings: np.ndarray, units: np.ndarray, drafts: np.ndarray,
              draft_ratings: np.ndarray, *, dims: int, scale: float | None, priors: str = "equal") -> Judge:
    """The judge from the private rows' statistics, noised at `scale` (None: exact, non-private)."""
    mean, axes = public_basis(drafts, min(dims, drafts.shape[0] - 1, drafts.shape[1]))
    statistics = class_statistics((private - mean) @ axes, private_ratings, units)
    if scale is not None:
        statistics = noisy(statistics.ravel(), scale).reshape(statistics.shape)
    weights, bias = discriminant(statistics, (drafts - mean) @ axes, draft_ratings, priors=priors)
    return Judge(mean, axes, weights, bias)


def select(private: np.ndarray, private_ratings, units, drafts: np.ndarray, draft_ratings, *, method: str,
           dims: int, targets: dict[int, int], n: int, epsilon: float | None, delta: float, seed: int,
           priors: str = "equal", prompt_trust: float = 1.0) -> Selection:
    """Score the drafts (`judge` or `votes`), keep n (targets: records per rating); epsilon None: no noise, non-private.

    `priors` and `prompt_trust` are the judge's (see `discriminant`, `relabel`): below 1 a
    draft may be released under the rating the judge reads in it, and is scored by the
    judge's probability of that rating, as long as every rating keeps enough drafts for
    its target (`refill_short_ratings`). Votes ignore both.
    """
    private_ratings, draft_ratings = np.asarray(private_ratings, dtype=int), np.asarray(draft_ratings, dtype=int)
    units = np.asarray(units)
    scale, rho = calibrate(epsilon, delta, 1.0) if epsilon is not None else (None, None)
    judge = None
    if method not in ("judge", "votes"):
        raise ValueError(f"method must be 'judge' or 'votes', got {method!r}")
    if len(drafts) <= n:  # nothing to choose: every draft goes out, and no private row is read
        scores = np.zeros(len(drafts))
        what = None
    elif method == "judge":  # each draft's judged probability of the rating it is released under
        judge = fit_judge(private, private_ratings, units, drafts, draft_ratings, dims=dims, scale=scale, priors=priors)
        probabilities = judge.probabilities(drafts)
        draft_ratings = refill_short_ratings(relabel(probabilities, draft_ratings, prompt_trust), draft_ratings,
                                             probabilities, targets)
        scores = probabilities[np.arange(len(drafts)), draft_ratings - 1]
        what = f"per-rating sums and counts of {dims} public principal coordinates"
    else:
        scores = clipped_votes(private, private_ratings, units, drafts, draft_ratings)
        scores = noisy(scores, scale) if scale is not None else scores
        what = "nearest-draft votes"
    privacy = {"drafts": len(drafts), "method": method, "epsilon": epsilon, "delta": delta if scale else None,
               "rho": rho, "noise_scale": scale or 0.0,
               "mechanism": "none needed: the pool was no larger than n, every draft is released (the budget is "
               "charged all the same)" if what is None
               else f"Gaussian (OpenDP) on {what}, L2 sensitivity 1 per unit" if scale is not None
               else f"none (exact {what}, non-private)"}
    keep = top_per_rating(scores, draft_ratings, targets, n, seed=seed)
    return Selection(keep=keep, scores=scores, privacy=privacy, judge=judge, ratings=draft_ratings)


def review_texts(frame) -> list[str]:
    """Title line and body, as the vote embeds both private rows and drafts."""
    titles = frame["title"].where(frame["title"].notna(), "").astype(str)
    return [f"{t}\n{x}".strip() for t, x in zip(titles, frame["text"].astype(str))]


def select_records(drafts, private, units: np.ndarray, target_ratings, *, n: int, params, dp_enabled: bool,
                   seed: int, embedder=None):
    """The n drafts (a record frame, filters applied) the private rows' statistics prefer; returns them and the privacy.

    `target_ratings` are the ratings of the first n sampled control rows (a DP sample):
    the released records keep that rating mix. `params` is SelectionParams; `embedder`
    defaults to params.embedding_model, loaded offline.
    """
    if embedder is None:
        from stages.evaluate.embed import Embedder

        embedder = Embedder(params.embedding_model, batch_size=params.batch_size)
    values, counts = np.unique(np.asarray(target_ratings, dtype=int), return_counts=True)
    targets = {int(r): int(c) for r, c in zip(values, counts)}
    chosen = select(
        embedder.encode(review_texts(private), desc="synthesize: selection (private rows)"),
        private["rating"].to_numpy(), units,
        embedder.encode(review_texts(drafts), desc="synthesize: selection (drafts)"), drafts["rating"].to_numpy(),
        method=params.method, dims=params.dims, targets=targets, n=n,
        epsilon=params.epsilon if dp_enabled else None, delta=params.delta, seed=seed, priors=params.priors,
        prompt_trust=params.prompt_trust,
    )
    kept = drafts.iloc[chosen.keep].reset_index(drop=True)
    relabelled = chosen.ratings[chosen.keep] != kept["rating"].to_numpy()
    kept["rating"] = chosen.ratings[chosen.keep].astype(kept["rating"].dtype)
    kept["review_id"] = [f"syn-{j}" for j in range(len(kept))]
    return kept, {**chosen.privacy, "relabelled": int(relabelled.sum())}
