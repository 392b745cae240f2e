"""DP-SGD: the accountant's epsilon, the noise it implies, and user-level contribution bounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stages.errors import PrivacyBudgetError
from stages.synthesize.encoding import encode_records
from stages.synthesize.dp import (_per_unit_grad_samples, bound_contributions, example_weights, micro_batches,
                                  noise_for_target, step_backward, train_lora, unit_index)
from stages.synthesize.generator import attach_lora
from stages.synthesize.loading import load_base
from tests.unit.synthesize_helpers import quick_params, records


def _setup(n=60, users=20, **changes):
    params = quick_params(**{"generator.max_seq_len": 320, **changes})
    model, tok = load_base("tiny-llama", seed=0)
    model = attach_lora(model, params.generator)
    frame = records(n, users=users)
    return params, model, encode_records(tok, frame, 320), frame


@pytest.mark.parametrize("unit", ["record", "user"])
@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_reported_epsilon_is_at_most_the_target_and_matches_an_independent_accountant(unit, accountant):
    from opacus.accountants import create_accountant

    params, model, enc, frame = _setup(**{"dp.unit": unit, "dp.accountant": accountant, "dp.delta": 1e-3,
                                          "generator.batch_size": 5, "generator.epochs": 2})
    units = unit_index(frame["user_id"].to_numpy(), unit)
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    result = train_lora(model, enc, units, params.generator, params.dp, seed=1)
    priv = result.privacy
    assert priv["dp_enabled"] and priv["unit"] == unit
    assert priv["epsilon"] <= params.dp.target_epsilon
    assert priv["epsilon"] > 0.8 * params.dp.target_epsilon  # the noise is not wastefully large either
    assert priv["n_units"] == (60 if unit == "record" else 20)
    assert priv["sample_rate"] == pytest.approx(5 / priv["n_units"])
    # Recompute from (noise, rate, steps) with a fresh accountant: the same figure.
    check = create_accountant(accountant)
    check.history = [(priv["noise_multiplier"], priv["sample_rate"], priv["steps"])]
    assert check.get_epsilon(delta=1e-3) == pytest.approx(priv["epsilon"], rel=1e-6)
    # Only the LoRA weights were trained, and they did change.
    changed = [not torch.equal(p, lora_before[n]) for n, p in model.named_parameters() if p.requires_grad]
    assert all(changed)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_lower_target_epsilon_means_more_noise():
    sigma_8 = noise_for_target(quick_params().dp, sample_rate=0.05, steps=100)
    sigma_1 = noise_for_target(quick_params(**{"dp.target_epsilon": 1.0}).dp, sample_rate=0.05, steps=100)
    assert sigma_1 > sigma_8 > 0


def test_unreachable_target_epsilon_is_a_privacy_budget_error():
    params = quick_params(**{"dp.target_epsilon": 1e-6})
    # q = 1 keeps the accountant in closed form, so the search for a noise level fails fast
    with pytest.raises(PrivacyBudgetError, match=r"target_epsilon=1e-06 cannot be reached .* Raise target_epsilon"):
        noise_for_target(params.dp, sample_rate=1.0, steps=100)


def test_delta_not_below_one_over_units_is_refused():
    params, model, enc, frame = _setup(**{"dp.delta": 0.1})
    units = unit_index(frame["user_id"].to_numpy(), "user")
    with pytest.raises(PrivacyBudgetError, match=r"delta=0.1 is not below 1/20"):
        train_lora(model, enc, units, params.generator, params.dp, seed=0)


def test_non_private_baseline_says_so():
    params, model, enc, frame = _setup(**{"dp.enabled": False})
    result = train_lora(model, enc, unit_index(frame["user_id"].to_numpy(), "user"), params.generator, params.dp, seed=0)
    assert result.privacy["dp_enabled"] is False
    assert result.privacy["noise_multiplier"] == 0.0 and result.privacy["target_epsilon"] is None
    assert result.steps > 0 and result.losses


@pytest.mark.parametrize(
    ("users", "k", "expected"),
    [
        # one prolific user is cut to k, the others keep all theirs
        (["a"] * 10 + ["b", "c"], 3, {"a": 3, "b": 1, "c": 1}),
        # k larger than anyone's count keeps everything
        (["a", "a", "b"], 5, {"a": 2, "b": 1}),
        # k = 1: one review per person
        (["a", "b", "a", "b", "c"], 1, {"a": 1, "b": 1, "c": 1}),
    ],
)
def test_bound_contributions_caps_each_user_at_k(users, k, expected):
    keep = bound_contributions(np.array(users), k, seed=0)
    kept = [users[i] for i in keep]
    assert {u: kept.count(u) for u in set(kept)} == expected
    assert list(keep) == sorted(keep)
    assert list(bound_contributions(np.array(users), k, seed=0)) == list(keep)


def test_unit_index_groups_rows_by_user_only_for_user_unit():
    users = np.array(["x", "y", "x", "z"])
    user_units = unit_index(users, "user")
    assert user_units[0] == user_units[2] and len(set(user_units)) == 3
    assert list(unit_index(users, "record")) == [0, 1, 2, 3]


def test_per_unit_gradients_are_sums_over_each_units_rows():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad_sample = torch.tensor([[1.0, 0.0], [2.0, 1.0], [4.0, 4.0]])  # rows 0, 1, 2
    units = np.array([7, 3, 7])  # rows 0 and 2 belong to unit 7
    _per_unit_grad_samples([p], rows=[0, 1, 2], units=units, sampled=[3, 7])
    assert torch.equal(p.grad_sample, torch.tensor([[2.0, 1.0], [5.0, 4.0]]))
    # An empty Poisson batch still yields a (zero-row) grad sample, so the step is taken and counted.
    _per_unit_grad_samples([p], rows=[], units=units, sampled=[])
    assert p.grad_sample.shape == (0, 2)


def test_example_weights_read_each_reviews_rating_and_are_none_when_all_weigh_one():
    assert example_weights(np.array([5, 1, 4, 5]), (1, 1, 1, 1, 1)) is None
    np.testing.assert_allclose(example_weights(np.array([5, 1, 4, 5]), (1, 0.9, 1, 0.8, 0.4)), [0.4, 1, 0.8, 0.4])
    with pytest.raises(ValueError, match="1..5"):
        example_weights(np.array([0, 5]), (1, 1, 1, 1, 0.5))


def test_weighted_units_are_clipped_to_their_mean_weight_times_the_bound():
    """A unit's gradient is the weighted sum of its reviews', then clipped to max_norm x its mean weight (<= max_norm)."""
    p = torch.nn.Parameter(torch.zeros(2))
    units = np.array([3, 3, 7])
    weights = np.array([0.5, 1.0, 0.25])
    p.grad_sample = torch.tensor([[3.0, 0.0], [0.0, 0.1], [0.0, 0.8]])
    _per_unit_grad_samples([p], rows=[0, 1, 2], units=units, sampled=[3, 7], weights=weights, max_norm=1.0)
    # unit 3: 0.5 * (3, 0) + 1.0 * (0, 0.1) = (1.5, 0.1), norm 1.503 > 0.75 = mean weight: scaled to norm 0.75
    torch.testing.assert_close(p.grad_sample[0].norm(), torch.tensor(0.75), atol=1e-5, rtol=0)
    torch.testing.assert_close(p.grad_sample[0] / p.grad_sample[0].norm(), torch.tensor([1.5, 0.1]) / 1.50333)
    # unit 7: 0.25 * (0, 0.8) = (0, 0.2), below its bound 0.25: kept as it is
    torch.testing.assert_close(p.grad_sample[1], torch.tensor([0.0, 0.2]))
    # no unit ever exceeds max_norm, so Opacus' own clipping leaves them alone and the sensitivity is unchanged
    assert float(p.grad_sample.norm(dim=1).max()) <= 1.0 + 1e-6


def test_non_private_weights_make_the_step_a_weighted_mean():
    """Outside DP the batch gradient is sum(w * grad) / sum(w); a review of weight w counts w times."""
    x = torch.nn.Parameter(torch.tensor(1.0))
    targets = torch.tensor([0.0, 2.0, 5.0])

    def batch_loss(net, rows):
        return (x - targets[rows]) ** 2, None

    weights = np.array([1.0, 0.5, 0.25])
    step_backward(None, batch_loss, [[0, 1], [2]], [x], private=False, bf16=False, weights=weights)
    expected = sum(w * 2 * (1.0 - t) for w, t in zip(weights, targets.tolist())) / weights.sum()
    assert float(x.grad) == pytest.approx(expected)


def test_rating_weights_are_five_in_zero_to_one():
    from stages.errors import ParamsError

    assert quick_params(**{"generator.rating_weights": [1, 1, 1, 1, 0.4]}).generator.rating_weights[-1] == 0.4
    for bad in ([1, 1, 1, 1], [1, 1, 1, 1, 1.5], [1, 1, 0, 1, 1]):
        with pytest.raises(ParamsError, match="rating_weights"):
            quick_params(**{"generator.rating_weights": bad})


@pytest.mark.parametrize("private", [True, False])
def test_down_weighting_five_star_reviews_keeps_epsilon_and_changes_the_weights(private):
    """The same run with 5-star reviews at weight 0.3: the accountant's figures are unchanged, the adapters differ."""
    trained = {}
    for table in ((1, 1, 1, 1, 1), (1, 1, 1, 1, 0.3)):
        torch.manual_seed(0)
        params, model, enc, frame = _setup(**{"dp.enabled": private, "dp.delta": 1e-3, "generator.batch_size": 6,
                                              "generator.epochs": 2})
        assert (frame["rating"] == 5).any() and (frame["rating"] != 5).any()
        result = train_lora(model, enc, unit_index(frame["user_id"].to_numpy(), "user"), params.generator,
                            params.dp, seed=3, weights=example_weights(frame["rating"].to_numpy(), table))
        trained[table] = ({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}, result.privacy)
    (plain, plain_privacy), (weighted, weighted_privacy) = trained.values()
    assert weighted_privacy == plain_privacy
    assert any(not torch.equal(plain[n], weighted[n]) for n in plain)


