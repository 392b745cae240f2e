"""run_synthesize and the CLI on tiny in-memory data with the tiny model: outputs, counts, errors, save/load."""

from __future__ import annotations

import json
import math

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from stages._cli import run_cli
from stages.errors import PipelineInputError, PrivacyBudgetError
from stages.schema import RECORD_SCHEMA
from stages.synthesize import GenerationError, run_synthesize
from stages.synthesize.__main__ import main
from stages.synthesize.core import to_arrow
from stages.synthesize.generator import ReviewGenerator
from stages.synthesize.loading import load_base
from tests.unit.synthesize_helpers import ROOT, NoPII, quick_params, records

TRAIN = records(120, users=40)
VAL = records(20, split="val", seed=1000)


@pytest.fixture(scope="module")
def result():
    return run_synthesize(TRAIN, VAL, quick_params(), seed=3, analyzer=NoPII())


def test_synthetic_records_follow_the_schema_and_the_sampled_controls(result):
    recs = result.records
    table = to_arrow(recs)
    assert table.schema.equals(RECORD_SCHEMA)
    assert (recs["split"] == "synthetic").all()
    assert list(recs["review_id"]) == [f"syn-{i}" for i in range(len(recs))]
    assert recs["user_id"].isna().all() and recs["asin"].isna().all()  # never a real person or product
    assert recs["rating"].between(1, 5).all() and recs["text"].str.len().ge(5).all()
    # the DP model's categories are the public list in params, never read from the data
    assert set(recs["main_category"].dropna()) <= set(quick_params().tabular.domain.categories)


def test_every_requested_record_is_accounted_for(result):
    m = result.metrics
    dropped = m["dropped_parse"] + m["dropped_exact_match"] + m["dropped_ngram_overlap"] + m["dropped_inconsistent"] + m["dropped_pii"]
    gen = quick_params().generation
    assert m["generated_requested"] == m["records_written"] + dropped + m["records_surplus_discarded"]
    assert m["generated_requested"] == math.ceil(gen.n_records * gen.oversample) and m["records_target"] == gen.n_records
    assert m["records_written"] <= gen.n_records
    assert m["records_surplus_discarded"] == 0 or m["records_written"] == gen.n_records
    assert m["records_written"] == len(result.records)
    assert m["train_rows_input"] == 120
    assert m["train_rows_real"] + m["rows_dropped_user_bound"] + m["rows_dropped_max_train_rows"] == 120


def test_metrics_carry_the_accountants_figures(result):
    m = result.metrics
    assert m["dp_enabled"] is True and m["fine_tuned"] is True and m["privacy_unit"] == "user"
    assert 0 < m["epsilon"] <= m["target_epsilon"] == 8.0
    for key in ("delta", "noise_multiplier", "sample_rate", "steps", "accountant", "n_units"):
        assert m[key] is not None
    assert m["val_loss"] > 0 and m["val_perplexity"] > 1 and m["train_loss_end"] > 0
    assert m["train_dtype"] == quick_params().generator.train_dtype == "float32"  # the precision the steps ran in
    assert set(m["seconds"]) >= {"tabular_fit", "train", "generate", "filter", "total"}
    json.dumps(m, allow_nan=False)  # plain JSON, so that DVC can read it
    # the release's budget: the generator's and the DP tabular model's, composed
    eps_tab = quick_params().tabular.epsilon
    assert m["epsilon_text"] == m["epsilon"] and m["epsilon_tabular"] == eps_tab
    eps_sel = quick_params().selection.epsilon  # the quick profile selects its drafts under DP too
    assert m["epsilon_selection"] == eps_sel and m["selection_enabled"] is True
    assert 0 < m["epsilon_total"] <= m["epsilon_total_basic"] == pytest.approx(m["epsilon"] + eps_tab + eps_sel)
    assert m["delta_total"] == pytest.approx(m["delta"] + m["delta_tabular"] + m["delta_selection"])
    assert "OpenDP" in m["tabular_mechanism"]


