"""Benchmark the synthesize stage's two hot loops against the previous path, side by side in one run.

1. DP-SGD training throughput (examples/s) at the same batch: the previous step (Opacus
   per-sample gradients over the whole PEFT model, every layer run each step, fp32) vs
   the stage's step (frozen trunk cached once, only the adapted top layers and the head
   run; fp32 and bf16 autocast). The one-off cache pass is reported separately, in batch
   order (the earlier pass), by length and by length under bf16 autocast (`--trunk-only N`
   measures only it, over N reviews). `--micro-batches 0 64 32 16` instead times the stage's
   step (cached trunk, bf16 autocast, the stage's LoRA shape) on the same batches with the
   whole batch padded to its longest example (0) and in micro-batches by length, with the
   padded tokens and the peak resident memory of each.
2. Generation throughput (tokens/s) on the same chat prompts: the previous path (HF
   `generate` on the unmerged PEFT model, fp32, batch 32) vs the stage's backends with the
   LoRA merged: transformers bf16 and CTranslate2 int8 and float32, each at the given
   batch sizes, with top-k/top-p and repetition penalty. The one-off merge/convert is
   timed apart.

    .venv/bin/python benchmarks/bench_synthesize.py                   # SmolLM2-135M (GGUF)
    .venv/bin/python benchmarks/bench_synthesize.py --base tiny-llama # the test model
    .venv/bin/python benchmarks/bench_synthesize.py --skip-training --generator models/generator \
        --anonymized data/anonymized/train.parquet --gen-backends ctranslate2 --gen-batches 64 128
        # the stage's trained generator (its short drafts leave a batch part-empty): batch sizes compared

Reviews are read from the shared sample (never copied into the repository), or with
`--anonymized data/anonymized/train.parquet` from the anonymize stage's output, bounded per
user as the stage trains on them (the prompts then carry no title request where a review has
no title, exactly as in the stage).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's stages/, whatever the editable install points at
SAMPLE = ROOT.parent / "shared" / "data" / "amazon_reviews_2023" / "Electronics.10k.jsonl.gz"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default=str(ROOT / "models/base/SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--reviews", type=Path, default=Path(os.environ.get("SYNTHGUARD_SAMPLE_DIR", SAMPLE.parent)) / SAMPLE.name)
    p.add_argument("--batch", type=int, default=64, help="examples per training step")
    p.add_argument("--steps", type=int, default=3, help="timed steps per mode (after one warm-up step)")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--lora-last-layers", type=int, default=6)
    p.add_argument("--gen-prompts", type=int, default=128)
    p.add_argument("--gen-batches", type=int, nargs="+", default=[64], help="generation batch sizes of the merged paths")
    p.add_argument("--skip-training", action="store_true", help="the generation comparison only")
    p.add_argument("--trunk-only", type=int, metavar="N", default=0,
                   help="only the one-off trunk cache pass, over N reviews, in its three modes")
    p.add_argument("--gen-tokens", type=int, default=80)
    p.add_argument("--micro-batches", type=int, nargs="+", metavar="M", default=None,
                   help="only the DP step, whole batch (0) against micro-batches of M examples by length")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--anonymized", type=Path, default=None, metavar="TRAIN_PARQUET",
                   help="the stage's own rows instead of the raw sample's first reviews: an anonymize train.parquet "
                        "(e.g. data/anonymized/train.parquet after `dvc repro anonymize`), bounded to "
                        "--reviews-per-user per user and shuffled as synthesize does")
    p.add_argument("--reviews-per-user", type=int, default=5)
    p.add_argument("--generator", type=Path, default=None, metavar="DIR",
                   help="generate with a trained generator folder (e.g. models/generator after `dvc repro synthesize`) "
                        "instead of the base with a fresh adapter: its drafts' lengths are the stage's")
    p.add_argument("--gen-backends", nargs="+", default=["previous", "transformers", "ctranslate2"],
                   choices=["previous", "transformers", "ctranslate2"],
                   help="the generation paths to time (transformers runs bf16: emulated, very slow, on CPUs without it)")
    return p.parse_args()


def load_rows(path: Path, n: int):
    import pandas as pd

    frame = pd.read_json(path, lines=True, nrows=n)
    frame["title"] = frame.get("title")
    frame["main_category"] = "All Electronics"
    frame["product_title"] = None
    return frame[["rating", "title", "text", "main_category", "product_title"]].astype({"rating": int})


def load_anonymized(path: Path, n: int, per_user: int):
    """n training rows as the stage trains on them: at most per_user per user, in a seeded random order."""
    import pandas as pd

    from stages.synthesize.dp import bound_contributions

    frame = pd.read_parquet(path)
    keep = bound_contributions(frame["user_id"].astype(str).to_numpy(), per_user, seed=0)
    rows = frame.iloc[keep].sample(frac=1.0, random_state=0).reset_index(drop=True)
    return rows[["rating", "title", "text", "main_category", "product_title"]].head(n).astype({"rating": int})


def generator_params(args, train_dtype="float32"):
    from stages.synthesize.params import GeneratorParams

    return GeneratorParams(
        base_model=args.base, lora_r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0, target_modules=("q_proj", "v_proj"),
        lora_last_layers=args.lora_last_layers, learning_rate=1e-3, epochs=1, batch_size=args.batch,
        max_seq_len=args.seq_len, max_train_rows=None, min_train_rows=1, eval_rows=1, train_dtype=train_dtype,
        micro_batch_size=None, rating_weights=(1.0, 1.0, 1.0, 1.0, 1.0),
    )


def fresh_model(args, base):
    import copy

    from stages.synthesize.generator import attach_lora

    return attach_lora(copy.deepcopy(base), generator_params(args))


def time_steps(step, batches) -> float:
    step(batches[0])  # warm-up
    times = []
    for batch in batches[1:]:
        start = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _dp(model, net_module, args):
    import torch
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    params = [p for p in model.parameters() if p.requires_grad]
    net = GradSampleModule(net_module, loss_reduction="mean")
    opt = DPOptimizer(torch.optim.AdamW(params, lr=1e-3), noise_multiplier=1.0, max_grad_norm=1.0,
                      expected_batch_size=args.batch)
    return net, opt, params


def bench_training(args, base, enc):
    """Seconds per DP step (median) per mode, the cache pass's seconds, and the first-step losses."""
    import numpy as np
    import torch

    from stages.synthesize.dp import _per_unit_grad_samples
    from stages.synthesize.encoding import per_example_loss
    from stages.synthesize.trunk import batch_from_cache, cache_trunk, split_index, top_model

    n = args.batch * (args.steps + 1)
    batches = [list(range(i, i + args.batch)) for i in range(0, n, args.batch)]
    units = np.arange(n)
    results, losses = {}, {}

    model = fresh_model(args, base)
    net, opt, params = _dp(model, model, args)

    def previous(rows):
        idx = torch.tensor(rows)
        opt.zero_grad()
        loss, _ = per_example_loss(net, enc.input_ids[idx], enc.attention_mask[idx], enc.labels[idx])
        losses.setdefault("previous", float(loss.mean()))
        loss.mean().backward()
        _per_unit_grad_samples(params, rows, units, rows)
        opt.step()

    results["previous: whole model each step, fp32"] = time_steps(previous, batches)
    net.remove_hooks()

    cache_seconds = trunk_pass_seconds(args, base, enc)
    for dtype_name, dtype in (("fp32", torch.float32), ("bf16 autocast", torch.bfloat16)):
        model = fresh_model(args, base)
        split = split_index(model, args.lora_last_layers)
        bf16 = dtype is torch.bfloat16
        cache = cache_trunk(model, enc, split, batch_size=32, dtype=dtype, autocast=bf16)
        net, opt, params = _dp(model, top_model(model, split), args)

        def cached(rows, label=dtype_name, bf16=bf16):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss, _ = net(*batch_from_cache(cache, rows, torch.float32))
            losses.setdefault(label, float(loss.float().mean()))
            loss.float().mean().backward()
            _per_unit_grad_samples(params, rows, units, rows)
            opt.step()

        results[f"stage: cached trunk, top {args.lora_last_layers} + head, {dtype_name}"] = time_steps(cached, batches)
        net.remove_hooks()
    return results, cache_seconds, losses


