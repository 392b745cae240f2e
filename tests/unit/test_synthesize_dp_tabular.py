"""The DP model of the structured columns: bins, sensitivity, OpenDP calibration, sampling, and an empirical check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import fisher_exact

from stages.synthesize.dp_tabular import (
    CATEGORY_EDGE, LENGTH_EDGE, ROOT, TREE, calibrate, column_bins, discretise, edge_counts, fit_dp_tabular,
    gaussian_measurement, l2_sensitivity, measure, postprocess, prompt_conditional, shrunk_conditional, table_weights,
)
from stages.synthesize.tabular import COLUMNS, TabularModel, fit_tabular
from tests.unit.synthesize_helpers import quick_params, records

DOMAIN = quick_params().tabular.domain


def _frame(**columns) -> pd.DataFrame:
    """A tabular_frame-shaped table from a few columns (the rest: one typical value)."""
    n = len(next(iter(columns.values())))
    base = {
        "rating": [5] * n, "helpful_vote": [0] * n, "verified_purchase": [True] * n,
        "timestamp": pd.to_datetime(["2020-06-01"] * n), "main_category": ["Computers"] * n, "n_images": [0] * n,
        "price": [15.0] * n, "title_chars": [20] * n, "text_chars": [200] * n,
    }
    base.update(columns)
    frame = pd.DataFrame(base)
    for col in ("helpful_vote", "n_images", "title_chars", "text_chars"):
        frame[col] = frame[col].astype("Int64")
    frame["price"] = frame["price"].astype("Float64")
    frame["verified_purchase"] = frame["verified_purchase"].astype("boolean")
    return frame


def test_values_land_in_the_declared_bins():
    bins = column_bins(DOMAIN)
    frame = _frame(
        helpful_vote=[0, 1, 4, 9999, None],  # 9999 clips into the last bin; null into the null bin
        main_category=["Computers", "Baby", "Not a public category", None, "Books"],
        timestamp=pd.to_datetime(["1990-01-01", "2000-05-01", "2023-12-31", "2030-01-01", None]),
        text_chars=[1, 10, 99, 100, 100_000],  # below the first edge clips into the first bin
    )
    codes = discretise(frame, bins)
    null = {c: bins[c].size - 1 for c in bins}
    assert codes["helpful_vote"].tolist() == [0, 1, 3, len(bins["helpful_vote"].labels) - 1, null["helpful_vote"]]
    categories = list(DOMAIN.categories)
    assert codes["main_category"].tolist() == [
        categories.index("Computers"), categories.index("Baby"), null["main_category"], null["main_category"],
        categories.index("Books")]
    assert codes["timestamp"].tolist() == [0, 0, 23, 23, null["timestamp"]]
    assert codes["text_chars"].tolist() == [0, 0, 0, 1, len(bins["text_chars"].labels) - 1]


def test_a_null_text_length_is_refused():
    with pytest.raises(ValueError, match="text_chars: 1 null value"):
        discretise(_frame(text_chars=[None, 50]), column_bins(DOMAIN))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_one_user_moves_the_tables_by_at_most_the_declared_sensitivity(k):
    bins = column_bins(DOMAIN)
    rng = np.random.default_rng(k)
    others = _frame(rating=rng.integers(1, 6, 200).tolist(), helpful_vote=rng.integers(0, 30, 200).tolist())
    # the worst case: the user's k rows are identical, so every table moves k in one cell
    user = _frame(rating=[2] * k, helpful_vote=[7] * k, main_category=["Baby"] * k)
    with_user = edge_counts(discretise(pd.concat([others, user], ignore_index=True), bins), bins)
    without = edge_counts(discretise(others, bins), bins)
    assert np.linalg.norm(with_user - without) == pytest.approx(l2_sensitivity(k))
    spread = _frame(rating=[1, 2, 3, 4, 5][:k], helpful_vote=[0, 1, 2, 3, 4][:k])  # rows in different cells move less
    moved = edge_counts(discretise(pd.concat([others, spread], ignore_index=True), bins), bins) - without
    assert np.linalg.norm(moved) <= l2_sensitivity(k) + 1e-9
    assert l2_sensitivity(k) == k * np.sqrt(1 + len(TREE))


def _length_span(bins) -> slice:
    start = bins[ROOT].size
    for parent, child in TREE:
        size = bins[parent].size * bins[child].size
        if (parent, child) == LENGTH_EDGE:
            return slice(start, start + size)
        start += size
    raise AssertionError("the tree has no length edge")


@pytest.mark.parametrize("root_share, length_share", [(1 / 9, 1 / 9), (0.3, 0.1), (0.333, 0.333), (0.05, 0.9)])
def test_the_table_weights_spend_the_stated_shares_and_the_sensitivity_covers_them(root_share, length_share):
    w_root, w_length = table_weights(root_share, length_share)
    total = w_root**2 + w_length**2 + len(TREE) - 1  # sum over tables of (k w_i)^2 / k^2
    assert w_root**2 / total == pytest.approx(root_share) and w_length**2 / total == pytest.approx(length_share)
    assert table_weights(1 / 9, 1 / 9) == pytest.approx((1.0, 1.0))  # the even split is the unweighted vector
    bins = column_bins(DOMAIN)
    others = _frame(rating=np.random.default_rng(0).integers(1, 6, 100).tolist())
    k = 3
    user = _frame(rating=[2] * k, main_category=["Baby"] * k, text_chars=[4000] * k)
    weights = np.ones(len(edge_counts(discretise(others, bins), bins)))
    weights[: bins[ROOT].size] = w_root
    weights[_length_span(bins)] = w_length

    def weighted(frame):
        return edge_counts(discretise(frame, bins), bins) * weights

    moved = weighted(pd.concat([others, user], ignore_index=True)) - weighted(others)
    assert np.linalg.norm(moved) == pytest.approx(l2_sensitivity(k, w_root, w_length))


@pytest.mark.parametrize("root_share, length_share", [(0.5, 0.5), (0.7, 0.4), (0.3, 0.0)])
def test_shares_that_leave_nothing_for_the_other_tables_are_refused(root_share, length_share):
    from stages.errors import ParamsError

    with pytest.raises(ParamsError, match="length_share.*below 1"):
        quick_params(**{"tabular.root_share": root_share, "tabular.length_share": length_share})


def test_shrinkage_pulls_a_thin_row_towards_the_pooled_mix_and_leaves_a_thick_one():
    table = np.array([[5.0, 0.0, 0.0], [400.0, 400.0, 200.0]])
    pooled = table.sum(axis=0) / table.sum()
    assert shrunk_conditional(table, 0.0) == pytest.approx(np.array([[1, 0, 0], [0.4, 0.4, 0.2]]))
    shrunk = shrunk_conditional(table, 50.0)
    assert shrunk.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert np.abs(shrunk[0] - pooled).sum() < 0.2 < np.abs(table[0] / 5 - pooled).sum()  # 5 rows: mostly prior
    assert np.abs(shrunk[1] - table[1] / 1000).sum() < 0.01  # 1,000 rows: its own mix


def test_the_column_rule_keeps_real_bins_and_drops_noise_bins():
    rng = np.random.default_rng(0)
    table = rng.normal(0.0, 10.0, size=(5, 35))
    table[:, -1] += [300, 125, 200, 400, 2300]  # every real row in the last bin (no category)
    table[3, 7] = 45.0  # one noise cell past the cell rule's 2 deviations; its column total is not past 3.5·sqrt(5)
    conditional = prompt_conditional(table, 10.0, 2.0)
    assert conditional.sum(axis=1) == pytest.approx(np.ones(5))
    assert (conditional[:, -1] == 1.0).all()
    only_noise = prompt_conditional(rng.normal(0.0, 10.0, size=(2, 4)), 10.0, 0.0)  # nothing clears: the largest stays
    assert ((only_noise > 0).sum(axis=1) <= 1).all()


def test_a_rare_rating_keeps_its_real_category_under_the_column_rule_and_lost_it_under_the_cell_rule():
    """The shared sample has no categories: 125 two-star rows, all in the null bin, against noise ~104.

    The cell rule zeroed that cell (below 2 deviations) and let a noise cell elsewhere in the row
    through: a release wrote its 2-star reviews for "Prime Video". Same measurements, both rules.
    """
    frame = _frame(rating=np.repeat([1, 2, 3, 4, 5], [344, 125, 218, 399, 2344]).tolist(),
                   main_category=[None] * 3430)
    null = column_bins(DOMAIN)["main_category"].size - 1
    phantom = {"cells": [], "columns": []}
    for _ in range(20):
        noisy = measure(frame, DOMAIN, epsilon=1.0, delta=1e-6, max_rows_per_unit=5, root_share=0.333,
                        length_share=0.333)
        phantom["cells"].append(1 - postprocess(noisy, prompt_prior=None).marginals_[CATEGORY_EDGE][1, null])
        phantom["columns"].append(1 - postprocess(noisy, prompt_prior=2.0).marginals_[CATEGORY_EDGE][1, null])
    assert np.mean(phantom["columns"]) < 0.02 < 0.1 < np.mean(phantom["cells"]), phantom


def _length_spread(frame: pd.DataFrame, length_share: float, prior: float, fits: int, rating: int) -> float:
    """The mean total variation, over fresh-noise fits, of P(length | rating) from the rows' own."""
    bins = column_bins(DOMAIN)
    codes = discretise(frame, bins)
    real = np.bincount(codes["text_chars"][codes[ROOT] == rating - 1], minlength=bins["text_chars"].size)
    real = real / real.sum()
    tv = []
    for _ in range(fits):
        model = fit_dp_tabular(frame, DOMAIN, epsilon=1.0, delta=1e-6, max_rows_per_unit=5, root_share=0.333,
                               length_share=length_share, prompt_prior=prior)
        tv.append(0.5 * np.abs(model.marginals_[LENGTH_EDGE][rating - 1] - real).sum())
    return float(np.mean(tv))