def test_every_metric_has_a_ledger_entry(result):
    from stages.ledger import unclaimed_metrics

    assert unclaimed_metrics("metrics/synthesize.json", result.metrics) == []


def test_conditioning_reaches_the_generator_prompts(result):
    """Each written record's prompt carried that record's sampled rating and category."""
    gen = result.generator
    controls = pd.DataFrame({"rating": [2, 5], "main_category": ["Computers", None], "text_chars": [50, 500]})
    out = gen.write(controls, quick_params().generation, seed=0)
    assert "Write a 2-star Amazon review of a product from the Computers category" in out["prompts"][0]
    assert "It was poor." in out["prompts"][0] and "one or two sentences" in out["prompts"][0]
    assert "Write a 5-star Amazon review of a product you bought. It was excellent." in out["prompts"][1]
    assert "detailed" in out["prompts"][1]


def test_generator_save_and_load_round_trip(result, tmp_path):
    result.generator.save(tmp_path / "gen")
    loaded = ReviewGenerator.load({"generator": str(tmp_path / "gen")})
    for (name, a), (_, b) in zip(result.generator.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), name
    controls = pd.DataFrame({"rating": [1, 4], "main_category": ["Computers", None], "text_chars": [40, 200]})
    gen = quick_params().generation
    assert loaded.write(controls, gen, seed=9)["texts"] == result.generator.write(controls, gen, seed=9)["texts"]
    assert list(loaded.predict(controls[["rating"]]).columns) == ["title", "text"]
    config = json.loads((tmp_path / "gen" / "config.json").read_text())
    config["base_sha256"] = "0" * 64
    (tmp_path / "gen" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PipelineInputError, match="differs from the one the adapter was trained on"):
        ReviewGenerator.load_dir(tmp_path / "gen")


def test_non_private_baseline_runs_and_says_so():
    params = quick_params(**{"dp.enabled": False, "generation.n_records": 4, "canaries.enabled": False})
    m = run_synthesize(TRAIN, VAL, params, seed=0, analyzer=NoPII()).metrics
    assert m["dp_enabled"] is False and m["epsilon"] is None and m["noise_multiplier"] == 0.0


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        # fewer usable rows than the minimum (after bounding users to k = 1 review: 40 rows)
        ({"generator.min_train_rows": 50, "dp.max_reviews_per_user": 1}, PipelineInputError,
         r"only 40 usable training reviews .*min_train_rows is 50"),
        # a target epsilon no noise level can reach
        ({"dp.target_epsilon": 1e-7, "generator.batch_size": 4096}, PrivacyBudgetError,
         r"target_epsilon=1e-07 cannot be reached"),
        # a base model that cannot be loaded
        ({"generator.base_model": "models/base/absent.gguf"}, PipelineInputError, r"base model .*absent.gguf does not exist"),
        # generation that produces nothing: no body can reach 10,000 characters in 8 tokens
        ({"generation.min_text_chars": 10_000, "generation.max_new_tokens": 8, "generation.n_records": 3},
         GenerationError, r"generation produced no usable record: of (\d+) requested, \1 failed to parse"),
    ],
)
def test_errors_say_what_to_change(changes, error, message):
    with pytest.raises(error, match=message):
        run_synthesize(TRAIN, VAL, quick_params(**changes), seed=0, analyzer=NoPII())


def _cli_args(tmp_path, params_file):
    TRAIN.to_parquet(tmp_path / "train.parquet")
    VAL.to_parquet(tmp_path / "val.parquet")
    return [
        "--params", str(params_file), "--train", str(tmp_path / "train.parquet"), "--val", str(tmp_path / "val.parquet"),
        "--out", str(tmp_path / "data/synthetic/reviews.parquet"), "--generator-dir", str(tmp_path / "models/generator"),
        "--tabular-dir", str(tmp_path / "models/tabular"), "--metrics", str(tmp_path / "metrics/synthesize.json"),
        "--plots-dir", str(tmp_path / "metrics/plots/synthesize"), "--ledger", str(tmp_path / "metrics/privacy_ledger.json"),
    ]