def _peak_rss_reset() -> None:
    """Reset this process's peak resident set size (Linux: `5` to clear_refs), so a mode's peak is its own."""
    Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_gb() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024**2


def bench_micro_batches(args, base, enc) -> list[tuple[str, float, int, float, float]]:
    """Per micro-batch size: (label, median s/step, padded tokens per step, peak RSS GB, first-step loss)."""
    import numpy as np
    import torch

    from stages.synthesize.dp import _per_unit_grad_samples, micro_batches, step_backward
    from stages.synthesize.trunk import batch_from_cache, cache_trunk, split_index, top_model

    n = args.batch * (args.steps + 1)
    batches = [list(range(i, i + args.batch)) for i in range(0, n, args.batch)]
    units = np.arange(n)
    out = []
    split = split_index(base, args.lora_last_layers)
    cache = cache_trunk(base, enc, split, batch_size=32, dtype=torch.bfloat16, autocast=True)  # frozen: shared
    lengths = [len(t) for t in cache.targets]
    for size in args.micro_batches:
        model = fresh_model(args, base)
        net, opt, params = _dp(model, top_model(model, split), args)
        first = []

        def batch_loss(module, rows):
            return module(*batch_from_cache(cache, rows, torch.float32))

        def step(rows, size=size or None):
            opt.zero_grad()
            chunks = micro_batches(rows, lengths, size)
            ordered, total = step_backward(net, batch_loss, chunks, params, private=True, bf16=True)
            first.append(total / len(ordered))
            _per_unit_grad_samples(params, ordered, units, rows)
            opt.step()

        padded = int(np.mean([sum(len(c) * max(lengths[r] for r in c) for c in micro_batches(b, lengths, size or None))
                              for b in batches]))
        _peak_rss_reset()
        sec = time_steps(step, batches)
        label = "whole batch, padded to its longest" if not size else f"micro-batches of {size} by length"
        out.append((label, sec, padded, _peak_rss_gb(), first[0]))
        net.remove_hooks()
    return out


