"""A differentially private model of the structured columns: noisy 2-way marginals on a fixed tree.

The design follows the NIST synthetic-data challenge winners (MST, PrivBayes) in their
simplest sound form:

1. **Discretise** every column into bins fixed by params (`synthesize.tabular.domain`),
   i.e. by public knowledge, never by the data: rating 1..5, the verified flag, a year
   per bin within [first_year, last_year], the public list of Amazon main categories,
   and edge lists for votes, images, price and the title/text lengths. Every column but
   rating has a null bin; a value outside the edges is clipped into the end bin, and a
   category outside the list falls into the null bin.
2. **Measure** the 1-way counts of the root and the 2-way count table of each edge of a
   tree fixed in advance (`TREE`, rooted at rating: the column the text is conditioned
   on and the classifier learns). The m tables are concatenated into one vector and
   OpenDP's Gaussian mechanism adds the noise (zCDP). The privacy unit is the text
   generator's: at `unit: user` each user keeps at most `dp.max_reviews_per_user` = k
   rows, and each row adds 1 to exactly one cell of each table. Two tables get a weight
   before the noise (divided out after): the root's counts w_r, and the rating x text
   length table (`LENGTH_EDGE`) w_l, the one table whose conditional the generator's
   prompt reads (its length ask). A table of weight w gets noise scale/w and the share
   w² / (w_r² + w_l² + m - 2) of the budget rho (`root_share`, `length_share`; both 1/9
   is the even split, w = 1). Adding or removing a user moves the weighted vector by at
   most k·sqrt(w_r² + w_l² + m - 2) in L2. The noise scale is the smallest for which
   OpenDP's zCDP -> (epsilon, delta) map gives at most (`epsilon`, `delta`).
3. **Post-process** (free under DP): negative counts become 0, and in the 2-way tables
   counts within two noise standard deviations of 0 are treated as noise and zeroed
   (otherwise the dozens of empty cells of a sparse table would get phantom mass, e.g.
   titles for a data set that has none). The root's five rating cells are only clipped,
   so that a rare rating keeps its share. The two tables the generator's prompt reads
   (`PROMPT_EDGES`: the rating x length table, which gives the length ask, and the rating
   x category table) are treated by column instead: a child bin is kept when its total
   over all ratings clears `COLUMN_SIGMAS` noise deviations of that total (a Bonferroni
   bound over ~35 categories), its cells are clipped, not pruned, and each rating's row
   is shrunk towards the pooled mix of the kept bins by a prior worth `prompt_prior`
   noise deviations per cell (an empirical-Bayes estimate). Cell pruning failed exactly
   there: a rare rating's real cell (125 two-star rows, all without a category in the
   shared sample) fell below the cut, a noise cell elsewhere in its row cleared it, and a
   whole release wrote its 2-star reviews for "Prime Video" (README). The root is drawn
   from its own noisy counts; each child from its noisy conditional given the parent's
   bin (a parent bin left with no mass falls back to the child's marginal in that table).
4. **Sample** rows down the tree, then a value uniformly within each drawn bin.

Everything the model keeps (`marginals_`) is a function of the noisy measurement only,
so saving or sampling it releases nothing more.
"""

from __future__ import annotations

import functools
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stages.errors import PrivacyBudgetError
from stages.schema import RATINGS
from stages.synthesize.params import TabularDomainParams

# (parent, child): chosen in advance from what the columns mean, not from the data.
TREE = (
    ("rating", "text_chars"),
    ("text_chars", "title_chars"),
    ("rating", "helpful_vote"),
    ("helpful_vote", "n_images"),
    ("rating", "verified_purchase"),
    ("rating", "timestamp"),
    ("rating", "main_category"),
    ("main_category", "price"),
)
ROOT = "rating"
LENGTH_EDGE = (ROOT, "text_chars")  # the table the prompt's length ask is drawn from
CATEGORY_EDGE = (ROOT, "main_category")  # ... and its category
PROMPT_EDGES = (LENGTH_EDGE, CATEGORY_EDGE)
COLUMN_SIGMAS = 3.5  # a prompt table's child bin is kept when its total clears this many deviations of that total
NUMERIC_EDGES = {  # column -> the domain field holding its bin edges
    "helpful_vote": "helpful_vote_edges",
    "n_images": "n_images_edges",
    "price": "price_edges",
    "title_chars": "title_chars_edges",
    "text_chars": "text_chars_edges",
}
INTEGER = ("helpful_vote", "n_images", "title_chars", "text_chars")
PRUNE_SIGMAS = 2.0  # noisy counts below this many noise standard deviations count as empty