def test_a_larger_length_share_and_the_prior_steady_the_length_mix():
    """600 four-star rows over three length bins: the weight halves their noise (~73 -> ~39).

    150 two-star rows stay swamped even then; the prior pulls them towards the pooled mix.
    """
    ratings = np.repeat([1, 2, 3, 4, 5], [300, 150, 250, 600, 2700])
    lengths = np.random.default_rng(0).choice([50, 200, 800], size=len(ratings), p=[0.4, 0.4, 0.2])
    frame = _frame(rating=ratings.tolist(), text_chars=lengths.tolist())
    even = _length_spread(frame, 1 / 12, 0.0, fits=40, rating=4)
    weighted = _length_spread(frame, 0.333, 0.0, fits=40, rating=4)
    assert weighted < 0.75 * even, (weighted, even)
    unshrunk = _length_spread(frame, 0.333, 0.0, fits=40, rating=2)
    shrunk = _length_spread(frame, 0.333, 2.0, fits=40, rating=2)
    assert shrunk < 0.75 * unshrunk, (shrunk, unshrunk)


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1])
def test_a_root_share_outside_zero_one_is_refused(share):
    from stages.errors import ParamsError

    with pytest.raises(ParamsError, match="root_share.*strictly between 0 and 1"):
        quick_params(**{"tabular.root_share": share})


