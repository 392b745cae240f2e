"""run_synthesize: anonymized records in, synthetic records and the models that made them out.

1. The structured columns are modelled: DP noisy marginals (OpenDP) unless dp is disabled, then SDV.
2. The training reviews are prepared: bounded to k per user (unit=user), capped at
   max_train_rows, checked against min_train_rows, and the canaries are planted.
3. LoRA adapters on the base LM are fine-tuned on them (prompt: the base's chat
   template, loss on the response), with DP-SGD unless disabled. epochs 0 skips this:
   the zero-shot reference, whose text model has seen no data (text epsilon 0).
4. n_records x oversample structured rows are sampled; the LM writes each one's title
   and body (LoRA merged, bf16, fixed seeded batches).
5. The privacy filters drop memorised and PII-bearing texts, the voice checks texts that
   are not a buyer's or echo the request (fixed patterns, and the voice judge when enabled),
   and the consistency filter (when enabled) texts that read the opposite of their rating;
   every drop is counted.
6. DP selection (when enabled): a DP rating judge fitted on the training rows scores each
   surviving draft (and, below prompt_trust 1, relabels the ones it reads as another
   rating), and the n_records best (at the sampled rating mix) are written. Without it
   the first n_records survivors are. Either way the surplus is counted and discarded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from stages.errors import PipelineInputError, SchemaError, SynthguardError
from stages.schema import COLUMNS, RECORD_SCHEMA
from stages.synthesize.budget import compose
from stages.synthesize.canaries import insert_canaries, make_canaries
from stages.synthesize.consistency import RatingJudge, inconsistent, rating_judge
from stages.synthesize.dp import (TrainResult, bound_contributions, example_weights, plan_steps, train_lora, unit_index,
                                  zero_shot_privacy)
from stages.synthesize.encoding import encode_records, held_out_loss
from stages.synthesize.filters import Analyzer, MemorisationFilter, pii_findings
from stages.synthesize.generator import ReviewGenerator, attach_lora, base_checksum, generator_config
from stages.synthesize.loading import load_base
from stages.synthesize.params import SynthesizeParams
from stages.synthesize.selection import select_records
from stages.synthesize.tabular import TabularModel, fit_tabular
from stages.synthesize.voice import VoiceJudge, voice_judge
from stages.textchecks import wrong_voice

SYNTHETIC_SPLIT = "synthetic"


class GenerationError(SynthguardError):
    """Generation produced no usable synthetic record."""


@dataclass
class SynthesizeResult:
    """The synthetic records, the fitted models, the canaries, and the metrics."""

    records: pd.DataFrame
    generator: ReviewGenerator
    tabular: TabularModel
    canaries: list[dict]
    metrics: dict
    loss_curve: list[float]


def _check_columns(frame: pd.DataFrame, name: str) -> None:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise SchemaError(f"the {name} split lacks column(s) {missing}; it must follow stages.schema.RECORD_SCHEMA.")


def prepare_training(train: pd.DataFrame, params: SynthesizeParams, *, seed: int) -> tuple[pd.DataFrame, list[dict], dict]:
    """Bound per user, cap, check the minimum, plant canaries; returns rows, canaries, counts."""
    gen, dp = params.generator, params.dp
    counts = {"train_rows_input": len(train)}
    rows = train.reset_index(drop=True)
    if dp.unit == "user":
        keep = bound_contributions(rows["user_id"].astype(str).to_numpy(), dp.max_reviews_per_user, seed)
        counts["rows_dropped_user_bound"] = len(rows) - len(keep)
        rows = rows.iloc[keep].reset_index(drop=True)
    else:
        counts["rows_dropped_user_bound"] = 0
    if gen.max_train_rows is not None and len(rows) > gen.max_train_rows:
        counts["rows_dropped_max_train_rows"] = len(rows) - gen.max_train_rows
        rows = rows.sample(n=gen.max_train_rows, random_state=seed).reset_index(drop=True)
    else:
        counts["rows_dropped_max_train_rows"] = 0
    if len(rows) < gen.min_train_rows:
        raise PipelineInputError(
            f"only {len(rows)} usable training reviews (of {len(train)} in the train split) but "
            f"synthesize.generator.min_train_rows is {gen.min_train_rows}; provide more data or lower min_train_rows."
        )
    counts["train_rows_real"] = len(rows)
    canaries = make_canaries(params.canaries, seed=seed)
    if canaries:
        planted = insert_canaries(rows.iloc[:0], canaries, seed=seed)
        if dp.unit == "user":
            planted = planted.groupby("user_id", sort=False).head(dp.max_reviews_per_user)
        for canary in canaries:
            canary["copies_in_training"] = int((planted["user_id"] == canary["user_id"]).sum())
        rows = pd.concat([rows, planted], ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    counts["canary_rows"] = sum(c["copies_in_training"] for c in canaries)
    counts["train_rows_used"] = len(rows)
    return rows, canaries, counts


def run_synthesize(train: pd.DataFrame, val: pd.DataFrame, params: SynthesizeParams, *, seed: int,
                   analyzer: Analyzer, judge: RatingJudge | None = None,
                   voice: VoiceJudge | None = None) -> SynthesizeResult:
    """Pure: fit SDV and the (DP) generator on `train`, generate, filter; nothing is written.

    `judge` reads the rating of generated texts for the consistency filter, `voice` whose
    voice they are in; each is built from its params section when enabled and none is given.
    """
    import torch

    _check_columns(train, "train")
    _check_columns(val, "val")
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    start = clock

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    rows, canaries, counts = prepare_training(train, params, seed=seed)
    units = unit_index(rows["user_id"].astype(str).to_numpy(), params.dp.unit)
    plan_steps(int(units.max()) + 1, params.generator, params.dp)  # an unreachable budget fails here, early
    tabular = fit_tabular(train, params.tabular, dp=params.dp, seed=seed)
    lap("tabular_fit")

    torch.manual_seed(seed)
    base, tokenizer = load_base(params.generator.base_model, seed=seed)
    checksum = base_checksum(base, params.generator.base_model)
    lap("load_base")

    gen = params.generator
    val_rows = val.sample(n=min(gen.eval_rows, len(val)), random_state=seed) if len(val) else val
    val_encoded = encode_records(tokenizer, val_rows, gen.max_seq_len)
    before = held_out_loss(base, val_encoded, gen.batch_size) if len(val_rows) else None
    lap("prepare")

    if gen.epochs > 0:
        model = attach_lora(base, gen)
        encoded = encode_records(tokenizer, rows, gen.max_seq_len)
        with tqdm(desc="synthesize: fine-tune", unit="step", disable=None) as bar:
            trained = train_lora(model, encoded, units, gen, params.dp, seed=seed, progress=bar,
                                 weights=example_weights(rows["rating"].to_numpy(), gen.rating_weights))
        lap("train")
        timings["train_trunk"] = round(trained.cache_seconds, 3)  # of "train": the one pass of the frozen trunk
        after = held_out_loss(model, val_encoded, gen.batch_size) if len(val_rows) else None
        lap("eval")
    else:  # the zero-shot reference: the base model as it is
        model, after = base, before
        trained = TrainResult(privacy=zero_shot_privacy(params.dp, int(units.max()) + 1))
        timings.update(train=0.0, train_trunk=0.0, eval=0.0)

    privacy = trained.privacy
    generator = ReviewGenerator(
        model, tokenizer,
        generator_config(gen, params.generation, base_sha256=checksum, seed=seed, base_seed=seed, privacy=privacy,
                         tokenizer=tokenizer),
    )
    n = params.generation.n_records
    requested = math.ceil(n * params.generation.oversample)
    controls = tabular.sample(requested, seed=seed)
    with tqdm(total=requested, desc="synthesize: generate", unit="record", disable=None) as bar:
        if params.generation.engine == "ray":  # the same fixed batches across generator actors
            from stages.synthesize.ray_generation import write_on_ray

            written = write_on_ray(generator, controls, params.generation, seed=seed, progress=bar)
        else:
            written = generator.write(controls, params.generation, seed=seed, progress=bar)
    gen_seconds = time.perf_counter() - clock
    lap("generate")

    # Memorisation is checked against the whole training split (and the canaries), not only the rows trained on.
    reference = pd.concat([train["text"], rows["text"]], ignore_index=True)
    judge, voice = public_judges(params, judge, voice)
    records, filter_counts = _filter_and_assemble(controls, written, tabular, reference, params, analyzer, judge,
                                                  voice)
    surplus = max(0, len(records) - n)
    lap("filter")
    selection = None
    if params.selection.enabled and len(records):  # the drafts the training rows vote for, at the controls' rating mix
        records, selection = select_records(records, rows, units, controls["rating"].iloc[:n], n=n,
                                            params=params.selection, dp_enabled=params.dp.enabled, seed=seed)
    else:
        records = records.iloc[:n]
    lap("select")
    if records.empty:
        raise GenerationError(
            f"generation produced no usable record: of {requested} requested, {written['failed']} failed to parse "
            f"after {params.generation.max_attempts} attempts and {sum(filter_counts['dropped'].values())} "
            "were dropped by the privacy filters. Train longer (generator.epochs), raise generation.max_attempts "
            "or generation.max_new_tokens, or check the base model."
        )
    timings["total"] = round(time.perf_counter() - start, 3)

    losses = trained.losses
    head = losses[: max(1, min(10, len(losses) // 10 or 1))]
    tail = losses[-max(1, min(10, len(losses) // 10 or 1)) :]
    metrics = {
        **{k: v for k, v in privacy.items() if k not in ("unit",)},
        # the text model's epsilon: the accountant's (DP), 0 (zero-shot: no data seen), None (non-private)
        "epsilon": privacy["epsilon"] if privacy["dp_enabled"] or not generator.fine_tuned else None,
        "fine_tuned": generator.fine_tuned,
        "privacy_unit": privacy["unit"],
        "max_reviews_per_user": params.dp.max_reviews_per_user if params.dp.unit == "user" else None,
        # the release: DP when dp.enabled (the tabular model always is then; the zero-shot text model saw no data)
        **compose(privacy, tabular.privacy_, dp_enabled=params.dp.enabled,
                  selection=selection if selection and selection["epsilon"] is not None else None),
        "selection_enabled": selection is not None,
        "selection_noise_scale": selection["noise_scale"] if selection else None,
        "selection_drafts": selection["drafts"] if selection else None,
        "selection_relabelled": selection["relabelled"] if selection else None,
        **{f"tabular_{k}": v for k, v in tabular.privacy_.items() if k not in ("epsilon", "delta", "rho")},
        **counts,
        "canaries": len(canaries),
        "train_examples_seen": trained.examples_seen,
        "train_dtype": trained.dtype,
        "train_examples_per_second": round(trained.examples_seen / max(trained.seconds - trained.cache_seconds, 1e-9), 3)
        if trained.examples_seen else None,
        "train_loss_start": float(np.mean(head)) if losses else None,
        "train_loss_end": float(np.mean(tail)) if losses else None,
        "val_rows": len(val_rows),
        "val_loss_base": before["loss"] if before else None,
        "val_loss": after["loss"] if after else None,
        "val_perplexity": after["perplexity"] if after else None,
        "records_target": n,
        "generated_requested": requested,
        "parse_failures": written["parse_failures"],
        "dropped_parse": written["failed"],
        **{f"dropped_{k}": v for k, v in filter_counts["dropped"].items()},
        "pii_entities_found": filter_counts["pii_entities"],
        "records_written": len(records),
        "records_surplus_discarded": surplus,
        "generated_tokens": written["tokens"],
        "generation_tokens_per_second": round(written["tokens"] / max(gen_seconds, 1e-9), 2),
        "seconds": timings,
    }
    return SynthesizeResult(records, generator, tabular, canaries, metrics, losses)


def record_text(written: dict, i: int) -> str:
    """Title line and body of generated record `i`, as every post-generation filter reads it."""
    return f"{written['titles'][i] or ''}\n{written['texts'][i]}"


def public_judges(params: SynthesizeParams, judge: RatingJudge | None,
                  voice: VoiceJudge | None) -> tuple[RatingJudge | None, VoiceJudge | None]:
    """The consistency and voice judges the params enable (given ones as they are), one encoder when they name one model."""
    same = params.voice.judge_model == params.consistency.judge_model
    if params.voice.enabled and voice is None:
        voice = voice_judge(params.voice, judge.embedder if judge is not None and same else None)
    if params.consistency.enabled and judge is None:
        judge = rating_judge(params.consistency, voice.embedder if voice is not None and same else None)
    return (judge if params.consistency.enabled else None), (voice if params.voice.enabled else None)


def _filter_and_assemble(controls, written, tabular, reference, params, analyzer, judge,
                         voice=None) -> tuple[pd.DataFrame, dict]:
    """Drop memorised, assistant- or seller-talk, prompt-echo, judged not a review (voice given), inconsistent
    (judge given) and PII-bearing texts; count each drop."""
    filters = params.filters
    memo = MemorisationFilter(reference, n=filters.ngram_n, max_overlap=filters.max_ngram_overlap)
    dropped = {"exact_match": 0, "ngram_overlap": 0, "assistant_talk": 0, "seller_talk": 0, "prompt_echo": 0,
               "judged_not_review": 0, "inconsistent": 0, "pii": 0}
    voices = tuple(name for name, on in (("assistant_talk", filters.drop_assistant_talk),
                                         ("seller_talk", filters.drop_seller_talk),
                                         ("prompt_echo", filters.drop_prompt_echo)) if on)
    entity_counts: dict[str, int] = {}
    candidates = []
    for i, text in enumerate(written["texts"]):
        if text is None:
            continue  # counted as dropped_parse
        if "title_chars" in tabular.null_columns_ or pd.isna(controls["title_chars"].iloc[i]):
            written["titles"][i] = None  # no title in the data (or in this sampled row): never invent one
        # memorisation reads bodies only (short titles, "Great product", repeat innocently); then a voice
        # that is not a buyer's: the model answering the prompt, or writing as the shop ("our products")
        reason = memo.reason(text) or wrong_voice(record_text(written, i), voices)
        if reason:
            dropped[reason] += 1
        else:
            candidates.append(i)
    # the public judges see generated texts only (post-processing); each text is encoded once per encoder
    texts = [record_text(written, i).strip() for i in candidates]
    encoded: dict[int, np.ndarray] = {}

    def embeddings(public, desc: str) -> np.ndarray:
        if id(public.embedder) not in encoded:
            encoded[id(public.embedder)] = public.embedder.encode(texts, desc=desc)
        return encoded[id(public.embedder)]

    alive = np.ones(len(candidates), dtype=bool)
    if voice is not None:
        off = voice.margins_of(embeddings(voice, "synthesize: voice")) < params.voice.min_margin
        dropped["judged_not_review"] = int(off.sum())
        alive &= ~off
    if judge is not None:
        c = params.consistency
        judged = judge.judge_embedded(embeddings(judge, "synthesize: consistency")[alive])
        ratings = controls["rating"].iloc[candidates].to_numpy()[alive]
        bad = inconsistent(ratings, judged, low_max=c.low_max, high_min=c.high_min)
        dropped["inconsistent"] = int(bad.sum())
        alive[np.flatnonzero(alive)[bad]] = False
    candidates = [i for i, a in zip(candidates, alive) if a]
    found = pii_findings(
        [record_text(written, i) for i in candidates], analyzer,
        entities=filters.pii_entities, threshold=filters.pii_score_threshold,
    )
    keep = []
    for i, entities in zip(candidates, found):
        if entities:
            dropped["pii"] += 1
            for entity in entities:
                entity_counts[entity] = entity_counts.get(entity, 0) + 1
        else:
            keep.append(i)
    kept = controls.iloc[keep].reset_index(drop=True)
    records = pd.DataFrame({
        "review_id": [f"syn-{j}" for j in range(len(keep))],
        "user_id": None,
        "parent_asin": None,
        "asin": None,
        "rating": kept["rating"].astype("int8"),
        "title": [written["titles"][i] for i in keep],
        "text": [written["texts"][i] for i in keep],
        "timestamp": pd.to_datetime(kept["timestamp"]).dt.tz_localize("UTC"),
        "helpful_vote": kept["helpful_vote"].astype("Int32"),
        "verified_purchase": kept["verified_purchase"].astype("boolean"),
        "n_images": kept["n_images"].fillna(0).astype("int32"),
        "product_title": None,  # no real product: SDV does not model titles, and the prompts had none
        "main_category": kept["main_category"].astype(object),
        "price": kept["price"].astype("Float64"),
        "split": SYNTHETIC_SPLIT,
    }, columns=list(COLUMNS))
    return records, {"dropped": dropped, "pii_entities": entity_counts}


def to_arrow(records: pd.DataFrame):
    """The synthetic records as an Arrow table with the record schema."""
    import pyarrow as pa

    frame = records.astype(object).where(records.notna(), None)
    return pa.Table.from_pandas(frame, schema=RECORD_SCHEMA, preserve_index=False)
