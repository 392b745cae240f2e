"""The `evaluate:` section of params.yaml."""

from __future__ import annotations

from dataclasses import dataclass

from stages.errors import ParamsError
from stages.params import bounded


@dataclass(frozen=True)
class SampleParams:
    """Caps on the rows the expensive metrics see (seeded samples), so that a run fits its time budget."""

    text_records: int = bounded(min=10)  # synthetic and real texts embedded for fidelity and DCR
    structured_records: int = bounded(min=10)  # rows for SDMetrics and structured DCR
    mia_records: int = bounded(min=4)  # members and as many non-members scored by the generator's loss
    anonymeter_attacks: int = bounded(min=10)  # attacks per Anonymeter evaluator
    anonymeter_records: int = bounded(min=20)  # original/control rows Anonymeter sees
    quality_records: int = bounded(min=10)  # texts in the quality checks (synthetic, and as many real)
    pii_records: int = bounded(min=1)  # synthetic texts the analyzer scans for residual PII


@dataclass(frozen=True)
class FidelityParams:
    """Settings of the fidelity metrics."""

    embedding_model: str  # "package:<name>" (model/ folder of an installed package) or a local path
    embedding_batch_size: int = bounded(min=1, max=4096)
    embedding_max_tokens: int = bounded(min=8, max=512)  # longer texts are truncated (speed; MiniLM saw 256)
    mauve_clusters: int | None = bounded(min=2)  # k-means buckets; null: one per 10 texts, as in the paper
    mauve_scaling: float = bounded(min=0.01, max=100.0)  # the paper's c in exp(-c KL)
    real_correlation_threshold: float = bounded(min=0.0, max=1.0)  # SDMetrics pair trends: 0 keeps every pair
    real_association_threshold: float = bounded(min=0.0, max=1.0)


@dataclass(frozen=True)
class PrivacyParams:
    """Settings of the attacks and checks."""

    exposure_references: int = bounded(min=1, max=1_000_000)  # random never-trained secrets per canary
    partial_leak_fraction: float = bounded(min=0.1, max=1.0)  # a shared run this long (share of the value) leaks
    pii_entities: tuple[str, ...]  # privacy-critical: what the residual-PII scan looks for
    pii_score_threshold: float = bounded(min=0.0, max=1.0)
    mia_batch_size: int = bounded(min=1, max=1024)
    dcr_rows_per_user: int | None = bounded(min=1)  # per reference and draw; null: every row (no cap)
    dcr_draws: int = bounded(min=1, max=1000)  # reference draws the DCR share averages over

    def __post_init__(self):
        if not self.pii_entities:
            raise ParamsError("pii_entities: empty; name the entities to scan for, e.g. [PERSON, PHONE_NUMBER]")


@dataclass(frozen=True)
class UtilityParams:
    """Feature-importance consistency of the real- and synthetic-trained TF-IDF baselines."""

    top_k_features: int = bounded(min=1, max=100_000)


@dataclass(frozen=True)
class GateParams:
    """The gate: every privacy check and the utility check must hold for `champion` to move to this run's models."""

    max_epsilon: float = bounded(min=0.0)  # the released dataset's composed epsilon; a non-private run fails
    max_canary_leaks: int = bounded(min=0)  # verbatim canary field leaks in the synthetic data
    max_mia_auc: float = bounded(min=0.0, max=1.0)
    dcr_share_min: float = bounded(min=0.0, max=1.0)  # the embedding DCR share's interval must lie in [min, max]
    dcr_share_max: float = bounded(min=0.0, max=1.0)
    dcr_confidence: float = bounded(min=0.5, max=0.999)  # of that bootstrap interval
    max_residual_pii: int = bounded(min=0)  # synthetic records with PII found by the analyzer
    min_utility_ratio: float = bounded(min=0.0)  # synthetic / real macro-F1 of the LoRA classifier

    def __post_init__(self):
        if self.dcr_share_min > self.dcr_share_max:
            raise ParamsError(f"dcr_share_min: {self.dcr_share_min} is above dcr_share_max {self.dcr_share_max}")


@dataclass(frozen=True)
class EvaluateParams:
    """What evaluate measures, on how many rows, and what the privacy gate demands."""

    samples: SampleParams
    fidelity: FidelityParams
    privacy: PrivacyParams
    utility: UtilityParams
    gate: GateParams
    fail_on_gate: bool  # exit non-zero when the gate fails (the metrics and report are written first)
