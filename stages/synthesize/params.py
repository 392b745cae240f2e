"""The `synthesize:` section of params.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stages.errors import ParamsError
from stages.params import bounded
from stages.ray_cluster import RayParams

TINY_LLAMA = "tiny-llama"  # base_model value for the test model built in code (quick profile)


def _check_edges(name: str, edges: tuple[float, ...]) -> None:
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ParamsError(f"{name}: give at least two strictly increasing bin edges, e.g. [0, 1, 5, 50]")


@dataclass(frozen=True)
class TabularDomainParams:
    """The DP model's bins, fixed from public knowledge, never from the data (see dp_tabular.py)."""

    categories: tuple[str, ...]  # the public list of main categories; any other value is binned as null
    first_year: int = bounded(min=1990, max=2100)  # timestamps are binned per year in [first_year, last_year]
    last_year: int = bounded(min=1990, max=2100)
    helpful_vote_edges: tuple[float, ...]  # bins [e0, e1), ..., [e_n-1, e_n]; values outside clip to the end bins
    n_images_edges: tuple[float, ...]
    price_edges: tuple[float, ...]
    title_chars_edges: tuple[float, ...]
    text_chars_edges: tuple[float, ...]

    def __post_init__(self):
        if not self.categories or len(set(self.categories)) != len(self.categories):
            raise ParamsError("categories: list the public main categories once each")
        if self.first_year > self.last_year:
            raise ParamsError(f"first_year: {self.first_year} is after last_year {self.last_year}")
        for name in ("helpful_vote_edges", "n_images_edges", "price_edges", "title_chars_edges", "text_chars_edges"):
            _check_edges(name, getattr(self, name))


@dataclass(frozen=True)
class TabularParams:
    """The model of the structured columns: DP marginals (dp.enabled) or a non-private SDV synthesizer."""

    synthesizer: Literal["gaussian_copula", "ctgan"]  # the non-private model (dp.enabled: false)
    ctgan_epochs: int = bounded(min=1, max=10_000)  # used only by ctgan
    epsilon: float = bounded(min=0.0)  # privacy-critical: the DP model's budget (no default)
    delta: float = bounded(min=0.0, max=1.0)  # privacy-critical
    # share of the DP model's budget spent on the rating counts (the rest split evenly over the 8
    # two-way tables); 1/9 is an even split. It moves noise between tables, never the epsilon.
    root_share: float = bounded(min=0.0, max=1.0)
    # share spent on the rating x text length table, whose conditional the prompt's length ask is
    # drawn from (1/9: even); root_share + length_share < 1. Also moves noise, never the epsilon.
    length_share: float = bounded(min=0.0, max=1.0)
    # the rows of the two tables the prompt reads (rating x length, rating x category) shrink towards
    # their pooled mix by a prior of this many noise standard deviations per cell (post-processing; 0: none)
    prompt_prior: float = bounded(min=0.0, max=100.0)
    domain: TabularDomainParams

    def __post_init__(self):
        if self.epsilon <= 0:
            raise ParamsError("epsilon: must be positive")
        if not 0 < self.root_share < 1:
            raise ParamsError(f"root_share: {self.root_share} must lie strictly between 0 and 1 "
                              "(1/9 = 0.111 splits the budget evenly over the 9 tables)")
        if not 0 < self.length_share < 1 or self.root_share + self.length_share >= 1:
            raise ParamsError(f"length_share: {self.length_share} must be positive and leave root_share "
                              f"({self.root_share}) + length_share below 1 (the other 7 tables need a share)")
        if not 0 < self.delta < 1:
            raise ParamsError("delta: must lie strictly between 0 and 1 (and well below 1/number of users)")


