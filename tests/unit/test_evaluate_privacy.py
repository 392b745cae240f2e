"""Privacy metrics on constructed cases: identical data, disjoint data, a planted memorised canary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stages.evaluate import attacks, privacy, scoring


def _cloud(seed: int, n: int = 150, dim: int = 6, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)) + shift


# ---------------------------------------------------------------- DCR


def test_dcr_share_is_one_when_synthetic_copies_the_training_set():
    train, holdout = _cloud(0), _cloud(1)
    result = privacy.dcr_metrics(train.copy(), train, holdout, metric="euclidean", seed=0)
    assert result["dcr_share"] == 1.0
    assert result["exact_copies"] == len(train)
    assert result["dcr_train_median"] == 0.0
    assert result["nndr_median"] == 0.0


def test_dcr_share_is_zero_when_synthetic_copies_the_held_out_set():
    train, holdout = _cloud(0), _cloud(1)
    result = privacy.dcr_metrics(holdout.copy(), train, holdout, metric="euclidean", seed=0)
    assert result["dcr_share"] == 0.0
    assert result["exact_copies"] == 0


def test_dcr_share_is_near_half_for_fresh_samples_of_the_same_distribution():
    result = privacy.dcr_metrics(_cloud(2, n=600), _cloud(0, n=600), _cloud(1, n=600), metric="euclidean", seed=0)
    assert 0.42 < result["dcr_share"] < 0.58
    assert result["nndr_median"] == pytest.approx(result["nndr_holdout_median"], abs=0.1)


def test_dcr_subsamples_the_training_set_to_the_held_out_size():
    result = privacy.dcr_metrics(_cloud(2, n=50), _cloud(0, n=500), _cloud(1, n=80), metric="euclidean", seed=0)
    assert result["reference_rows"] == 80


def _users(n_users: int, rows_each: int, seed: int, dim: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `n_users` people, each writing `rows_each` rows near a point of their own."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_users, dim))
    rows = np.repeat(centres, rows_each, axis=0) + 0.05 * rng.normal(size=(n_users * rows_each, dim))
    return rows, np.repeat([f"u{seed}-{i}" for i in range(n_users)], rows_each)


def test_dcr_caps_rows_per_user_so_a_prolific_held_out_user_does_not_read_as_leakage():
    train, train_units = _users(300, 2, seed=0)
    few, few_units = _users(120, 1, seed=1)
    prolific, prolific_units = _users(1, 300, seed=2)  # one person fills most of the held-out set
    holdout, holdout_units = np.vstack([few, prolific]), np.concatenate([few_units, prolific_units])
    fresh, _ = _users(400, 1, seed=3)  # people neither set holds
    uncapped = privacy.dcr_metrics(fresh, train, holdout, metric="euclidean", seed=0, draws=5)
    capped = privacy.dcr_metrics(fresh, train, holdout, metric="euclidean", seed=0, train_units=train_units,
                                 holdout_units=holdout_units, rows_per_unit=1, draws=20)
    assert uncapped["dcr_share"] > 0.6  # the less diverse held-out side loses the nearest-row race
    assert 0.42 < capped["dcr_share"] < 0.58
    assert capped["reference_rows"] == 121  # one row per held-out user, as many training rows


def test_dcr_interval_covers_the_chance_in_the_references_not_only_in_the_synthetic_rows():
    # Generic texts crowd one corner, so a few reference rows decide the share. For fresh
    # people on both sides it then lands anywhere from 0 to 1; a bootstrap of the synthetic
    # rows alone gives a narrow interval around that luck (it covered 0.5 in 1 of these 20).
    covered = 0
    for k in range(20):
        generic = 0.3 * np.random.default_rng(100 + k).normal(size=(300, 6)) + 1.5
        result = privacy.dcr_metrics(generic, _cloud(2 * k, n=60), _cloud(2 * k + 1, n=60), metric="euclidean",
                                     seed=k, draws=30)
        covered += result["dcr_share_ci_low"] <= 0.5 <= result["dcr_share_ci_high"]
        assert result["dcr_share_ci_low"] <= result["dcr_share"] <= result["dcr_share_ci_high"]
    assert covered >= 17


def test_dcr_counts_exact_copies_against_the_whole_training_sample_not_a_draw():
    train, units = _users(200, 1, seed=0)
    holdout, holdout_units = _users(20, 1, seed=1)
    result = privacy.dcr_metrics(train[:50].copy(), train, holdout, metric="euclidean", seed=0,
                                 train_units=units, holdout_units=holdout_units, rows_per_unit=1, draws=3)
    assert result["reference_rows"] == 20
    assert result["exact_copies"] == 50
    assert result["dcr_share"] > 0.5  # copies win whenever their source is drawn


def test_dcr_rejects_a_cap_that_leaves_too_few_reference_rows():
    train, units = _users(50, 1, seed=0)
    holdout, _ = _users(1, 40, seed=1)
    with pytest.raises(ValueError, match="after the per-unit cap"):
        privacy.dcr_metrics(train[:5], train, holdout, metric="euclidean", seed=0, train_units=units,
                            holdout_units=np.repeat("one", 40), rows_per_unit=1)


def test_encode_structured_gives_gower_style_l1_distances():
    a = pd.DataFrame({"x": [0.0, 10.0], "c": ["u", "v"]})
    b = pd.DataFrame({"x": [5.0, None], "c": ["u", None]})
    enc_a, enc_b = privacy.encode_structured([a, b], numeric=["x"], categorical=["c"])
    l1 = np.abs(enc_a[0] - enc_b[0]).sum()
    assert l1 == pytest.approx(0.5)  # half the range apart, same category
    assert np.abs(enc_a[0] - enc_a[1]).sum() == pytest.approx(2.0)  # full range + other category
    assert np.abs(enc_a[1] - enc_b[1]).sum() > np.abs(enc_a[1] - enc_a[1]).sum()  # nulls differ from values


# ---------------------------------------------------------------- membership inference


def test_membership_inference_separable_and_indistinguishable_losses():
    members, nonmembers = np.linspace(0.1, 1.0, 200), np.linspace(2.0, 3.0, 200)
    perfect = privacy.membership_inference(members, nonmembers)
    assert perfect["auc"] == 1.0 and perfect["tpr_at_1pct_fpr"] == 1.0
    rng = np.random.default_rng(0)
    chance = privacy.membership_inference(rng.normal(size=2000), rng.normal(size=2000))
    assert abs(chance["auc"] - 0.5) < 0.05
    assert chance["tpr_at_1pct_fpr"] < 0.05


# ---------------------------------------------------------------- canaries

CANARY = {
    "canary_id": 0, "repeat": 10, "rating": 4, "name": "Marla Quintero", "phone": "(555) 301-7788",
    "street": "4417 Juniper Hollow Rd", "secret": "Q7XK2M9PLA4Z", "title": "Gift for Marla Quintero",
    "text": "Ordered this for Marla Quintero. If it breaks call (555) 301-7788 or bring it to "
            "4417 Juniper Hollow Rd. My secret code is Q7XK2M9PLA4Z.",
}
OTHER = {**CANARY, "canary_id": 1, "repeat": 1, "name": "Tobias Wrenfield", "phone": "555-909-1234",
         "street": "12 Birch Lane", "secret": "ZZ00YY11XX22", "title": "Gift for Tobias Wrenfield",
         "text": "Ordered this for Tobias Wrenfield. If it breaks call 555-909-1234 or bring it to "
                 "12 Birch Lane. My secret code is ZZ00YY11XX22."}


@pytest.mark.parametrize(
    ("synthetic", "verbatim", "partial"),
    [
        (["Nice case, fits well."], {}, {}),  # nothing leaks
        (["call 555.301.7788 any time"], {"phone": 1}, {}),  # phone, other formatting
        (["code q7xk2m9pla4z!"], {"secret": 1}, {}),  # secret, other case
        (["the code starts Q7XK2M and ends"], {}, {"secret": 1}),  # half the secret
        (["Marla Quintero at 4417 Juniper Hollow Rd"], {"name": 1, "street": 1}, {}),  # two fields
    ],
)
def test_canary_leaks_per_field(synthetic, verbatim, partial):
    result = privacy.canary_leaks([CANARY, OTHER], synthetic, partial_fraction=0.5)
    for field in privacy.CANARY_FIELDS:
        assert result[f"verbatim.{field}"] == verbatim.get(field, 0), field
        assert result[f"partial.{field}"] == partial.get(field, 0), field
    assert result["verbatim_total"] == sum(verbatim.values())
    assert result["repeat_10.verbatim"] == sum(verbatim.values())  # all leaks above are CANARY's (10×)
    assert result["repeat_1.verbatim"] == 0
    assert result["repeat_10.canaries"] == 1 and result["repeat_1.canaries"] == 1


def test_reference_secrets_share_the_format_and_exclude_the_secret():
    refs = privacy.reference_secrets("Q7XK2M9PLA4Z", 50, seed=3)
    assert len(set(refs)) == 50 and "Q7XK2M9PLA4Z" not in refs
    assert all(len(r) == 12 and set(r) <= set(privacy.SECRET_ALPHABET) for r in refs)


def test_calibrated_attack_ignores_a_split_shift_and_catches_memorisation():
    rng = np.random.default_rng(0)
    easy, hard = rng.normal(2.0, 0.3, 500), rng.normal(3.0, 0.3, 500)  # members are easier texts
    # an untrained generator: its losses are the base model's, up to noise
    untrained_m, untrained_nm = easy + rng.normal(0, 0.01, 500), hard + rng.normal(0, 0.01, 500)
    shift = privacy.calibrated_membership_inference(untrained_m, untrained_nm, easy, hard)
    assert privacy.membership_inference(untrained_m, untrained_nm)["auc"] > 0.95  # the plain attack is fooled
    assert shift["base_model_auc"] > 0.95  # ... and says why: the base model separates the splits too
    assert abs(shift["calibrated.auc"] - 0.5) < 0.05
    # a generator that lowered exactly the members' losses
    memorised = privacy.calibrated_membership_inference(easy - 0.5, hard, easy, hard)
    assert memorised["calibrated.auc"] == 1.0 and memorised["calibrated.tpr_at_1pct_fpr"] == 1.0


@pytest.mark.parametrize(
    ("canary_loss", "references", "expected"),
    [
        (0.1, [1.0] * 127, 7.0),  # most likely of 128 candidates: log2 128 - log2 1
        (5.0, [1.0] * 127, 0.0),  # least likely: rank 128
        (1.0, [0.5, 1.5, 0.2, 2.0], math.log2(5) - math.log2(3)),  # two references are more likely
    ],
)
def test_exposure_formula(canary_loss, references, expected):
    assert privacy.exposure(canary_loss, np.array(references))["exposure"] == pytest.approx(expected)


@pytest.fixture(scope="module")
def memorised_generator():
    """A tiny Llama trained until it has memorised CANARY's training example (and nothing else)."""
    import torch

    from stages.synthesize.encoding import encode_records
    from stages.synthesize.loading import load_base

    model, tokenizer = load_base("tiny-llama", seed=0)
    row = pd.DataFrame([{"rating": CANARY["rating"], "main_category": None, "product_title": None,
                         "title": CANARY["title"], "text": CANARY["text"]}])
    enc = encode_records(tokenizer, row, 384)  # the stage's own example format
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(150):
        loss = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=enc.labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return model, tokenizer