def trunk_pass_seconds(args, base, enc) -> dict[str, float]:
    """Seconds per example of the one-off trunk pass: in batch order (the earlier pass), by length, bf16."""
    import torch

    from stages.synthesize.trunk import cache_trunk, split_index

    out = {}
    for label, by_length, autocast in (("in batch order, fp32", False, False), ("by length, fp32", True, False),
                                       ("by length, bf16 autocast", True, True)):
        model = fresh_model(args, base)
        start = time.perf_counter()
        cache_trunk(model, enc, split_index(model, args.lora_last_layers), batch_size=32,
                    dtype=torch.bfloat16 if autocast else torch.float32, autocast=autocast, by_length=by_length)
        out[label] = (time.perf_counter() - start) / len(enc.input_ids)
    return out


def bench_generation(args, base, tok, controls):
    """(tokens, seconds) per path, and a few records of each path."""
    import torch

    from stages.synthesize.engine import generate_records, generation_engine
    from stages.synthesize.params import GenerationParams, RayParams

    if args.generator is not None:
        from stages.synthesize.generator import ReviewGenerator

        model = ReviewGenerator.load_dir(args.generator).model
    else:
        model = fresh_model(args, base)
        with torch.no_grad():  # a non-zero adapter, as after training, so that merging is not a no-op
            for name, weight in model.named_parameters():
                if "lora_B" in name:
                    weight.normal_(0, 1e-3, generator=torch.Generator().manual_seed(0))
    stage = GenerationParams(n_records=len(controls), oversample=1.0, batch_size=args.gen_batches[0],
                             max_new_tokens=args.gen_tokens, temperature=0.8, top_k=50, top_p=0.9,
                             repetition_penalty=1.1, guidance_scale=1.0, backend="transformers", dtype="bfloat16",
                             max_attempts=1,
                             min_text_chars=10, engine="local", ray=RayParams(address=None, num_workers=1))
    previous = dataclasses.replace(stage, batch_size=32, dtype="float32", top_k=0, top_p=0.95,
                                   repetition_penalty=1.0, temperature=0.9)
    paths = []
    if "previous" in args.gen_backends:
        paths.append(("previous: PEFT model unmerged, fp32, batch 32", previous, lambda: model.eval()))
    for batch in args.gen_batches if "transformers" in args.gen_backends else []:
        paths.append((f"transformers: LoRA merged, bf16, batch {batch}", dataclasses.replace(stage, batch_size=batch), None))
    for compute in ("int8", "float32") if "ctranslate2" in args.gen_backends else ():
        for batch in args.gen_batches:
            paths.append((f"ctranslate2: LoRA merged, {compute}, batch {batch}",
                          dataclasses.replace(stage, backend="ctranslate2", dtype=compute, batch_size=batch), None))
    out, samples, built = {}, {}, {}
    for label, gen, make in paths:
        key = (gen.backend, gen.dtype)
        if make is None and key not in built:  # one conversion per backend and dtype, timed apart
            start = time.perf_counter()
            built[key] = (generation_engine(model, tok, gen), time.perf_counter() - start)
        net = make() if make else built[key][0]
        start = time.perf_counter()
        written = generate_records(net, tok, controls, gen, seed=0)
        out[label] = (written["tokens"], time.perf_counter() - start)
        samples[label] = written
    return out, samples, {f"{b} {d}": sec for (b, d), (_, sec) in built.items()}