@dataclass(frozen=True)
class GeneratorParams:
    """The causal LM and its LoRA fine-tuning."""

    base_model: str  # path to a .gguf file, an HF id / local dir, or "tiny-llama" (built in code)
    lora_r: int = bounded(min=1, max=256)
    lora_alpha: float = bounded(min=0.0)
    lora_dropout: float = bounded(min=0.0, max=0.9)
    target_modules: tuple[str, ...]  # Linear layer names that get adapters, e.g. q_proj, v_proj
    lora_last_layers: int = bounded(min=0)  # adapters only on the top N decoder layers (0: all); backprop stops there
    learning_rate: float = bounded(min=0.0, max=1.0)
    epochs: float = bounded(min=0.0, max=100.0)  # passes over the privacy units (DP: expected); 0: zero-shot, no fine-tuning
    batch_size: int = bounded(min=1, max=4096)  # (expected, under Poisson sampling) units per step
    max_seq_len: int = bounded(min=16, max=4096)  # tokens per training example, prefix included
    max_train_rows: int | None = bounded(min=1)  # sample at most this many training reviews; null: all
    min_train_rows: int = bounded(min=1)  # fewer usable training reviews than this is an error
    eval_rows: int = bounded(min=1)  # real val reviews for held-out loss and perplexity
    # bfloat16: autocast of the adapted top and a bf16 trunk cache; auto: bfloat16 where the CPU has it in
    # hardware (AVX512-BF16, AMX), float32 elsewhere (emulated bf16 is far slower than float32)
    train_dtype: Literal["auto", "float32", "bfloat16"]
    # examples per forward/backward pass inside a step, taken in order of length so each pads to its own
    # longest; null runs the whole batch at once. Per-example gradients are the same either way.
    micro_batch_size: int | None = bounded(min=1)
    # weight of a 1- to 5-star review's gradient, each in (0, 1]; under DP a unit's clipping bound
    # shrinks by its reviews' mean weight, so the guarantee is unchanged. [1, 1, 1, 1, 1]: unweighted
    rating_weights: tuple[float, ...]

    def __post_init__(self):
        if len(self.rating_weights) != 5 or not all(0 < w <= 1 for w in self.rating_weights):
            raise ParamsError(f"rating_weights: {list(self.rating_weights)} must be five weights (1 to 5 stars), "
                              "each above 0 and at most 1 (a weight above 1 would raise the DP sensitivity)")
        if 0 < self.epochs < 0.01:
            raise ParamsError("epochs: 0 (the zero-shot reference) or at least 0.01")
        if not self.target_modules:
            raise ParamsError("target_modules: give at least one module name, e.g. [q_proj, v_proj]")


@dataclass(frozen=True)
class DPParams:
    """DP-SGD (Opacus) on the LoRA parameters."""

    enabled: bool  # false: the non-private baseline (plain SGD), and the metrics say so
    unit: Literal["record", "user"]  # the privacy unit the (epsilon, delta) guarantee is about
    max_reviews_per_user: int = bounded(min=1)  # unit=user: each user contributes at most this many reviews
    target_epsilon: float = bounded(min=0.0)
    delta: float = bounded(min=0.0, max=1.0)
    max_grad_norm: float = bounded(min=0.0)  # per-unit clipping bound
    accountant: Literal["rdp", "prv"]

    def __post_init__(self):
        for name in ("target_epsilon", "delta", "max_grad_norm"):
            if getattr(self, name) <= 0:
                raise ParamsError(f"{name}: must be positive")
        if self.delta >= 1:
            raise ParamsError("delta: must be below 1 (and well below 1/number of privacy units)")


@dataclass(frozen=True)
class GenerationParams:
    """Sampling of synthetic records (one pass: a "Title:" line, then the body)."""

    n_records: int = bounded(min=1)  # records to write after every filter (set it to train.max_train_rows or more)
    oversample: float = bounded(min=1.0, max=10.0)  # generate this many times n_records; the surplus is discarded, counted
    batch_size: int = bounded(min=1, max=1024)  # prompts per generate call; a batch is seeded from (seed, its index) only
    max_new_tokens: int = bounded(min=1, max=4096)  # title line and body
    temperature: float = bounded(min=0.01, max=10.0)
    top_k: int = bounded(min=0)  # 0: off
    top_p: float = bounded(min=0.01, max=1.0)
    repetition_penalty: float = bounded(min=1.0, max=3.0)  # 1: off
    guidance_scale: float = bounded(min=1.0, max=10.0)  # classifier-free guidance towards the rating; 1: off (transformers only)
    backend: Literal["transformers", "ctranslate2"]  # transformers generate (reference) or CTranslate2 (faster on CPU)
    dtype: Literal["float32", "bfloat16", "int8"]  # weights (LoRA merged in): transformers float32/bfloat16, ctranslate2 int8/float32
    max_attempts: int = bounded(min=1, max=20)  # a record that fails to parse is regenerated this often, then dropped
    min_text_chars: int = bounded(min=1)  # shorter generated bodies count as parse failures
    engine: str = bounded(choices=("local", "ray"))  # ray: batches of controls across generator actors
    ray: RayParams

    def __post_init__(self):
        allowed = {"transformers": ("float32", "bfloat16"), "ctranslate2": ("int8", "float32")}[self.backend]
        if self.dtype not in allowed:
            raise ParamsError(f"dtype: {self.dtype!r} does not run on backend {self.backend!r}; use one of {list(allowed)}")
        if self.guidance_scale != 1.0 and self.backend != "transformers":
            raise ParamsError(
                f"guidance_scale: {self.guidance_scale} needs backend 'transformers' (CTranslate2 has no "
                "classifier-free guidance); set backend: transformers, dtype: bfloat16, or guidance_scale: 1"
            )