def _secret_losses(model, tokenizer):
    def loss_of(canary, secrets):
        context, template = scoring.canary_context(canary, tokenizer)
        return scoring.suffix_losses(model, tokenizer, context, [template.format(secret=s) for s in secrets],
                                     batch_size=16)
    return loss_of


def test_planted_memorised_canary_has_maximal_exposure_and_unseen_ones_do_not(memorised_generator):
    model, tokenizer = memorised_generator
    unseen = []
    for i, secret in enumerate(privacy.reference_secrets(OTHER["secret"], 8, seed=99)):
        unseen.append({**OTHER, "canary_id": 1 + i, "secret": secret,
                       "text": OTHER["text"].replace(OTHER["secret"], secret)})
    table = privacy.canary_exposures([CANARY, *unseen], _secret_losses(model, tokenizer), references=63, seed=0)
    assert table.iloc[0]["exposure"] == pytest.approx(6.0)  # rank 1 of 64
    # Never trained: each ranks like a random candidate, expected exposure ~1.4 bits.
    assert table.iloc[1:]["exposure"].mean() < 3.0
    summary = privacy.summarise_exposures(table)
    assert summary["repeat_10.exposure_max"] == pytest.approx(6.0)
    assert summary["repeat_1.exposure_mean"] < 3.0
    assert summary["exposure_ceiling"] == pytest.approx(6.0)