@dataclass(frozen=True)
class Bins:
    """One column's discrete domain: `labels[j]` describes bin j; the last bin is null where `nullable`."""

    column: str
    labels: tuple
    nullable: bool

    @property
    def size(self) -> int:
        """Number of bins, the null bin included."""
        return len(self.labels) + int(self.nullable)


def column_bins(domain: TabularDomainParams) -> dict[str, Bins]:
    """The bins of every modelled column, from the params alone."""
    bins = {
        "rating": Bins("rating", tuple(RATINGS), nullable=False),
        "verified_purchase": Bins("verified_purchase", (False, True), nullable=True),
        "timestamp": Bins("timestamp", tuple(range(domain.first_year, domain.last_year + 1)), nullable=True),
        "main_category": Bins("main_category", tuple(domain.categories), nullable=True),
    }
    for column, key in NUMERIC_EDGES.items():
        edges = getattr(domain, key)
        # every record has a body (the schema requires it): text_chars has no null bin to put phantom mass in
        bins[column] = Bins(column, tuple(zip(edges[:-1], edges[1:])), nullable=column != "text_chars")
    return bins


def discretise(frame: pd.DataFrame, bins: dict[str, Bins]) -> dict[str, np.ndarray]:
    """Bin index per row and column (`tabular_frame` columns in; null and unknown values -> the null bin)."""
    out = {}
    for column, b in bins.items():
        values = frame[column]
        null = values.isna().to_numpy()
        if null.any() and not b.nullable:
            raise ValueError(f"{column}: {int(null.sum())} null value(s), but the column has no null bin")
        index = np.full(len(values), b.size - 1, dtype=np.int64)
        if column in NUMERIC_EDGES:
            edges = np.array([lo for lo, _ in b.labels] + [b.labels[-1][1]], dtype=float)
            x = values.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            # interior edges only: below the first bin clips into it, above the last into that one
            index[~null] = np.searchsorted(edges[1:-1], x[~null], side="right")
        elif column == "timestamp":
            years = pd.to_datetime(values).dt.year.to_numpy(dtype=float, na_value=np.nan)
            index[~null] = np.clip(years[~null] - b.labels[0], 0, len(b.labels) - 1).astype(np.int64)
        else:
            lookup = {label: j for j, label in enumerate(b.labels)}
            index[~null] = [lookup.get(v, b.size - 1 if b.nullable else -1) for v in values[~null]]
            if (index < 0).any():
                bad = sorted(set(values[~null][index[~null] < 0]))
                raise ValueError(f"{column}: values {bad} are outside its domain {list(b.labels)}")
        out[column] = index
    return out


def edge_counts(codes: dict[str, np.ndarray], bins: dict[str, Bins]) -> np.ndarray:
    """The root's counts, then the TREE's 2-way count tables, flattened and concatenated (float for OpenDP)."""
    parts = [np.bincount(codes[ROOT], minlength=bins[ROOT].size)]
    for parent, child in TREE:
        cells = codes[parent] * bins[child].size + codes[child]
        parts.append(np.bincount(cells, minlength=bins[parent].size * bins[child].size))
    return np.concatenate(parts).astype(float)


def table_weights(root_share: float, length_share: float) -> tuple[float, float]:
    """The weights (w_r, w_l) on the root and the length table that spend those shares of rho on them.

    The other m - 2 tables keep weight 1, so w² / (w_r² + w_l² + m - 2) = share for each of
    the two; both shares 1/9 is the unweighted vector.
    """
    if not (0.0 < root_share < 1.0 and 0.0 < length_share < 1.0 and root_share + length_share < 1.0):
        raise ValueError(f"root_share ({root_share}) and length_share ({length_share}) must be positive "
                         "and add up to less than 1")
    total = (len(TREE) - 1) / (1.0 - root_share - length_share)
    return math.sqrt(root_share * total), math.sqrt(length_share * total)