@dataclass(frozen=True)
class FilterParams:
    """Post-generation filters (privacy, and the assistant- and seller-talk checks); every drop is counted."""

    ngram_n: int = bounded(min=2, max=64)  # word n-gram length for overlap with training texts
    max_ngram_overlap: float = bounded(min=0.0, max=1.0)  # drop above this share of n-grams seen in training
    pii_entities: tuple[str, ...]  # Presidio entities whose presence drops a text
    pii_score_threshold: float = bounded(min=0.0, max=1.0)
    drop_assistant_talk: bool  # drop texts that answer the prompt instead of being a review (stages/textchecks.py)
    drop_seller_talk: bool  # drop texts written as the shop or its support desk, not as a buyer (stages/textchecks.py)
    drop_prompt_echo: bool  # drop texts that carry the request's wording ("a 5-star product"; stages/textchecks.py)

    def __post_init__(self):
        if not self.pii_entities:
            raise ParamsError("pii_entities: list the entities to detect, e.g. [PERSON, PHONE_NUMBER]")


@dataclass(frozen=True)
class ConsistencyParams:
    """The rating-consistency filter (stages/synthesize/consistency.py): a utility lever, free under DP."""

    enabled: bool
    judge_model: str  # package:<name> or a sentence-transformers folder; never trained on private data
    temperature: float = bounded(min=0.1, max=1000.0)  # softmax sharpness over the anchor similarities
    low_max: float = bounded(min=1.0, max=5.0)  # a 1-2 star text judged above this is dropped
    high_min: float = bounded(min=1.0, max=5.0)  # a 4-5 star text judged below this is dropped
    batch_size: int = bounded(min=1, max=4096)


@dataclass(frozen=True)
class VoiceParams:
    """The voice judge (stages/synthesize/voice.py): drops drafts that read as the shop or another kind of text."""

    enabled: bool
    judge_model: str  # package:<name> or a sentence-transformers folder; never trained on private data
    min_margin: float = bounded(min=-2.0, max=2.0)  # buyer similarity minus the best other's; below it: dropped
    batch_size: int = bounded(min=1, max=4096)


@dataclass(frozen=True)
class SelectionParams:
    """DP selection of drafts (stages/synthesize/selection.py): a DP rating judge or DP nearest-draft votes."""

    enabled: bool  # false: the first n_records surviving drafts are written, as generated
    method: Literal["judge", "votes"]  # judge: a DP linear discriminant scores each draft's rating; votes: Private Evolution
    dims: int = bounded(min=1, max=384)  # judge: principal axes of the drafts' embeddings it works in
    priors: Literal["equal", "counts"]  # judge: equal priors, or the rating mix of its own noisy counts
    # judge: the weight of the asked rating against the judge's reading (selection.py: relabel); 1 never relabels
    prompt_trust: float = bounded(min=0.2, max=1.0)
    epsilon: float = bounded(min=0.0)  # privacy-critical: the selection's budget (no default), composed into epsilon_total
    delta: float = bounded(min=0.0, max=1.0)  # privacy-critical
    embedding_model: str  # package:<name> or a sentence-transformers folder: a public encoder, never trained here
    batch_size: int = bounded(min=1, max=4096)

    def __post_init__(self):
        if self.epsilon <= 0:
            raise ParamsError("epsilon: must be positive")
        if not 0 < self.delta < 1:
            raise ParamsError("delta: must lie strictly between 0 and 1 (and well below 1/number of users)")


@dataclass(frozen=True)
class CanaryParams:
    """Audit canaries: unique fake secret records inserted into the training split."""

    enabled: bool
    count: int = bounded(min=0, max=10_000)  # canaries per entry of `repeats`
    repeats: tuple[int, ...]  # each canary is inserted this many times, e.g. [1, 10]

    def __post_init__(self):
        if any(r < 1 for r in self.repeats):
            raise ParamsError("repeats: every entry must be at least 1")
        if self.enabled and (self.count == 0 or not self.repeats):
            raise ParamsError("count: enabled canaries need count >= 1 and a non-empty repeats list")


@dataclass(frozen=True)
class SynthesizeParams:
    """Synthetic records: SDV for the structured columns, a DP-fine-tuned LM for title and text."""

    tabular: TabularParams
    generator: GeneratorParams
    dp: DPParams
    generation: GenerationParams
    filters: FilterParams
    consistency: ConsistencyParams
    voice: VoiceParams
    selection: SelectionParams
    canaries: CanaryParams