def _n_records() -> str:
    """The quick profile's `n_records` line, as the params file spells it."""
    return f"n_records: {quick_params().generation.n_records}"


def _quick_file(tmp_path, **replacements):
    text = (ROOT / "tests" / "params.quick.yaml").read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_cli_writes_outputs_and_registers_the_generator(tmp_path, capsys):
    from stages.tracking import load_registered_model, model_version_by_alias

    params_file = _quick_file(tmp_path, **{_n_records(): "n_records: 6"})
    assert main(_cli_args(tmp_path, params_file)) == 0
    summary = capsys.readouterr().out
    table = pq.read_table(tmp_path / "data/synthetic/reviews.parquet")
    assert table.schema.equals(RECORD_SCHEMA) and table.num_rows > 0
    gen_dir = tmp_path / "models/generator"
    assert {"config.json", "canaries.json", "adapter", "tokenizer"} <= {p.name for p in gen_dir.iterdir()}
    assert len(json.loads((gen_dir / "canaries.json").read_text())) == 4
    assert (tmp_path / "models/tabular/synthesizer.pkl").is_file()
    assert (tmp_path / "metrics/plots/synthesize/train_loss.png").is_file()
    metrics = json.loads((tmp_path / "metrics/synthesize.json").read_text())
    assert metrics["epsilon"] <= 8.0
    ledger = json.loads((tmp_path / "metrics/privacy_ledger.json").read_text())
    assert ledger["epsilon_total"] == metrics["epsilon_total"]
    assert ledger["components"]["synthesize.tabular"]["epsilon"] == metrics["epsilon_tabular"]
    assert model_version_by_alias("review-generator", "candidate") == "1"
    import mlflow

    version = mlflow.MlflowClient().get_model_version("review-generator", "1")
    assert version.tags["privacy_unit"] == "user" and float(version.tags["epsilon"]) == pytest.approx(metrics["epsilon"])
    assert float(version.tags["epsilon_total"]) == pytest.approx(metrics["epsilon_total"])
    assert float(version.tags["epsilon_selection"]) == metrics["epsilon_selection"]  # the quick profile selects
    assert ledger["components"]["synthesize.selection"]["epsilon"] == metrics["epsilon_selection"]
    assert f"tabular {metrics['epsilon_tabular']:g}, selection {metrics['epsilon_selection']:g};" in summary
    served = load_registered_model("models:/review-generator@candidate")
    out = served.predict(pd.DataFrame({"rating": [3], "main_category": ["Computers"], "text_chars": [80]}))
    assert len(out) == 1 and list(out.columns) == ["title", "text"]


def test_failed_run_leaves_no_outputs(tmp_path):
    params_file = _quick_file(tmp_path, **{"min_text_chars: 5": "min_text_chars: 100000", _n_records(): "n_records: 2",
                                           "max_attempts: 2": "max_attempts: 1", "max_new_tokens: 48": "max_new_tokens: 4"})
    assert run_cli(main, ["--no-mlflow", *_cli_args(tmp_path, params_file)]) == 2
    for path in ("data/synthetic/reviews.parquet", "models/generator", "models/tabular", "metrics/synthesize.json"):
        assert not (tmp_path / path).exists(), path
    assert not list(tmp_path.rglob("*.staging"))