def _root_spread(frame: pd.DataFrame, share: float, fits: int) -> tuple[float, dict]:
    """The standard deviation, over fresh-noise fits, of the model's 2-star share (and the last fit's accounting)."""
    shares = []
    for _ in range(fits):
        # the length table keeps weight 1 (share (1 - share) / 8): only the root's share moves
        model = fit_dp_tabular(frame, DOMAIN, epsilon=1.0, delta=1e-6, max_rows_per_unit=5, root_share=share,
                               length_share=(1 - share) / 8, prompt_prior=0.0)
        shares.append(model.root_[1])
    return float(np.std(shares)), model.privacy_


def test_a_larger_root_share_steadies_the_rating_counts_at_the_same_budget():
    """At share 0.9 the root's noise scale is 0.35x the even split's: the drawn 2-star share spreads less."""
    frame = _frame(rating=np.repeat([1, 2, 3, 4, 5], [300, 150, 250, 600, 2700]).tolist())
    even, even_privacy = _root_spread(frame, 1 / 9, fits=60)
    focused, privacy = _root_spread(frame, 0.9, fits=60)
    assert privacy["epsilon"] == even_privacy["epsilon"] == 1.0  # the same budget either way
    assert privacy["root_noise_scale"] == pytest.approx(privacy["noise_scale"] / table_weights(0.9, 0.1 / 8)[0])
    assert privacy["root_noise_scale"] < 0.4 * even_privacy["root_noise_scale"]
    assert privacy["noise_scale"] > 2.5 * even_privacy["noise_scale"]  # paid for by the two-way tables
    # the empirical spread follows the stated scale: sd of count/n is about root_noise_scale/n
    n = len(frame)
    assert 0.6 < even * n / even_privacy["root_noise_scale"] < 1.4, (even, even_privacy)
    assert focused < 0.6 * even, (focused, even)


