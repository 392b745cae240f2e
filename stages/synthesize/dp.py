"""LoRA fine-tuning with Opacus DP-SGD, at record or user level, and the non-private baseline.

One loop serves both privacy units. Every training example belongs to a unit (itself
for `record`, its user for `user`). A step Poisson-samples units (each independently
with probability q = batch_size / n_units), runs every example of the sampled units,
and lets Opacus compute per-example gradients of the LoRA weights. Those are summed
into one gradient per unit before Opacus clips, averages and noises them, so the
clipping bound, the sampling and hence the accountant's (epsilon, delta) are all per
unit. With `user` each user keeps at most k reviews (see `bound_contributions`).

The frozen trunk below the adapters runs once (`trunk.cache_trunk`); each step runs
only the adapted top layers and the head, optionally under bf16 autocast. Inside a step
the sampled examples go through in micro-batches taken in order of length, each padded
to its own longest example rather than to the batch's: the per-example gradients are
the same (right padding under a causal mask), the padded tokens and the peak memory
are not (`micro_batches`).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from stages.errors import PrivacyBudgetError
from stages.synthesize.params import DPParams, GeneratorParams
from stages.synthesize.encoding import Encoded, per_example_loss
from stages.synthesize.trunk import batch_from_cache, cache_trunk, split_index, supports_trunk, top_model


def first_per_unit(units, k: int, order: np.ndarray) -> np.ndarray:
    """The rows of `order`, in that order, less each unit's rows after its first k."""
    seen: dict = {}
    keep = []
    for i in order:
        unit = units[i]
        if seen.get(unit, 0) < k:
            seen[unit] = seen.get(unit, 0) + 1
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def bound_contributions(user_ids, k: int, seed: int) -> np.ndarray:
    """Indices of the rows kept when each user contributes at most k (a random k of theirs)."""
    order = np.random.default_rng(seed).permutation(len(user_ids))
    return np.sort(first_per_unit(user_ids, k, order))


def example_weights(ratings, rating_weights: tuple[float, ...]) -> np.ndarray | None:
    """Each training review's weight, `rating_weights[r - 1]` for an r-star one; None when all weigh 1.

    The weights are public (params), so reweighting costs no privacy: under DP each unit's
    clipping bound shrinks with its reviews' mean weight (`_per_unit_grad_samples`), never grows.
    """
    table = np.asarray(rating_weights, dtype=np.float64)
    if np.all(table == 1.0):
        return None
    stars = np.asarray(ratings, dtype=np.int64)
    if stars.min(initial=1) < 1 or stars.max(initial=1) > len(table):
        raise ValueError(f"ratings must lie in 1..{len(table)} to be weighted; got {stars.min()}..{stars.max()}")
    return table[stars - 1]


def unit_index(user_ids, unit: str) -> np.ndarray:
    """Dense unit id per example: the row itself for `record`, the user for `user`."""
    if unit == "record":
        return np.arange(len(user_ids), dtype=np.int64)
    _, inverse = np.unique(np.asarray(user_ids, dtype=object).astype(str), return_inverse=True)
    return inverse.astype(np.int64)


def noise_for_target(dp: DPParams, *, sample_rate: float, steps: int) -> float:
    """The smallest noise multiplier whose accountant epsilon is at most the target."""
    from opacus.accountants.utils import get_noise_multiplier

    try:
        return float(
            get_noise_multiplier(
                target_epsilon=dp.target_epsilon,
                target_delta=dp.delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant=dp.accountant,
            )
        )
    except ValueError as exc:
        raise PrivacyBudgetError(
            f"synthesize.dp.target_epsilon={dp.target_epsilon:g} cannot be reached with delta={dp.delta:g}, "
            f"sample rate {sample_rate:.4g} and {steps} steps ({exc}). Raise target_epsilon, or lower "
            "generator.epochs or generator.batch_size, or use more training rows."
        ) from exc


@dataclass(frozen=True)
class StepPlan:
    """How many units, the sampling rate, the steps, and the noise that together meet the target."""

    n_units: int
    sample_rate: float
    steps_per_epoch: int
    steps: int
    noise_multiplier: float


