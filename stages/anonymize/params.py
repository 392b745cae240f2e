"""The `anonymize:` section of params.yaml."""

from __future__ import annotations

from dataclasses import dataclass, fields

from stages.errors import ParamsError
from stages.params import bounded
from stages.ray_cluster import RayParams

# Every entity some recognizer of this stage can detect (see stages.anonymize.recognizers).
# Naming one in `entities` that is not here is an error, never a warning.
DETECTABLE = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "ORDER_NUMBER",
    "URL",
    "IP_ADDRESS",
    "STREET_ADDRESS",
)
OPERATOR_NAMES = ("replace", "redact", "mask", "hash", "tag")
TEXT_COLUMNS = ("title", "text", "product_title")
# Nullable schema columns that are quasi-identifiers and may be blanked.
NULLABLE_QUASI_IDENTIFIERS = ("helpful_vote", "verified_purchase", "price", "asin", "parent_asin")


@dataclass(frozen=True)
class OperatorParams:
    """The operator per entity type: replace (Faker surrogate), redact, mask, hash or tag (`<PERSON>`)."""

    person: str = bounded(choices=OPERATOR_NAMES)
    email_address: str = bounded(choices=OPERATOR_NAMES)
    phone_number: str = bounded(choices=OPERATOR_NAMES)
    credit_card: str = bounded(choices=OPERATOR_NAMES)
    order_number: str = bounded(choices=OPERATOR_NAMES)
    url: str = bounded(choices=OPERATOR_NAMES)
    ip_address: str = bounded(choices=OPERATOR_NAMES)
    street_address: str = bounded(choices=OPERATOR_NAMES)

    def for_entity(self, entity: str) -> str:
        """The operator name configured for a Presidio entity name."""
        return getattr(self, entity.lower())


@dataclass(frozen=True)
class StructuredParams:
    """How the structured columns are generalised."""

    user_id: str = bounded(choices=("hmac", "drop"))  # keyed HMAC-SHA256 pseudonym, or null
    timestamp_granularity: str = bounded(choices=("day", "week", "month"))
    helpful_vote_cap: int | None = bounded(min=0)  # top-code rare, identifying high counts; null keeps them
    null_columns: tuple[str, ...] = bounded(choices=NULLABLE_QUASI_IDENTIFIERS)  # set to null


@dataclass(frozen=True)
class BenchmarkParams:
    """The labelled PII benchmark built at run time from real sentences of the input."""

    split: str = bounded(choices=("train", "val", "test"))  # whose sentences carry the injected PII
    cases: int = bounded(min=0, max=100_000)  # positive cases, cycling through the entity types; 0 skips the benchmark
    person_cases: int = bounded(min=0, max=100_000)  # more person names, cycling through the name shapes
    negative_cases: int = bounded(min=0, max=100_000)  # product names / model numbers that must stay


@dataclass(frozen=True)
class AnonymizeRayParams(RayParams):
    """The ray engine: the cluster, and how many rows each actor call handles."""

    batch_size: int = bounded(min=1, max=1_000_000)  # rows per map_batches batch


@dataclass(frozen=True)
class AnonymizeParams:
    """What is detected, how it is replaced, and how fast."""

    entities: tuple[str, ...] = bounded(choices=DETECTABLE)  # privacy-critical: no default
    score_threshold: float = bounded(min=0.0, max=1.0)  # findings scoring below are ignored
    text_columns: tuple[str, ...] = bounded(choices=TEXT_COLUMNS)  # free-text columns analysed
    operators: OperatorParams
    mask_char: str  # the character the `mask` operator writes
    sweep_detected_values: bool  # also replace undetected repeats of a detected value, everywhere
    min_english_share: float = bounded(min=0.0, max=1.0)  # below this share of English stop words: non-English
    batch_size: int = bounded(min=1, max=100_000)  # texts per nlp.pipe batch
    n_process: int = bounded(min=1, max=64)  # spaCy worker processes
    ner_chunk_chars: int = bounded(min=200, max=1_000_000)  # longer texts go through NER in chunks
    structured: StructuredParams
    benchmark: BenchmarkParams
    engine: str = bounded(choices=("local", "ray"))  # ray: the same analysis in Ray Data actors (see ray_engine)
    ray: AnonymizeRayParams

    def __post_init__(self):
        if not self.entities:
            raise ParamsError("entities: empty; name at least one entity to detect, e.g. [PERSON, EMAIL_ADDRESS]")
        if len(set(self.entities)) != len(self.entities):
            raise ParamsError(f"entities: {list(self.entities)} names an entity twice")
        if not self.text_columns or "text" not in self.text_columns:
            raise ParamsError("text_columns: must include 'text', the review body")
        if len(self.mask_char) != 1:
            raise ParamsError(f"mask_char: {self.mask_char!r} must be exactly one character")
        missing = [f.name for f in fields(OperatorParams) if f.name.upper() not in DETECTABLE]
        assert not missing, f"OperatorParams fields without an entity: {missing}"