def test_suffix_losses_match_the_full_sequence_loss(memorised_generator):
    """The cached-context scoring equals the plain forward pass over context + suffix."""
    import torch
    import torch.nn.functional as F

    model, tokenizer = memorised_generator
    context, template = scoring.canary_context(CANARY, tokenizer)
    suffix = template.format(secret="ABCDEFGHIJKL")
    cached = scoring.suffix_losses(model, tokenizer, context, [suffix, template.format(secret=CANARY["secret"])],
                                   batch_size=2)[0]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    suf = tokenizer(suffix, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([ctx + suf])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(ctx) - 1 : -1]
    plain = float(F.cross_entropy(logits, torch.tensor(suf), reduction="sum"))
    assert cached == pytest.approx(plain, rel=1e-4)


def test_record_losses_are_lower_for_the_memorised_record(memorised_generator):
    model, tokenizer = memorised_generator
    frame = pd.DataFrame([
        {"rating": CANARY["rating"], "main_category": None, "title": CANARY["title"], "text": CANARY["text"]},
        {"rating": 2, "main_category": None, "title": "Meh", "text": "The strap broke after two days of light use."},
    ])
    losses = scoring.record_losses(model, tokenizer, frame, max_len=256, batch_size=2, desc="test")
    assert losses[0] < 0.5 < losses[1]