def main():
    import torch

    from stages.synthesize.encoding import encode_records
    from stages.synthesize.loading import load_base

    args = parse_args()
    wanted = max(args.batch * (args.steps + 1), args.gen_prompts, args.trunk_only)
    rows = (load_anonymized(args.anonymized, wanted, args.reviews_per_user) if args.anonymized
            else load_rows(args.reviews, wanted))
    base, tok = load_base(args.base, seed=0)
    enc = encode_records(tok, rows.head(args.trunk_only) if args.trunk_only else rows, args.seq_len)
    print(f"base {args.base}; torch threads {torch.get_num_threads()}; CPU load {os.getloadavg()[0]:.1f} "
          "(shared machine: figures may be depressed)")
    if args.trunk_only:
        first = None
        print(f"\none-off trunk cache pass, {args.trunk_only} reviews, seq <= {args.seq_len}, "
              f"trunk below the top {args.lora_last_layers} layers")
        for name, sec in trunk_pass_seconds(args, base, enc).items():
            first = first or sec
            print(f"{name:28s} {1 / sec:8.1f} examples/s {first / sec:6.2f}x")
        return None
    if args.micro_batches:
        print(f"\nDP-SGD step (cached trunk, bf16 autocast), {args.batch} examples per step, seq <= {args.seq_len}, "
              f"LoRA r {args.lora_r} on the top {args.lora_last_layers} layers, median of {args.steps}")
        rows = bench_micro_batches(args, base, enc)
        print(f"{'mode':40s} {'s/step':>7s} {'examples/s':>10s} {'x whole':>8s} {'tokens/step':>11s} {'peak GB':>8s} "
              f"{'loss':>7s}")
        whole = rows[0][1]
        for label, sec, padded, peak, loss in rows:
            print(f"{label:40s} {sec:7.2f} {args.batch / sec:10.1f} {whole / sec:8.2f} {padded:11d} {peak:8.2f} {loss:7.4f}")
        return None
    if args.skip_training:
        return _generation_only(args, base, tok, rows)
    train, cache_seconds, losses = bench_training(args, base, enc)
    prev = train["previous: whole model each step, fp32"]
    print(f"\nDP-SGD step, batch {args.batch}, seq <= {args.seq_len}, adapters on top {args.lora_last_layers} layers "
          f"(median of {args.steps})")
    print(f"{'mode':52s} {'s/step':>8s} {'examples/s':>11s} {'x previous':>11s}")
    for name, sec in train.items():
        print(f"{name:52s} {sec:8.2f} {args.batch / sec:11.1f} {prev / sec:11.2f}")
    for name, sec in cache_seconds.items():
        print(f"one-off trunk cache pass ({name}): {1 / sec:.1f} examples/s")
    print("first-batch loss: " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))

    _generation_only(args, base, tok, rows)


def _generation_only(args, base, tok, rows):
    controls = rows.head(args.gen_prompts).assign(text_chars=rows["text"].str.len())
    gen, samples, build_seconds = bench_generation(args, base, tok, controls)
    print(f"\ngeneration by {args.generator or 'the base with a fresh adapter'}, {args.gen_prompts} prompts, up to "
          f"{args.gen_tokens} new tokens each; CPU load {os.getloadavg()[0]:.1f}")
    print(f"{'mode':52s} {'tokens':>7s} {'seconds':>8s} {'tokens/s':>9s} {'x first':>11s} {'s/draft':>8s}")
    first = None
    for name, (tokens, sec) in gen.items():
        first = first or tokens / sec
        print(f"{name:52s} {tokens:7d} {sec:8.1f} {tokens / sec:9.1f} {tokens / sec / first:11.2f} "
              f"{sec / len(controls):8.3f}")
    print("one-off build (merge, cast or convert): " + ", ".join(f"{k} {v:.1f} s" for k, v in build_seconds.items()))
    for name, sample in samples.items():
        print(f"\ntwo records of {name}:")
        for i in range(2):
            print(f"  [{controls.iloc[i]['rating']}*] {sample['titles'][i]!r} / {sample['texts'][i]!r}")
    print(f"CPU load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