def plan_steps(n_units: int, gen: GeneratorParams, dp: DPParams) -> StepPlan:
    """Sampling rate, steps and (DP) noise multiplier; raises PrivacyBudgetError before any work is done."""
    if gen.epochs == 0:  # the zero-shot reference: no step, no noise, nothing spent
        return StepPlan(n_units, 0.0, 0, 0, 0.0)
    q = min(1.0, gen.batch_size / n_units)
    steps_per_epoch = max(1, int(1 / q))  # as Opacus' Poisson sampler counts an epoch
    steps = max(1, int(math.ceil(gen.epochs * steps_per_epoch)))
    sigma = 0.0
    if dp.enabled:
        if dp.delta >= 1.0 / n_units:
            raise PrivacyBudgetError(
                f"synthesize.dp.delta={dp.delta:g} is not below 1/{n_units} (one over the number of privacy "
                f"units, unit={dp.unit}); such a delta allows leaking a whole unit. Lower delta."
            )
        sigma = noise_for_target(dp, sample_rate=q, steps=steps)
    return StepPlan(n_units, q, steps_per_epoch, steps, sigma)


@dataclass
class TrainResult:
    """What fine-tuning reports: loss curve, step count and the accountant's figures."""

    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    examples_seen: int = 0
    cache_seconds: float = 0.0  # of `seconds`: the one pass of the frozen trunk
    privacy: dict = field(default_factory=dict)
    dtype: str | None = None  # the precision the steps ran in (train_dtype resolved); None: no training