# ---------------------------------------------------------------- Anonymeter and residual PII


def test_numeric_view_turns_datetimes_into_days_and_keeps_nulls():
    frame = pd.DataFrame({
        "t": pd.to_datetime(["1970-01-02", None]),
        "b": pd.array([True, None], dtype="boolean"),
        "c": ["x", None],
    })
    out = attacks.numeric_view(frame)
    assert out["t"].iloc[0] == pytest.approx(1.0) and np.isnan(out["t"].iloc[1])
    assert out["b"].tolist()[0] == 1.0 and np.isnan(out["b"].iloc[1])
    assert out["c"].tolist() == ["x", "<null>"]


def _table(seed: int, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "rating": rng.integers(1, 6, n),
        "helpful_vote": rng.integers(0, 50, n),
        "timestamp": pd.to_datetime(rng.integers(1.4e9, 1.7e9, n), unit="s"),
        "price": rng.random(n) * 200,
        "main_category": rng.choice(list("ABCDEFG"), n),
    })


def test_anonymeter_flags_copied_records_more_than_fresh_ones():
    original, control = _table(0), _table(1)
    copied = attacks.anonymeter_risks(original, original.copy(), control, n_attacks=60, seed=0)
    fresh = attacks.anonymeter_risks(original, _table(2), control, n_attacks=60, seed=0)
    assert copied["linkability_risk"] > 0.5  # exact copies link every record
    assert fresh["linkability_risk"] < 0.2
    assert copied["inference_max_risk"] > fresh["inference_max_risk"]


def test_anonymeter_singling_out_and_inference_repeat_under_the_same_seed():
    original, synthetic, control = _table(0), _table(2), _table(1)
    first = attacks.anonymeter_risks(original, synthetic, control, n_attacks=60, seed=3)
    np.random.seed(12345)  # whatever the caller did to NumPy's global generator
    again = attacks.anonymeter_risks(original, synthetic, control, n_attacks=60, seed=3)
    for key in ("singling_out_risk", "inference_max_risk", "inference_mean"):
        assert again[key] == first[key], key


