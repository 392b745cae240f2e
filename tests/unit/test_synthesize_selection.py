"""DP selection of drafts: the DP rating judge, clipped nearest-draft votes, OpenDP noise, the best kept per rating."""

from __future__ import annotations

import numpy as np
import pytest

from stages.synthesize.dp_tabular import calibrate
from stages.synthesize.selection import (
    class_statistics,
    clipped_votes,
    discriminant,
    fit_judge,
    noisy,
    refill_short_ratings,
    relabel,
    select,
    top_per_rating,
)


def _unit(rows):
    rows = np.asarray(rows, dtype=float)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


DRAFTS = _unit([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
DRAFT_RATINGS = np.array([5, 5, 1, 1])


def test_a_row_votes_for_its_nearest_draft_of_its_own_rating():
    private = _unit([[1, 0.1, 0], [1, 0.1, 0]])
    # the same text: rated 5 it votes for draft 0; rated 1 it may only vote among drafts 2 and 3 (3 is nearer)
    votes = clipped_votes(private, np.array([5, 1]), np.array([0, 1]), DRAFTS, DRAFT_RATINGS)
    assert votes.tolist() == [1.0, 0.0, 0.0, 1.0]


def test_a_rating_without_drafts_casts_no_vote():
    votes = clipped_votes(_unit([[1, 0, 0]]), np.array([3]), np.array([0]), DRAFTS, DRAFT_RATINGS)
    assert votes.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_each_units_votes_are_clipped_to_norm_one():
    # unit 0: three rows voting for draft 0 count 1 in all, not 3; unit 1: two drafts, 1/sqrt(2) each
    private = _unit([[1, 0, 0], [1, 0.05, 0], [1, 0, 0.05], [0.1, 1, 0], [1, 0, 0.01]])
    units = np.array([0, 0, 0, 1, 1])
    votes = clipped_votes(private, np.full(5, 5), units, DRAFTS, DRAFT_RATINGS)
    assert votes == pytest.approx([1 + 2**-0.5, 2**-0.5, 0.0, 0.0])


def test_removing_any_unit_moves_the_histogram_by_at_most_one():
    """The L2 sensitivity the noise is calibrated to, checked on random data with many rows per unit."""
    rng = np.random.default_rng(0)
    private, drafts = _unit(rng.normal(size=(60, 8))), _unit(rng.normal(size=(25, 8)))
    ratings, draft_ratings = rng.integers(1, 4, 60), rng.integers(1, 4, 25)
    units = rng.integers(0, 10, 60)
    full = clipped_votes(private, ratings, units, drafts, draft_ratings)
    moves = []
    for unit in range(10):
        rest = units != unit
        moves.append(np.linalg.norm(full - clipped_votes(private[rest], ratings[rest], units[rest], drafts,
                                                         draft_ratings)))
    assert max(moves) <= 1.0 + 1e-9
    assert max(moves) > 0.5  # the bound is attained in spirit: a unit does move it


def test_the_noise_has_the_calibrated_scale():
    scale, rho = calibrate(2.0, 1e-5, 1.0)
    assert rho == pytest.approx(1 / (2 * scale**2), rel=1e-6)
    draws = noisy(np.zeros(20_000), scale)
    assert draws.std() == pytest.approx(scale, rel=0.05) and abs(draws.mean()) < 0.1 * scale
    assert not np.array_equal(draws, noisy(np.zeros(20_000), scale))  # OpenDP's secure RNG: never replayed


def test_the_most_voted_of_each_rating_are_kept_up_to_its_target():
    votes = np.array([5.0, 0.0, 3.0, 9.0, 1.0, 2.0])
    ratings = np.array([5, 5, 5, 1, 1, 1])
    assert top_per_rating(votes, ratings, {5: 2, 1: 1}, 3, seed=0).tolist() == [0, 2, 3]


def test_a_short_rating_gives_all_it_has_and_the_rest_fills_from_the_best_others():
    votes = np.array([5.0, 0.0, 3.0, 9.0])
    ratings = np.array([5, 5, 5, 1])
    # two 1-star drafts asked for, one exists; the shortfall goes to the best remaining 5-star draft
    assert top_per_rating(votes, ratings, {5: 1, 1: 2}, 3, seed=0).tolist() == [0, 2, 3]


def test_ties_break_at_random_but_seeded():
    votes, ratings = np.zeros(50), np.full(50, 5)
    first = top_per_rating(votes, ratings, {5: 10}, 10, seed=1)
    assert first.tolist() == top_per_rating(votes, ratings, {5: 10}, 10, seed=1).tolist()
    assert first.tolist() != top_per_rating(votes, ratings, {5: 10}, 10, seed=2).tolist()
    assert first.tolist() != list(range(10))


def test_select_keeps_what_many_private_rows_vote_for():
    """Twenty units vote for draft 1 of 40 five-star drafts: at epsilon 8 the noise (scale ~0.6) cannot hide it."""
    rng = np.random.default_rng(3)
    drafts = _unit(rng.normal(size=(40, 16)))
    private = _unit(drafts[[1] * 20] + 0.01 * rng.normal(size=(20, 16)))
    out = select(private, np.full(20, 5), np.arange(20), drafts, np.full(40, 5), method="votes", dims=4,
                 targets={5: 1}, n=1, epsilon=8.0, delta=1e-5, seed=0)
    assert out.keep.tolist() == [1]
    assert out.privacy["rho"] == pytest.approx(1 / (2 * out.privacy["noise_scale"] ** 2), rel=1e-6)
    assert out.privacy["drafts"] == 40 and len(out.scores) == 40


def test_without_dp_the_exact_votes_decide():
    rng = np.random.default_rng(4)
    drafts = _unit(rng.normal(size=(10, 8)))
    private = _unit(drafts[[3, 3, 7]] + 0.01 * rng.normal(size=(3, 8)))
    out = select(private, np.full(3, 2), np.arange(3), drafts, np.full(10, 2), method="votes", dims=4,
                 targets={2: 2}, n=2, epsilon=None, delta=1e-5, seed=0)
    assert out.keep.tolist() == [3, 7] and out.scores[3] == 2.0 and out.privacy["epsilon"] is None


def _two_topics(rng, n, dims=12):
    """Unit embeddings whose first coordinate says the rating: +1 for 5 stars, -1 for 1 star, plus noise."""
    ratings = rng.choice([1, 5], n)
    rows = 0.3 * rng.normal(size=(n, dims))
    rows[:, 0] += np.where(ratings == 5, 1.0, -1.0)
    return _unit(rows), ratings


def test_class_statistics_clip_each_units_share_to_norm_one():
    rng = np.random.default_rng(5)
    rows, ratings = rng.normal(size=(30, 4)), rng.integers(1, 6, 30)
    units = rng.integers(0, 6, 30)
    full = class_statistics(rows, ratings, units)
    assert full.shape == (5, 5)
    for unit in range(6):
        rest = units != unit
        assert np.linalg.norm(full - class_statistics(rows[rest], ratings[rest], units[rest])) <= 1.0 + 1e-9
    # a single row of norm <= 1 counts 1 with its coordinates, then the pair is scaled to norm 1
    one = class_statistics(np.array([[0.6, 0.8]]), np.array([3]), np.array([0]))
    assert one[2] == pytest.approx(np.array([0.6, 0.8, 1.0]) / np.sqrt(2)) and np.abs(one[[0, 1, 3, 4]]).sum() == 0


def test_the_discriminant_reads_the_rating_its_statistics_describe():
    rng = np.random.default_rng(6)
    rows, ratings = _two_topics(rng, 400, dims=3)
    stats = class_statistics(rows, ratings, np.arange(400))
    weights, bias = discriminant(stats, rows, ratings)
    logits = rows @ weights + bias
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert probs.shape == (400, 5) and probs.sum(axis=1) == pytest.approx(np.ones(400))
    predicted = np.where(probs[:, 4] > probs[:, 0], 5, 1)
    assert (predicted == ratings).mean() > 0.95


def test_the_judge_keeps_the_drafts_that_read_like_their_rating():
    """Half the drafts were written for the wrong rating: the judge, trained on private rows under DP, finds them."""
    rng = np.random.default_rng(7)
    private, private_ratings = _two_topics(rng, 600)
    drafts, truth = _two_topics(rng, 200)
    written_for = np.where(np.arange(200) % 2 == 0, truth, 6 - truth)  # odd drafts: the opposite rating
    judge = fit_judge(private, private_ratings, np.arange(600), drafts, written_for, dims=6,
                      scale=calibrate(1.0, 1e-6, 1.0)[0])
    probs = judge.probabilities(drafts)
    assert probs.shape == (200, 5) and probs.sum(axis=1) == pytest.approx(np.ones(200))
    scores = probs[np.arange(200), written_for - 1]
    # OpenDP draws the noise from the OS, unseeded: over 1,000 draws the first mean ranged 0.63-0.87 (below 0.8 in
    # 4.1%, never below 0.6), the second 0.10-0.17. A judge that cannot tell the topics apart scores both alike.
    assert scores[written_for == truth].mean() > 0.6 > 0.2 > scores[written_for != truth].mean()
    out = select(private, private_ratings, np.arange(600), drafts, written_for, method="judge", dims=6,
                 targets={1: 25, 5: 25}, n=50, epsilon=1.0, delta=1e-6, seed=0)
    assert (written_for[out.keep] == truth[out.keep]).mean() > 0.9  # a random pick would give 0.5
    assert out.privacy["method"] == "judge" and out.privacy["noise_scale"] > 0 and out.judge is not None


def test_an_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="judge"):
        select(DRAFTS, DRAFT_RATINGS, np.arange(4), DRAFTS, DRAFT_RATINGS, method="best", dims=2, targets={}, n=1,
               epsilon=None, delta=1e-6, seed=0)


def test_a_pool_no_larger_than_n_is_released_whole():
    out = select(DRAFTS, DRAFT_RATINGS, np.arange(4), DRAFTS[:2], DRAFT_RATINGS[:2], method="judge", dims=32,
                 targets={5: 2}, n=3, epsilon=1.0, delta=1e-6, seed=0)
    assert out.keep.tolist() == [0, 1] and out.judge is None and out.privacy["epsilon"] == 1.0


def test_count_priors_tilt_an_ambiguous_text_towards_the_common_rating():
    """Between the 1- and 5-star readings of a text halfway between their means, equal priors give even odds;
    the statistics' own counts (90 five-star rows to 10 one-star) give 9:1 for five stars. (The three absent
    ratings keep mean 0 and count 0, so only the 1-to-5 odds are compared.)"""
    means = np.array([[-1.0, 0.0], [0, 0], [0, 0], [0, 0], [1.0, 0.0]])
    counts = np.array([10.0, 0.0, 0.0, 0.0, 90.0])
    stats = np.hstack([means * counts[:, None], counts[:, None]])
    drafts = np.array([[-1.0, 0.3], [-1.0, -0.3], [1.0, 0.3], [1.0, -0.3]])
    written_for = np.array([1, 1, 5, 5])

    def probs(priors):
        weights, bias = discriminant(stats, drafts, written_for, priors=priors)
        logits = np.zeros((1, 2)) @ weights + bias
        p = np.exp(logits - logits.max())
        return p[0] / p.sum()

    equal, counted = probs("equal"), probs("counts")
    assert equal[0] == pytest.approx(equal[4])
    assert counted[4] / counted[0] == pytest.approx(9.0)
    # the two absent ratings' counts (0) are floored at 1, never log(0)
    assert np.isfinite(counted).all() and counted[1] > 0
    with pytest.raises(ValueError, match="priors"):
        discriminant(stats, drafts, written_for, priors="uniform")


def test_relabel_weighs_the_judges_reading_against_the_asked_rating():
    """A draft asked for 5 stars that the judge reads 0.9 as 1 star is released as 1 star at trust 0.7
    (posterior odds 0.9 * 0.075 : 0.05 * 0.7); one read 0.6 / 0.4 keeps its 5 stars; a 4-star draft read 0.9 as
    5 stars keeps its 4 (0.9 * 0.075 < 0.1 * 0.7), read 0.95 it goes to 5; trust 1 keeps every asked rating."""
    probs = np.array([[0.9, 0.0, 0.0, 0.05, 0.05],
                      [0.6, 0.0, 0.0, 0.0, 0.4],
                      [0.0, 0.0, 0.0, 0.1, 0.9],
                      [0.0, 0.0, 0.0, 0.05, 0.95]])
    asked = np.array([5, 5, 4, 4])
    assert relabel(probs, asked, 0.7).tolist() == [1, 5, 4, 5]
    assert relabel(probs, asked, 1.0).tolist() == [5, 5, 4, 4]
    assert relabel(probs, asked, 0.2).tolist() == probs.argmax(axis=1).__add__(1).tolist()  # the judge alone
    with pytest.raises(ValueError, match="prompt_trust"):
        relabel(probs, asked, 0.1)


def test_the_judge_releases_a_misread_draft_under_the_rating_it_reads_as():
    """Drafts written for the opposite rating are kept at trust 1 only if they score well; at trust 0.5 the
    clearly misread ones are relabelled, so the released ratings match the texts' own more often."""
    rng = np.random.default_rng(8)
    private, private_ratings = _two_topics(rng, 600)
    drafts, truth = _two_topics(rng, 200)
    written_for = np.where(np.arange(200) % 4 == 0, 6 - truth, truth)  # a quarter of the drafts: the opposite rating
    kwargs = dict(method="judge", dims=6, targets={1: 50, 5: 50}, n=100, epsilon=None, delta=1e-6, seed=0)
    kept = select(private, private_ratings, np.arange(600), drafts, written_for, prompt_trust=1.0, **kwargs)
    assert (kept.ratings == written_for).all()
    relabelled = select(private, private_ratings, np.arange(600), drafts, written_for, prompt_trust=0.5, **kwargs)
    assert (relabelled.ratings != written_for).sum() > 30  # most of the 50 misread drafts
    assert (relabelled.ratings == truth).mean() > 0.95
    released = relabelled.ratings[relabelled.keep]
    assert (released == 1).sum() == 50 == (released == 5).sum()  # the targets hold over the released ratings


def test_relabelling_never_leaves_a_rating_short_of_its_target():
    """A judge that reads every draft as 5 stars (noise swamping tiny statistics) would relabel them all: the
    1- and 3-star targets take back their own drafts, the most 1- (3-)star-looking first, and the mix holds."""
    asked = np.array([1, 1, 1, 3, 3, 5, 5, 5])
    probs = np.tile([0.01, 0.0, 0.0, 0.0, 0.99], (8, 1))
    probs[1, 0] = 0.05  # the most 1-star-looking of the 1-star drafts
    labels = relabel(probs, asked, 0.7)
    assert (labels == 5).all()
    refilled = refill_short_ratings(labels, asked, probs, {1: 2, 3: 2, 5: 3})
    assert refilled.tolist() == [1, 1, 5, 3, 3, 5, 5, 5]  # draft 1 first, then draft 0 (stable order); draft 2 stays 5
    # a rating already at its target keeps the judge's labels
    assert refill_short_ratings(labels, asked, probs, {5: 8}).tolist() == labels.tolist()


def test_an_uninformative_judge_keeps_the_rating_mix():
    """Drafts that carry no rating signal at all, under heavy noise: the released ratings still meet every target."""
    rng = np.random.default_rng(9)
    private, private_ratings = _unit(rng.normal(size=(40, 6))), rng.choice([1, 3, 5], 40)
    drafts, asked = _unit(rng.normal(size=(60, 6))), np.repeat([1, 3, 5], 20)
    out = select(private, private_ratings, np.arange(40), drafts, asked, method="judge", dims=4,
                 targets={1: 10, 3: 10, 5: 10}, n=30, epsilon=0.1, delta=1e-6, seed=0, prompt_trust=0.7)
    released = out.ratings[out.keep]
    assert sorted(np.unique(released, return_counts=True)[1].tolist()) == [10, 10, 10]