def native_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic in hardware (AVX512-BF16 or AMX tiles).

    Elsewhere PyTorch emulates bf16, and a bf16 matmul is far slower than a float32 one
    (75x on an AVX2-only AMD EPYC: 785 ms against 10.4 ms for 512x576 @ 576x1536, one thread).
    """
    import torch

    def probe(name: str) -> bool:
        check = getattr(torch.cpu, name, None)
        return bool(check()) if check else False

    return probe("_is_avx512_bf16_supported") or probe("_is_amx_tile_supported")


def resolve_train_dtype(requested: str) -> str:
    """`generator.train_dtype` as the steps will run it: auto is bfloat16 where the CPU has it natively, else float32."""
    if requested == "auto":
        return "bfloat16" if native_bf16() else "float32"
    if requested == "bfloat16" and not native_bf16():
        warnings.warn("synthesize.generator.train_dtype is bfloat16, but this CPU has no native bf16 (AVX512-BF16 "
                      "or AMX): PyTorch emulates it, far slower than float32. Set train_dtype: auto or float32.",
                      stacklevel=2)
    return requested


def _lora_params(model):
    return [p for n, p in model.named_parameters() if p.requires_grad]


def micro_batches(rows: list[int], lengths, size: int | None) -> list[list[int]]:
    """The rows of one step in chunks of `size`, in order of length; one chunk (in the given order) when they fit."""
    if size is None or len(rows) <= size:
        return [list(rows)] if rows else []  # one chunk pads to its longest whatever the order
    order = sorted(rows, key=lambda r: (lengths[r], r))
    return [order[i : i + size] for i in range(0, len(order), size)]


def step_backward(net, batch_loss, chunks: list[list[int]], params, *, private: bool, bf16: bool,
                  weights: np.ndarray | None = None) -> tuple[list[int], float]:
    """Forward and backward over each chunk; return the rows in the order their gradients sit, and the summed loss.

    Private: each chunk's loss is its own mean, which Opacus' `loss_reduction="mean"` scales
    back by the chunk's size, so `grad_sample` holds exact per-example gradients; they are
    gathered across chunks (Opacus would add a second chunk's onto the first's rows).
    Non-private: the chunks' losses are weighted so that the gradient is the whole batch's mean,
    with each example's `weights` entry where given (private runs weight per unit, after the backward).
    """
    import torch

    def weight(chunk):  # non-private: each example's share of the step's weighted mean
        return torch.ones(len(chunk)) if weights is None else torch.as_tensor(weights[chunk], dtype=torch.float32)

    n = sum(float(weight(c).sum()) for c in chunks)
    parts: list[list] = [[] for _ in params]
    total = 0.0
    for chunk in chunks:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = batch_loss(net, chunk)
        loss = loss.float()
        (loss.mean() if private else (loss * weight(chunk)).sum() / n).backward()
        total += float(loss.detach().sum())
        if private:
            for part, p in zip(parts, params):
                part.append(p.grad_sample)
                p.grad_sample = None
    if private and chunks:
        for part, p in zip(parts, params):
            p.grad_sample = torch.cat(part) if len(part) > 1 else part[0]
    return [r for c in chunks for r in c], total


def train_lora(model, encoded: Encoded, units: np.ndarray, gen: GeneratorParams, dp: DPParams, *,
               seed: int, weights: np.ndarray | None = None, progress=None) -> TrainResult:
    """Fine-tune the trainable (LoRA) parameters in place; DP-SGD when dp.enabled.

    `weights` (per example, at most 1; `example_weights`) scale each review's gradient. Under
    DP a unit's bound becomes max_grad_norm times its sampled reviews' mean weight, so the
    sensitivity, the noise and the accounting are those of the unweighted run.
    """
    if weights is not None and (len(weights) != len(units) or np.any(weights <= 0) or np.any(weights > 1)):
        raise ValueError("weights: one per example, each in (0, 1] (a weight above 1 would raise the sensitivity)")
    import torch

    n_units = int(units.max()) + 1 if len(units) else 0
    members = [[] for _ in range(n_units)]
    for row, unit in enumerate(units):
        members[unit].append(row)
    plan = plan_steps(n_units, gen, dp)
    q, steps_per_epoch, steps, sigma = plan.sample_rate, plan.steps_per_epoch, plan.steps, plan.noise_multiplier
    params = _lora_params(model)
    optimizer = torch.optim.AdamW(params, lr=gen.learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    result = TrainResult()
    result.dtype = resolve_train_dtype(gen.train_dtype)
    bf16 = result.dtype == "bfloat16"
    start = time.perf_counter()

    if supports_trunk(model):
        split = split_index(model, gen.lora_last_layers)
        cache = cache_trunk(model, encoded, split, batch_size=32, dtype=torch.bfloat16 if bf16 else torch.float32,
                            autocast=bf16)
        trainee = top_model(model, split)
        result.cache_seconds = time.perf_counter() - start

        lengths = [len(t) for t in cache.targets]

        def batch_loss(net, rows):
            return net(*batch_from_cache(cache, rows, torch.float32))
    else:
        trainee = model
        lengths = encoded.attention_mask.sum(dim=1).tolist()

        def batch_loss(net, rows):
            idx = torch.tensor(rows)
            return per_example_loss(net, encoded.input_ids[idx], encoded.attention_mask[idx], encoded.labels[idx])

    if dp.enabled:
        from opacus import GradSampleModule
        from opacus.accountants import create_accountant
        from opacus.optimizers import DPOptimizer
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler

        net = GradSampleModule(trainee, loss_reduction="mean")
        optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=sigma,
            max_grad_norm=dp.max_grad_norm,
            expected_batch_size=gen.batch_size if q < 1 else n_units,
            loss_reduction="mean",
            generator=generator,
        )
        accountant = create_accountant(dp.accountant)
        optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=q))
        sampler = UniformWithReplacementSampler(num_samples=n_units, sample_rate=q, generator=generator)
        assert len(sampler) == steps_per_epoch, "the sampler's epoch must match the accounted steps"
        batches = (b for _ in range(math.ceil(steps / steps_per_epoch)) for b in sampler)
    else:
        net, accountant = trainee, None
        rng = np.random.default_rng(seed)
        batches = (
            perm[i : i + gen.batch_size].tolist()
            for _ in range(math.ceil(steps / steps_per_epoch) + 1)
            for perm in [rng.permutation(n_units)]
            for i in range(0, n_units, gen.batch_size)
        )

    net.train()
    for step, sampled in zip(range(steps), batches):
        rows = [r for u in sampled for r in members[u]]
        optimizer.zero_grad(set_to_none=True)
        if rows:
            chunks = micro_batches(rows, lengths, gen.micro_batch_size)
            rows, total = step_backward(net, batch_loss, chunks, params, private=dp.enabled, bf16=bf16, weights=weights)
            result.losses.append(total / len(rows))
            result.examples_seen += len(rows)
        if dp.enabled:
            _per_unit_grad_samples(params, rows, units, sampled, weights=weights, max_norm=dp.max_grad_norm)
        elif not rows:
            continue
        optimizer.step()
        result.steps += 1
        if progress is not None:
            progress.update(1)
    result.seconds = time.perf_counter() - start

    if dp.enabled:
        epsilon = float(accountant.get_epsilon(delta=dp.delta))
        if epsilon > dp.target_epsilon + 1e-9:
            raise PrivacyBudgetError(
                f"the accountant reports epsilon={epsilon:.4f} above the target {dp.target_epsilon:g}; "
                "this should not happen: report it, and lower the epochs meanwhile."
            )
        net.remove_hooks()  # generation must not pay for (or accumulate) per-sample gradients
        result.privacy = {
            "dp_enabled": True, "epsilon": epsilon, "target_epsilon": dp.target_epsilon, "delta": dp.delta,
            "noise_multiplier": sigma, "sample_rate": q, "steps": result.steps, "max_grad_norm": dp.max_grad_norm,
            "accountant": dp.accountant, "unit": dp.unit, "n_units": n_units,
        }
    else:
        result.privacy = {
            "dp_enabled": False, "epsilon": math.inf, "target_epsilon": None, "delta": None,
            "noise_multiplier": 0.0, "sample_rate": q, "steps": result.steps, "max_grad_norm": None,
            "accountant": None, "unit": dp.unit, "n_units": n_units,
        }
    return result


def zero_shot_privacy(dp: DPParams, n_units: int) -> dict:
    """The privacy figures of the zero-shot reference: no training, so nothing of the data is in the text model."""
    return {
        "dp_enabled": False, "epsilon": 0.0, "target_epsilon": None, "delta": None, "noise_multiplier": 0.0,
        "sample_rate": 0.0, "steps": 0, "max_grad_norm": None, "accountant": None, "unit": dp.unit,
        "n_units": n_units,
    }


def _per_unit_grad_samples(params, rows, units, sampled, *, weights: np.ndarray | None = None,
                           max_norm: float = 1.0) -> None:
    """Sum Opacus' per-example gradients into one per sampled unit, so that clipping is per unit.

    With `weights`, each example's gradient is scaled by its weight before the sum, and each
    unit's sum is clipped here to max_norm times its examples' mean weight (at most max_norm:
    Opacus' own clipping to max_norm then leaves it as it is, and the noise still covers it).
    """
    import torch

    if not rows:
        # An empty Poisson batch still takes a (pure-noise) step, as the accounting assumes.
        for p in params:
            p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype)
        return
    slot = {u: i for i, u in enumerate(sampled)}
    index = torch.tensor([slot[int(units[r])] for r in rows])
    for p in params:
        gs = p.grad_sample
        per_unit = torch.zeros((len(sampled), *p.shape), dtype=p.dtype)  # bf16 autocast: sum and clip in fp32
        scaled = gs.to(p.dtype)
        if weights is not None:
            w = torch.as_tensor(weights[rows], dtype=p.dtype)
            scaled = scaled * w.view(-1, *([1] * (scaled.dim() - 1)))
        per_unit.index_add_(0, index, scaled)
        p.grad_sample = per_unit
    if weights is not None:
        w = torch.as_tensor(weights[rows], dtype=torch.float64)
        bound = torch.zeros(len(sampled), dtype=torch.float64).index_add_(0, index, w)
        bound /= torch.zeros(len(sampled), dtype=torch.float64).index_add_(0, index, torch.ones_like(w)).clamp(min=1)
        norms = torch.stack([p.grad_sample.reshape(len(sampled), -1).double().norm(dim=1) for p in params]).norm(dim=0)
        factor = (max_norm * bound / (norms + 1e-6)).clamp(max=1.0)
        for p in params:
            p.grad_sample = p.grad_sample * factor.to(p.dtype).view(-1, *([1] * (p.grad_sample.dim() - 1)))