def test_the_scale_is_the_smallest_that_meets_the_budget():
    import opendp.prelude as dp

    sensitivity = l2_sensitivity(5)
    scale, rho = calibrate(1.0, 1e-6, sensitivity)
    assert rho == pytest.approx(sensitivity**2 / (2 * scale**2))  # the Gaussian's zCDP rho

    def epsilon(s):
        return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(gaussian_measurement(s)), 1e-6).map(sensitivity)[0]

    assert epsilon(scale) <= 1.0 < epsilon(scale * 0.99)


def test_an_unreachable_budget_says_what_to_change():
    from stages.errors import PrivacyBudgetError

    with pytest.raises(PrivacyBudgetError, match=r"synthesize.tabular.epsilon=100000.*choose a smaller epsilon"):
        calibrate(1e5, 1e-6, l2_sensitivity(5))


def test_samples_have_the_tabular_columns_and_stay_in_the_domain():
    params = quick_params()
    model = fit_tabular(records(300, users=100), params.tabular, dp=params.dp, seed=1)
    rows = model.sample(500, seed=2)
    assert list(rows.columns) == list(COLUMNS) and len(rows) == 500
    assert rows["rating"].between(1, 5).all() and rows["rating"].dtype == np.int64
    assert rows["text_chars"].notna().all() and rows["text_chars"].between(10, 5000).all()
    assert set(rows["main_category"].dropna()) <= set(DOMAIN.categories)
    years = rows["timestamp"].dropna().dt.year
    assert years.between(DOMAIN.first_year, DOMAIN.last_year).all()
    assert rows["helpful_vote"].dropna().between(0, 50).all() and rows["price"].dropna().between(0, 1000).all()
    assert model.privacy_["epsilon"] == params.tabular.epsilon and model.privacy_["max_rows_per_unit"] == params.dp.max_reviews_per_user
    assert model.sample(50, seed=3).equals(model.sample(50, seed=3))  # sampling is seeded ...


def test_the_noise_is_not_seeded():
    params = quick_params()
    frame = records(300, users=100)
    a = fit_tabular(frame, params.tabular, dp=params.dp, seed=1)
    b = fit_tabular(frame, params.tabular, dp=params.dp, seed=1)
    assert not np.allclose(a.root_, b.root_)  # ... the noise is OpenDP's, fresh each fit


