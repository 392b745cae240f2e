"""Benchmark the synthesize stage's two hot loops, side by side in one run.

1. One LoRA fine-tuning step on the same batches: non-private (the physical limit),
   DP-SGD with Opacus per-sample gradients (hooks, what the stage runs, per-unit sums),
   and DP-SGD with Opacus ghost clipping (PrivacyEngine.make_private(grad_sample_mode="ghost")).
2. Generation throughput (tokens/s): batched with the KV cache vs one record at a time.

    .venv/bin/python benchmarks/bench_synthesize.py                   # SmolLM2-135M (GGUF)
    .venv/bin/python benchmarks/bench_synthesize.py --base tiny-llama # the test model

Reviews are read from the shared sample (never copied into the repository).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "amazon_reviews_2023" / "Electronics.10k.jsonl.gz"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default=str(ROOT / "models/base/SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--reviews", type=Path, default=Path(os.environ.get("SYNTHGUARD_SAMPLE_DIR", SAMPLE.parent)) / SAMPLE.name)
    p.add_argument("--batch", type=int, default=8, help="examples per training step")
    p.add_argument("--steps", type=int, default=4, help="timed steps per mode (after one warm-up step)")
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--lora-last-layers", type=int, default=6)
    p.add_argument("--gen-prompts", type=int, default=16)
    p.add_argument("--gen-batch", type=int, default=16)
    p.add_argument("--gen-tokens", type=int, default=48)
    return p.parse_args()


def load_rows(path: Path, n: int):
    import pandas as pd

    frame = pd.read_json(path, lines=True, nrows=n)
    frame["title"] = frame.get("title")
    frame["main_category"] = None
    return frame[["rating", "title", "text", "main_category"]].astype({"rating": int})


def fresh_model(args):
    from stages.synthesize.generator import attach_lora
    from stages.synthesize.params import GeneratorParams
    from stages.synthesize.text import load_base

    gen = GeneratorParams(
        base_model=args.base, lora_r=8, lora_alpha=16, lora_dropout=0.0, target_modules=("q_proj", "v_proj"),
        lora_last_layers=args.lora_last_layers, learning_rate=1e-3, epochs=1, batch_size=args.batch,
        max_seq_len=args.seq_len, max_train_rows=None, min_train_rows=1, eval_rows=1,
    )
    model, tok = load_base(args.base, seed=0)
    return attach_lora(model, gen), tok


def time_steps(step, batches) -> float:
    step(batches[0])  # warm-up
    times = []
    for batch in batches[1:]:
        start = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_training(args, enc):
    import numpy as np
    import torch
    from opacus import GradSampleModule, PrivacyEngine
    from opacus.optimizers import DPOptimizer

    from stages.synthesize.dp import _per_unit_grad_samples
    from stages.synthesize.text import per_example_loss

    n = args.batch * (args.steps + 1)
    batches = [list(range(i, i + args.batch)) for i in range(0, n, args.batch)]
    results = {}

    model, _ = fresh_model(args)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)

    def plain(rows):
        idx = torch.tensor(rows)
        opt.zero_grad()
        loss, _ = per_example_loss(model, enc.input_ids[idx], enc.attention_mask[idx], enc.labels[idx])
        loss.mean().backward()
        opt.step()

    results["non-private LoRA step"] = time_steps(plain, batches)

    model, _ = fresh_model(args)
    params = [p for p in model.parameters() if p.requires_grad]
    net = GradSampleModule(model, loss_reduction="mean")
    dp_opt = DPOptimizer(torch.optim.AdamW(params, lr=1e-3), noise_multiplier=1.0, max_grad_norm=1.0,
                         expected_batch_size=args.batch)
    units = np.arange(n)

    def hooks(rows):
        idx = torch.tensor(rows)
        dp_opt.zero_grad()
        loss, _ = per_example_loss(net, enc.input_ids[idx], enc.attention_mask[idx], enc.labels[idx])
        loss.mean().backward()
        _per_unit_grad_samples(params, rows, units, rows)
        dp_opt.step()

    results["DP-SGD, per-sample grads (stage)"] = time_steps(hooks, batches)
    net.remove_hooks()

    model, _ = fresh_model(args)
    params = [p for p in model.parameters() if p.requires_grad]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(enc.input_ids), batch_size=args.batch)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=-100)
    g_model, g_opt, g_crit, _ = PrivacyEngine().make_private(
        module=model, optimizer=torch.optim.AdamW(params, lr=1e-3), data_loader=loader, criterion=criterion,
        noise_multiplier=1.0, max_grad_norm=1.0, grad_sample_mode="ghost", poisson_sampling=False,
    )

    def ghost(rows):
        idx = torch.tensor(rows)
        mask = enc.attention_mask[idx]
        width = int(mask.sum(dim=1).max())
        g_opt.zero_grad()
        logits = g_model(input_ids=enc.input_ids[idx, :width], attention_mask=mask[:, :width]).logits[:, :-1]
        target = enc.labels[idx, 1:width]
        loss = g_crit(logits.reshape(-1, logits.size(-1)), target.reshape(-1), shape=logits.shape)
        loss.backward()
        g_opt.step()

    results["DP-SGD, ghost clipping"] = time_steps(ghost, batches)
    return results


def bench_generation(args, model, tok, prompts):
    from stages.synthesize.text import generate

    out = {}
    for label, bs in ((f"batched ({args.gen_batch}/batch, KV cache)", args.gen_batch), ("one record at a time", 1)):
        start = time.perf_counter()
        _, tokens = generate(model, tok, prompts, max_new_tokens=args.gen_tokens, temperature=1.0, top_p=0.95,
                             batch_size=bs, stop_at_newline=False, seed=0)
        seconds = time.perf_counter() - start
        out[label] = (tokens, seconds)
    return out


def main():
    import torch

    from stages.synthesize.core import encode_records
    from stages.synthesize.text import control_prefix

    args = parse_args()
    rows = load_rows(args.reviews, max(args.batch * (args.steps + 1), args.gen_prompts))
    model, tok = fresh_model(args)
    enc = encode_records(tok, rows, args.seq_len)
    print(f"base {args.base}; torch threads {torch.get_num_threads()}; CPU load {os.getloadavg()[0]:.1f} "
          "(shared machine: figures may be depressed)")
    train = bench_training(args, enc)
    base = train["non-private LoRA step"]
    print(f"\nLoRA step, batch {args.batch}, seq <= {args.seq_len}, adapters on top {args.lora_last_layers} layers "
          f"(median of {args.steps})")
    print(f"{'mode':36s} {'s/step':>8s} {'x non-private':>14s}")
    for name, sec in train.items():
        print(f"{name:36s} {sec:8.2f} {sec / base:14.2f}")

    prompts = [control_prefix(r.rating, r.main_category, len(r.text)) + "\ntitle:" for r in rows.head(args.gen_prompts).itertuples()]
    gen = bench_generation(args, model, tok, prompts)
    print(f"\ngeneration, {args.gen_prompts} prompts, up to {args.gen_tokens} new tokens each")
    print(f"{'mode':36s} {'tokens':>8s} {'seconds':>8s} {'tokens/s':>9s}")
    for name, (tokens, sec) in gen.items():
        print(f"{name:36s} {tokens:8d} {sec:8.1f} {tokens / sec:9.1f}")
    print(f"CPU load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