def l2_sensitivity(max_rows_per_unit: int, root_weight: float = 1.0, length_weight: float = 1.0) -> float:
    """How far (L2) one privacy unit can move the concatenated, weighted tables.

    k rows, each adding 1 to one cell of every table: the root moves by at most k·w_r, the
    length table by k·w_l, each of the other m - 2 two-way tables by at most k, hence
    k·sqrt(w_r² + w_l² + m - 2).
    """
    return max_rows_per_unit * math.sqrt(root_weight**2 + length_weight**2 + len(TREE) - 1)


def shrunk_conditional(table: np.ndarray, prior_count: float) -> np.ndarray:
    """Rows of a non-negative (P, C) table normalised after adding `prior_count` rows of its pooled distribution.

    A row with little mass (a rare rating) leans on the pooled column distribution, one
    with much keeps its own; `prior_count` 0 is plain normalisation.
    """
    if prior_count <= 0:
        return _conditional(table)
    return (table + prior_count * _pooled(table)) / (table.sum(axis=1, keepdims=True) + prior_count)


def prompt_conditional(table: np.ndarray, noise_scale: float, prior_sigmas: float) -> np.ndarray:
    """P(child | parent) of a noisy prompt table: bins kept by their column totals, cells clipped, rows shrunk.

    A column's total over the P parent bins carries noise of noise_scale·sqrt(P); a bin
    whose total stays below COLUMN_SIGMAS of that is noise and gets no mass (the largest
    column is always kept). The rows are then shrunk towards the kept bins' pooled mix by
    `prior_sigmas`·noise_scale·sqrt(kept bins) pseudo-rows.
    """
    totals = table.sum(axis=0)
    keep = totals >= COLUMN_SIGMAS * noise_scale * math.sqrt(table.shape[0])
    keep[np.argmax(totals)] = True
    kept = np.where(keep, np.clip(table, 0.0, None), 0.0)
    return shrunk_conditional(kept, prior_sigmas * noise_scale * math.sqrt(int(keep.sum())))


def gaussian_measurement(scale: float):
    """OpenDP's Gaussian mechanism on a float vector under the L2 distance (a zCDP measurement)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float)
    return dp.m.make_gaussian(*space, scale=scale)


@functools.lru_cache(maxsize=64)  # a pure function of public numbers; OpenDP's search takes ~0.3 s
def calibrate(epsilon: float, delta: float, sensitivity: float) -> tuple[float, float]:
    """The smallest Gaussian scale meeting (epsilon, delta) per OpenDP's map, and the zCDP rho it spends."""
    import opendp.prelude as dp

    def approx(scale: float):
        return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(gaussian_measurement(scale)), delta)

    try:
        scale = dp.binary_search_param(approx, d_in=sensitivity, d_out=(epsilon, delta))
    except (ValueError, dp.OpenDPException) as exc:  # e.g. an epsilon so large that OpenDP's map overflows
        raise PrivacyBudgetError(
            f"OpenDP finds no Gaussian scale for synthesize.tabular.epsilon={epsilon:g}, delta={delta:g}; "
            f"choose a smaller epsilon (a budget this large hides nothing anyway). OpenDP said: {exc}"
        ) from exc
    return float(scale), float(gaussian_measurement(scale).map(sensitivity))