def test_dp_off_is_the_sdv_model():
    params = quick_params(**{"dp.enabled": False})
    model = fit_tabular(records(120, users=40), params.tabular, dp=params.dp, seed=1)
    assert isinstance(model, TabularModel) and "non-private" in model.privacy_["mechanism"]


# ---------------------------------------------------------------- empirical check: a planted record


RARE = dict(rating=1, main_category="Baby", price=900.0, text_chars=4000)
LONGEST_BIN = DOMAIN.text_chars_edges[-2]  # RARE's text length bin starts here (the model samples within bins)


def _population(n: int, seed: int) -> pd.DataFrame:
    """n users, one row each, none with rating 1: the rare combination below never occurs."""
    rng = np.random.default_rng(seed)
    return _frame(
        rating=rng.choice([3, 4, 5], n, p=[0.2, 0.3, 0.5]).tolist(),
        main_category=rng.choice(["Computers", "All Electronics", "Cell Phones & Accessories"], n).tolist(),
        price=np.round(rng.uniform(5, 90, n), 2).tolist(), text_chars=rng.integers(20, 900, n).tolist(),
        helpful_vote=rng.integers(0, 4, n).tolist(),
    ).assign(user_id=[f"u{i}" for i in range(n)])


def _rare_hits(rows: pd.DataFrame) -> int:
    return int(((rows["rating"] == RARE["rating"]) & (rows["main_category"] == RARE["main_category"])
                & (rows["price"] >= 500) & (rows["text_chars"] >= LONGEST_BIN)).sum())


def _hits(frame: pd.DataFrame, *, epsilon: float, fits: int, per_fit: int) -> int:
    params = quick_params(**{"tabular.epsilon": epsilon})
    k = params.dp.max_reviews_per_user
    total = 0
    for i in range(fits):
        model = fit_dp_tabular(frame[list(COLUMNS)], params.tabular.domain, epsilon=epsilon,
                               delta=params.tabular.delta, max_rows_per_unit=k, root_share=params.tabular.root_share,
                               length_share=params.tabular.length_share, prompt_prior=params.tabular.prompt_prior)
        total += _rare_hits(model.sample(per_fit, seed=i))
    return total


def test_a_planted_rare_record_shows_up_no_more_often_than_when_never_planted():
    """One user's k identical rows hold a combination nobody else has (rating 1, Baby, price 900, 4000 chars).

    With DP, the samples contain it no more often than samples of a model that never saw
    it: a one-sided Fisher exact test over fits x rows samples does not reject at 1%.
    The same test run on a model with a budget so large that the noise vanishes must
    reject, or it could never fail.
    """
    k = quick_params().dp.max_reviews_per_user
    never = _population(1000, seed=0)
    planted = pd.concat([never, _frame(**{c: [v] * k for c, v in RARE.items()}).assign(user_id="planted")],
                        ignore_index=True)
    fits, per_fit = 10, 4000
    trials = fits * per_fit

    def p_value(epsilon: float) -> tuple[float, int, int]:
        a, b = _hits(planted, epsilon=epsilon, fits=fits, per_fit=per_fit), _hits(never, epsilon=epsilon, fits=fits,
                                                                                   per_fit=per_fit)
        return fisher_exact([[a, trials - a], [b, trials - b]], alternative="greater").pvalue, a, b

    p, planted_hits, never_hits = p_value(1.0)
    print(f"planted {planted_hits}, never {never_hits} of {trials} (p={p:.3g})")
    assert p > 0.01, f"DP model: {planted_hits} hits planted vs {never_hits} never planted (p={p:.2g})"
    # the positive control: the same model, practically no noise (at epsilon 500, noise 0.85, the
    # category rule already hides the planted user's 5 rows: they must clear 3.5 deviations of a total)
    p_leak, leak_hits, _ = p_value(5000.0)
    print(f"no-noise control: planted {leak_hits} (p={p_leak:.3g})")
    assert p_leak < 1e-6 and leak_hits > 0.5 * trials * k / len(planted), (p_leak, leak_hits)