def test_zero_shot_reference_trains_nothing_and_says_so(tmp_path):
    result = run_synthesize(TRAIN, VAL, quick_params(**{"generator.epochs": 0.0}), seed=3, analyzer=NoPII())
    m = result.metrics
    assert m["fine_tuned"] is False and m["dp_enabled"] is False
    assert m["epsilon"] == 0.0 and m["steps"] == 0 and m["train_examples_seen"] == 0
    assert m["val_loss"] == m["val_loss_base"]
    assert m["records_written"] > 0
    base, _ = load_base("tiny-llama", seed=3)
    for (name, a), (_, b) in zip(result.generator.model.state_dict().items(), base.state_dict().items()):
        assert torch.equal(a, b), name  # the base model, untouched
    result.generator.save(tmp_path / "gen")
    assert not (tmp_path / "gen" / "adapter").exists()
    loaded = ReviewGenerator.load_dir(tmp_path / "gen")
    assert loaded.fine_tuned is False and not hasattr(loaded.model, "peft_config")
    json.dumps(m, allow_nan=False)


def test_zero_shot_cli_writes_every_declared_output(tmp_path):
    """dvc.yaml declares metrics/plots/synthesize: the zero-shot run (no loss curve) must write it too."""
    import re

    text = (ROOT / "tests" / "params.quick.yaml").read_text()
    epochs = re.search(r"^    epochs: .*$", text, re.M).group(0)
    params_file = _quick_file(tmp_path, **{_n_records(): "n_records: 4", epochs: "    epochs: 0"})
    assert run_cli(main, ["--no-mlflow", *_cli_args(tmp_path, params_file)]) == 0
    assert (tmp_path / "metrics/plots/synthesize/train_loss.png").is_file()
    assert json.loads((tmp_path / "metrics/synthesize.json").read_text())["fine_tuned"] is False


def test_dp_selection_writes_the_voted_drafts_and_composes_its_budget():
    """Zero-shot drafts, twice as many as asked for, chosen by the training rows' noisy votes."""
    from stages.ledger import build_ledger, unclaimed_metrics

    params = quick_params(**{"generator.epochs": 0.0, "selection.enabled": True, "generation.n_records": 12,
                             "generation.oversample": 2.0, "canaries.enabled": False})
    result = run_synthesize(TRAIN, VAL, params, seed=3, analyzer=NoPII())
    m = result.metrics
    dropped = sum(m[f"dropped_{k}"] for k in ("parse", "exact_match", "ngram_overlap", "assistant_talk", "seller_talk",
                                               "prompt_echo", "judged_not_review", "inconsistent", "pii"))
    assert m["records_written"] == len(result.records) == 12
    assert m["generated_requested"] == 24 == m["records_written"] + m["records_surplus_discarded"] + dropped
    assert m["selection_enabled"] is True and m["selection_drafts"] == 24 - dropped and m["selection_noise_scale"] > 0
    assert list(result.records["review_id"]) == [f"syn-{i}" for i in range(12)]
    # zero-shot text: the release composes the tabular model with the vote, both zCDP
    assert m["epsilon_selection"] == params.selection.epsilon and m["rho_selection"] > 0
    assert m["epsilon_selection"] < m["epsilon_total"] <= m["epsilon_total_basic"] == pytest.approx(
        m["epsilon_tabular"] + m["epsilon_selection"])
    assert m["composition"].startswith("tabular and selection")
    assert unclaimed_metrics("metrics/synthesize.json", m) == []
    entry = build_ledger(m)["components"]["synthesize.selection"]
    assert entry["guarantee"] == "differential privacy" and entry["epsilon"] == params.selection.epsilon


def test_without_selection_the_first_survivors_are_written_and_the_ledger_says_it_read_nothing():
    from stages.ledger import build_ledger

    params = quick_params(**{"generator.epochs": 0.0, "selection.enabled": False, "generation.n_records": 12,
                             "canaries.enabled": False})
    m = run_synthesize(TRAIN, VAL, params, seed=3, analyzer=NoPII()).metrics
    assert m["selection_enabled"] is False and m["epsilon_selection"] is None and m["selection_drafts"] is None
    assert m["composition"] == "tabular only (zero-shot text)" and m["epsilon_total"] == m["epsilon_tabular"]
    assert build_ledger(m)["components"]["synthesize.selection"]["guarantee"] == "reads no private records"