def test_micro_batches_go_in_order_of_length_and_cover_every_row_once():
    """Several chunks go shortest first; a single chunk keeps the batch's order (the whole-batch step unchanged)."""
    lengths = {0: 9, 1: 3, 2: 7, 3: 3, 4: 1}
    assert micro_batches([0, 1, 2, 3, 4], lengths, 2) == [[4, 1], [3, 2], [0]]
    assert micro_batches([0, 2, 4], lengths, None) == [[0, 2, 4]]
    assert micro_batches([], lengths, 2) == []


@pytest.mark.parametrize("private", [True, False])
def test_micro_batching_by_length_trains_the_same_weights_as_the_whole_batch(private):
    """Per-example gradients (DP) and the mean gradient (non-private) do not depend on how a step is chunked."""
    trained = {}
    for micro in (None, 3):
        torch.manual_seed(0)  # the same LoRA initialisation for both
        params, model, enc, frame = _setup(**{"dp.enabled": private, "dp.delta": 1e-3, "generator.batch_size": 6,
                                              "generator.epochs": 2, "generator.micro_batch_size": micro})
        assert len(set(enc.attention_mask.sum(dim=1).tolist())) > 1  # lengths differ, so chunks pad differently
        result = train_lora(model, enc, unit_index(frame["user_id"].to_numpy(), "user"), params.generator,
                            params.dp, seed=3)
        trained[micro] = ({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad},
                          result.losses, result.examples_seen)
    (whole, whole_losses, whole_seen), (chunked, chunked_losses, chunked_seen) = trained[None], trained[3]
    assert whole_seen == chunked_seen
    assert chunked_losses == pytest.approx(whole_losses, rel=1e-5)
    for name, value in whole.items():
        torch.testing.assert_close(chunked[name], value, rtol=1e-4, atol=1e-6)
    assert any(not torch.equal(v, torch.zeros_like(v)) for v in whole.values())


def test_native_bf16_reads_the_cpu_flags_torch_reports():
    from stages.synthesize.dp import native_bf16

    expected = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert native_bf16() is bool(expected)


@pytest.mark.parametrize("native", [True, False])
def test_auto_train_dtype_is_bf16_only_where_the_cpu_has_it(monkeypatch, native):
    import warnings

    from stages.synthesize import dp as dp_module

    monkeypatch.setattr(dp_module, "native_bf16", lambda: native)  # the other CPU's answer
    assert dp_module.resolve_train_dtype("auto") == ("bfloat16" if native else "float32")
    assert dp_module.resolve_train_dtype("float32") == "float32"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert dp_module.resolve_train_dtype("bfloat16") == "bfloat16"  # an explicit choice is kept ...
    said = [str(w.message) for w in caught]
    assert bool(said) is not native  # ... with a warning where it is emulated
    if said:
        assert "no native bf16" in said[0] and "train_dtype: auto or float32" in said[0]