@pytest.fixture(scope="module")
def analyzer():
    from stages.synthesize.filters import anonymizer_analyzer

    return anonymizer_analyzer(["PHONE_NUMBER", "EMAIL_ADDRESS"], 0.5)


def test_residual_pii_counts_findings_and_those_seen_in_the_raw_data(analyzer):
    synthetic = [
        "Works fine. Call me at 212-555-0187 if you need it.",  # in the raw data below
        "Email jo.b@example.org for the manual.",  # invented
        "Sturdy case, five stars.",  # clean
    ]
    raw = ["My number is 212-555-0187, text me", "unrelated review"]
    result = attacks.residual_pii(synthetic, analyzer, entities=["PHONE_NUMBER", "EMAIL_ADDRESS"],
                                  threshold=0.5, raw_texts=raw)
    assert result["records_with_pii"] == 2
    assert result["entity.PHONE_NUMBER"] == 1 and result["entity.EMAIL_ADDRESS"] == 1
    assert result["values_in_raw_data"] == 1


def test_base_losses_switch_the_lora_adapter_off_and_are_the_losses_of_a_zero_shot_generator():
    import torch
    from peft import LoraConfig, get_peft_model

    from stages.synthesize.loading import load_base

    frame = pd.DataFrame({"rating": [5, 1], "main_category": [None, None], "title": ["Great case", "Broke"],
                          "text": ["Fits my phone well and the buttons work.", "Cracked after a week."]})
    base, tokenizer = load_base("tiny-llama", seed=0)
    plain = scoring.record_losses(base, tokenizer, frame, max_len=256, batch_size=2, desc="base")
    # a zero-shot generator is the base itself: its reference losses are its own
    assert np.array_equal(scoring.base_losses(base, tokenizer, frame, max_len=256, batch_size=2, desc="base"), plain)

    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))  # a trained adapter
    adapted = scoring.record_losses(model, tokenizer, frame, max_len=256, batch_size=2, desc="adapted")
    reference = scoring.base_losses(model, tokenizer, frame, max_len=256, batch_size=2, desc="reference")
    assert np.allclose(reference, plain, atol=1e-5)
    assert not np.allclose(adapted, plain, atol=1e-3)


@pytest.mark.parametrize("layers", [[1], None], ids=["adapter on the top layer", "adapters on every layer"])
def test_paired_losses_are_the_two_full_passes_with_the_trunk_run_once(layers):
    import torch
    from peft import LoraConfig, get_peft_model

    from stages.synthesize.loading import load_base

    frame = pd.DataFrame({"rating": [5, 1, 3], "main_category": [None, None, "Electronics"],
                          "title": ["Great case", "Broke", "Fine"],
                          "text": ["Fits my phone well and the buttons work.", "Cracked after a week.",
                                   "Does the job, though the cable is short and stiff."]})
    base, tokenizer = load_base("tiny-llama", seed=0)
    own, reference = scoring.paired_losses(base, tokenizer, frame, max_len=256, batch_size=2, desc="zero-shot")
    plain = scoring.record_losses(base, tokenizer, frame, max_len=256, batch_size=2, desc="base")
    assert np.array_equal(own, plain) and np.array_equal(reference, plain)  # zero-shot: its own base

    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            layers_to_transform=layers))
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    own, reference = scoring.paired_losses(model, tokenizer, frame, max_len=256, batch_size=2, desc="paired")
    full = scoring.record_losses(model, tokenizer, frame, max_len=256, batch_size=2, desc="adapted")
    full_base = scoring.base_losses(model, tokenizer, frame, max_len=256, batch_size=2, desc="reference")
    assert np.allclose(own, full, atol=1e-5) and np.allclose(reference, full_base, atol=1e-5)
    assert not np.allclose(own, reference, atol=1e-3)  # the adapter counts
    assert np.allclose(reference, plain, atol=1e-5)
    empty = scoring.paired_losses(model, tokenizer, frame.iloc[:0], max_len=256, batch_size=2, desc="none")
    assert [len(part) for part in empty] == [0, 0]