@dataclass
class DPTabularModel:
    """The fitted DP marginal model: post-processed noisy tables only, and the accounting."""

    bins_: dict[str, Bins]
    marginals_: dict[tuple[str, str], np.ndarray]  # (parent, child) -> P(child | parent bin), shape (P, C)
    root_: np.ndarray  # P(rating)
    privacy_: dict
    modelled_: list[str]
    null_columns_: tuple = ()  # the DP model decides nothing from the data: no column is dropped

    def sample(self, n: int, *, seed: int) -> pd.DataFrame:
        """n structured rows with the columns of `tabular_frame`, drawn down the tree."""
        from stages.synthesize.tabular import COLUMNS

        rng = np.random.default_rng(seed)
        codes = {ROOT: rng.choice(len(self.root_), size=n, p=self.root_)}
        for parent, child in TREE:
            conditional = self.marginals_[(parent, child)]
            cumulative = conditional.cumsum(axis=1)[codes[parent]]
            draws = (cumulative < rng.random((n, 1)) * cumulative[:, -1:]).sum(axis=1)
            codes[child] = np.minimum(draws, conditional.shape[1] - 1)
        return pd.DataFrame({c: self._values(c, codes[c], rng) for c in COLUMNS})

    def _values(self, column: str, code: np.ndarray, rng: np.random.Generator) -> pd.Series:
        """Bin indices -> values, uniform within numeric and year bins; the null bin -> null."""
        b = self.bins_[column]
        null = code == len(b.labels) if b.nullable else np.zeros(len(code), dtype=bool)
        safe = np.where(null, 0, code)
        if column in NUMERIC_EDGES:
            lo = np.array([e[0] for e in b.labels], dtype=float)[safe]
            hi = np.array([e[1] for e in b.labels], dtype=float)[safe]
            if column in INTEGER:
                last = safe == len(b.labels) - 1  # the last bin includes its upper edge
                top = np.where(last, np.floor(hi), np.ceil(hi) - 1)
                low = np.ceil(lo)
                x = low + np.floor(rng.random(len(code)) * (np.maximum(top, low) - low + 1))
                return pd.Series(pd.array(np.where(null, np.nan, x), dtype="Float64").round().astype("Int64"))
            x = np.round(lo + rng.random(len(code)) * (hi - lo), 2)
            return pd.Series(pd.array(np.where(null, np.nan, x), dtype="Float64"))
        if column == "timestamp":
            years = np.array(b.labels)[safe]
            start = pd.to_datetime(pd.Series(years.astype(str)), format="%Y").to_numpy("datetime64[s]")
            span = pd.to_datetime(pd.Series((years + 1).astype(str)), format="%Y").to_numpy("datetime64[s]") - start
            offset = (rng.random(len(code)) * span.astype(np.int64)).astype(np.int64).astype("timedelta64[s]")
            stamps = (start + offset).astype("datetime64[ns]")
            stamps[null] = np.datetime64("NaT")
            return pd.Series(stamps)
        values = np.array(b.labels, dtype=object)[safe]
        values[null] = None
        if column == "rating":
            return pd.Series(values.astype(int))
        if column == "verified_purchase":
            return pd.Series(pd.array(values, dtype="boolean"))
        return pd.Series(values, dtype=object)

    def save(self, path: Path) -> None:
        """Pickle the post-processed tables and the accounting (nothing else is kept)."""
        with open(path, "wb") as fh:
            pickle.dump(self, fh)


def _pooled(table: np.ndarray) -> np.ndarray:
    """The column marginal of a non-negative (P, C) table; uniform when the table is empty."""
    marginal = table.sum(axis=0)
    return marginal / marginal.sum() if marginal.sum() > 0 else np.full(table.shape[1], 1 / table.shape[1])


def _conditional(table: np.ndarray) -> np.ndarray:
    """Rows of a non-negative (P, C) table normalised; an empty row takes the table's column marginal."""
    totals = table.sum(axis=1, keepdims=True)
    return np.where(totals > 0, table / np.where(totals > 0, totals, 1), _pooled(table))


@dataclass(frozen=True)
class NoisyTables:
    """One Gaussian measurement of the root and the TREE's tables, weights divided out (the DP release)."""

    bins: dict[str, Bins]
    root: np.ndarray  # noisy rating counts
    tables: dict[tuple[str, str], np.ndarray]  # (parent, child) -> noisy (P, C) counts
    privacy: dict

    def noise_of(self, edge: tuple[str, str]) -> float:
        """The noise standard deviation on one two-way table's cells (the length table's is its own)."""
        return self.privacy["length_noise_scale" if edge == LENGTH_EDGE else "noise_scale"]


def measure(frame: pd.DataFrame, domain: TabularDomainParams, *, epsilon: float, delta: float,
            max_rows_per_unit: int, root_share: float, length_share: float) -> NoisyTables:
    """Count the bounded rows into the weighted tables and add OpenDP's Gaussian noise once (steps 1-2)."""
    from importlib.metadata import version

    bins = column_bins(domain)
    root_w, length_w = table_weights(root_share, length_share)
    sensitivity = l2_sensitivity(max_rows_per_unit, root_w, length_w)
    scale, rho = calibrate(epsilon, delta, sensitivity)
    counts = edge_counts(discretise(frame, bins), bins)
    weights = np.ones_like(counts)
    offset = bins[ROOT].size
    weights[:offset] = root_w
    spans = {}
    for parent, child in TREE:
        spans[(parent, child)] = slice(offset, offset + bins[parent].size * bins[child].size)
        offset = spans[(parent, child)].stop
    weights[spans[LENGTH_EDGE]] = length_w
    # OpenDP draws its noise from the OS's secure RNG: no seed fixes it (a seeded noise is no noise).
    noisy = np.asarray(gaussian_measurement(scale)((counts * weights).tolist()), dtype=float) / weights
    privacy = {
        "mechanism": "gaussian (OpenDP make_gaussian, zCDP)",
        "epsilon": epsilon, "delta": delta, "rho": rho, "noise_scale": scale,
        "root_share": root_share, "root_noise_scale": scale / root_w,
        "length_share": length_share, "length_noise_scale": scale / length_w,
        "l2_sensitivity": sensitivity, "max_rows_per_unit": max_rows_per_unit,
        "tables": 1 + len(TREE), "cells": int(counts.size), "opendp": version("opendp"),
    }
    tables = {edge: noisy[span].reshape(bins[edge[0]].size, bins[edge[1]].size) for edge, span in spans.items()}
    return NoisyTables(bins, noisy[: bins[ROOT].size], tables, privacy)


def pruned_conditional(table: np.ndarray, noise_scale: float) -> np.ndarray:
    """P(child | parent) of a sparse noisy table: cells below PRUNE_SIGMAS deviations zeroed, rows normalised."""
    return _conditional(np.where(table < PRUNE_SIGMAS * noise_scale, 0.0, table))


def fit_dp_tabular(frame: pd.DataFrame, domain: TabularDomainParams, *, epsilon: float, delta: float,
                   max_rows_per_unit: int, root_share: float, length_share: float,
                   prompt_prior: float) -> DPTabularModel:
    """Measure the TREE's tables with OpenDP's Gaussian mechanism and post-process them.

    `frame` is `tabular_frame` output whose rows are already bounded to `max_rows_per_unit`
    per privacy unit; the caller (`fit_tabular`) does that bounding. `root_share` and
    `length_share` are the shares of rho spent on the rating counts and on the rating x
    text length table; `prompt_prior` is the prompt tables' shrinkage in noise standard
    deviations per cell. An empty root (every count clipped) falls back to uniform ratings.
    """
    noisy = measure(frame, domain, epsilon=epsilon, delta=delta, max_rows_per_unit=max_rows_per_unit,
                    root_share=root_share, length_share=length_share)
    return postprocess(noisy, prompt_prior=prompt_prior)


def postprocess(noisy: NoisyTables, *, prompt_prior: float | None) -> DPTabularModel:
    """The model from one measurement (step 3); `prompt_prior` None prunes the prompt tables cell by cell too.

    None is the rule before the prompt tables had their own (benchmarks/bench_prompt_tables.py
    applies both to the same measurement).
    """
    # The root's few cells are all real ratings: only negatives go, so a rare rating keeps its (noisy) share.
    root = _conditional(np.clip(noisy.root, 0.0, None).reshape(1, -1))[0]
    marginals = {}
    for edge, table in noisy.tables.items():
        if edge in PROMPT_EDGES and prompt_prior is not None:
            marginals[edge] = prompt_conditional(table, noisy.noise_of(edge), prompt_prior)
        else:
            marginals[edge] = pruned_conditional(table, noisy.noise_of(edge))
    return DPTabularModel(noisy.bins, marginals, root, {**noisy.privacy, "prompt_prior": prompt_prior},
                          list(noisy.bins))
