"""Training cost per epoch and inference speed of the notebook's three models (ViT, conv-stem ViT, CNN), like with like.

    python benchmarks/model_costs.py                                              # the tables and their ratios
    python benchmarks/model_costs.py --out benchmarks/results/model_costs.txt     # also the whole output, in a file
    python benchmarks/model_costs.py --quick                                      # a few rounds and steps (a test)

What section 8.2 of the notebook compares, measured on their own (on a CPU, eager):

- Models as the notebook builds them with its default parameters, after nb.seed_everything(0): the ViT
  (nb.ViTConfig(patch_size=7, embed_dim=128, depth=6, num_heads=4, mlp_ratio=2, dropout=0.0)), the same with
  stem="conv" (the convolutional stem of studies/common.py, which registers it in the notebook's STEMS), and
  nb.ConvNet([32, 64, 128]).
- Training cost per epoch: one step is the notebook's train_step (forward, label-smoothed loss 0.1, backward,
  gradient clipping at 1.0, the loss scaler, AdamW from make_optimizer(net, 1e-3, 0.05)) on one fixed normalised batch
  of the first 128 MNIST training images; eager, as the notebook trains; every attention module on the explicit path
  (fused = False: the path that the notebook's default, fused = None, takes on a CPU). Two blocks: float32 and
  bfloat16 autocast (nb.CPU_PRECISION set to each). Each model takes --warmup steps, then --rounds rounds in which
  every model takes --steps steps in turn, the order rotated each round, so that a change in the machine's load
  touches the three alike. A model's step time is the median over rounds of its mean step time in a round (with
  the quartiles of the rounds); seconds per epoch = that median times ceil(55,000 / 128) = 430 steps.
- Inference: images per second in float32 (CPU inference is float32 in the notebook), eval mode, torch.no_grad, on
  the first test images, at batch 1 and at batch 1000, the three models taking turns in rotated order round by round.
- Ratios: each divides two models measured in the same block, round by round (the median of the per-round ratios,
  with the quartiles).
"""

import argparse
import contextlib
import dataclasses
import datetime
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import Tee, cpu_description, quartiles, studies_common  # noqa: E402
from definitions import mnist_data_dir  # noqa: E402

nb = studies_common().nb  # the notebook's `definitions` cells, loaded once by studies/common.py with its conv stem
SEED, BATCH_SIZE, LR, WEIGHT_DECAY, LABEL_SMOOTHING, GRAD_CLIP = 0, 128, 1e-3, 0.05, 0.1, 1.0
VIT_CONFIG = dict(patch_size=7, embed_dim=128, depth=6, num_heads=4, mlp_ratio=2, dropout=0.0)
CNN_CHANNELS = [32, 64, 128]
MODELS = ("ViT", "conv-stem ViT", "CNN")
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEVICE = torch.device("cpu")


def build_models() -> dict[str, torch.nn.Module]:
    """The three models of section 8.2, built as the notebook builds them (seeded, then one after the other)."""
    config = nb.ViTConfig(**VIT_CONFIG)
    nb.seed_everything(SEED)
    models = {"ViT": nb.VisionTransformer(config),
              "conv-stem ViT": nb.VisionTransformer(dataclasses.replace(config, stem="conv")),
              "CNN": nb.ConvNet(CNN_CHANNELS)}
    for net in models.values():
        net.to(DEVICE)
        for module in net.modules():  # the explicit attention path, the default's on a CPU
            if isinstance(module, nb.MultiHeadSelfAttention):
                module.fused = False
    return models


@contextlib.contextmanager
def cpu_precision(name: str):
    """nb.CPU_PRECISION set to `name` for the block: what train_step computes in on a CPU (checked by
    computed_dtypes)."""
    saved = getattr(nb, "CPU_PRECISION", "float32")
    nb.CPU_PRECISION = name
    try:
        yield
    finally:
        nb.CPU_PRECISION = saved


@contextlib.contextmanager
def computed_dtypes(net: torch.nn.Module):
    """The set of dtypes that the model's linear and convolution layers output inside the block."""
    seen, hooks = set(), []
    for module in net.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            hooks.append(module.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype)))
    try:
        yield seen
    finally:
        for hook in hooks:
            hook.remove()


def check_dtypes(seen: set, expected: torch.dtype, what: str) -> None:
    if seen != {expected}:
        raise RuntimeError(f"{what} computed in {sorted(map(str, seen))}, not {expected}: the notebook's precision "
                           "rule no longer follows CPU_PRECISION as this benchmark sets it")


def rotated(names: tuple[str, ...], round_index: int) -> tuple[str, ...]:
    k = round_index % len(names)
    return names[k:] + names[:k]


def time_training(precision: str, xb: torch.Tensor, yb: torch.Tensor, warmup: int, rounds: int,
                  steps: int) -> dict[str, list[float]]:
    """Seconds per training step of each model, one value per round (the mean of its `steps` steps in that round)."""
    with cpu_precision(precision):
        runs = {}
        for name, net in build_models().items():
            net.train()
            runs[name] = (net, nb.make_optimizer(net, LR, WEIGHT_DECAY), nb.make_scaler(DEVICE))
        for name, (net, optimizer, scaler) in runs.items():
            for i in range(warmup):
                with computed_dtypes(net) if i == 0 else contextlib.nullcontext(set()) as seen:
                    nb.train_step(net, xb, yb, optimizer, scaler, label_smoothing=LABEL_SMOOTHING,
                                  grad_clip=GRAD_CLIP)
                if i == 0:
                    check_dtypes(seen, PRECISIONS[precision], f"{name}'s training step ({precision})")
        times = {name: [] for name in MODELS}
        for r in range(rounds):
            for name in rotated(MODELS, r):
                net, optimizer, scaler = runs[name]
                start = time.perf_counter()
                for _ in range(steps):
                    nb.train_step(net, xb, yb, optimizer, scaler, label_smoothing=LABEL_SMOOTHING,
                                  grad_clip=GRAD_CLIP)
                times[name].append((time.perf_counter() - start) / steps)
    return times


def time_inference(x: torch.Tensor, calls: int, rounds: int) -> dict[str, list[float]]:
    """Images per second of each model at batch len(x), one value per round (`calls` forward passes in a round)."""
    with cpu_precision("float32"), torch.no_grad():
        models = build_models()
        for name, net in models.items():
            net.eval()
            with computed_dtypes(net) as seen:
                net(x)  # warm-up
            check_dtypes(seen, torch.float32, f"{name}'s inference")
        rates = {name: [] for name in MODELS}
        for r in range(rounds):
            for name in rotated(MODELS, r):
                start = time.perf_counter()
                for _ in range(calls):
                    models[name](x)
                rates[name].append(len(x) * calls / (time.perf_counter() - start))
    return rates


def ratio(values: dict[str, list[float]], top: str, bottom: str) -> tuple[float, float, float]:
    """Median and quartiles of the per-round ratios top/bottom."""
    q1, median, q3 = quartiles([a / b for a, b in zip(values[top], values[bottom], strict=True)])
    return median, q1, q3


def print_training(times: dict[str, dict[str, list[float]]], steps_per_epoch: int, params: dict[str, int]) -> None:
    print(f"Training cost: one train_step on a batch of {BATCH_SIZE}, median over rounds (quartiles); "
          f"per epoch = median step time x {steps_per_epoch} steps")
    header = (f"{'model':<14} {'precision':<9} {'params':>9} {'median ms':>10} {'quartiles ms':>14} "
              f"{'s per epoch':>12} {'quartiles s':>12}")
    print(header)
    print("-" * len(header))
    for precision, block in times.items():
        for name in MODELS:
            q1, median, q3 = quartiles(block[name])
            print(f"{name:<14} {precision:<9} {params[name]:>9,} {median * 1e3:>10.1f} "
                  f"{f'{q1 * 1e3:.1f}-{q3 * 1e3:.1f}':>14} {median * steps_per_epoch:>12.1f} "
                  f"{f'{q1 * steps_per_epoch:.1f}-{q3 * steps_per_epoch:.1f}':>12}")
    print()
    print("Training ratios (per epoch), each within one precision block: median of per-round ratios (quartiles)")
    for precision, block in times.items():
        for top, bottom in (("CNN", "ViT"), ("conv-stem ViT", "ViT")):
            median, q1, q3 = ratio(block, top, bottom)
            print(f"  {top} / {bottom} epoch, {precision}: {median:.2f} ({q1:.2f}-{q3:.2f})")
    print()


def print_inference(rates: dict[int, dict[str, list[float]]], calls: dict[int, int]) -> None:
    print("Inference: images per second, float32, eval mode, torch.no_grad; median over rounds (quartiles)")
    header = f"{'model':<14} {'batch':>5} {'calls/round':>11} {'median img/s':>13} {'quartiles img/s':>18}"
    print(header)
    print("-" * len(header))
    for batch, block in rates.items():
        for name in MODELS:
            q1, median, q3 = quartiles(block[name])
            print(f"{name:<14} {batch:>5} {calls[batch]:>11} {median:>13,.0f} {f'{q1:,.0f}-{q3:,.0f}':>18}")
    print()
    print("Inference ratios (images/s; above 1.00 the first is faster), each within one batch size: median of "
          "per-round ratios (quartiles)")
    for batch, block in rates.items():
        for top, bottom in (("ViT", "CNN"), ("conv-stem ViT", "CNN"), ("conv-stem ViT", "ViT")):
            median, q1, q3 = ratio(block, top, bottom)
            print(f"  {top} / {bottom} images/s, batch {batch}: {median:.2f} ({q1:.2f}-{q3:.2f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=5, help="training steps of each model before the rounds (>= 1)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds, training and inference alike")
    parser.add_argument("--steps", type=int, default=10, help="training steps of each model per round")
    parser.add_argument("--calls-batch1", type=int, default=50, help="batch-1 forward passes per model per round")
    parser.add_argument("--calls-batch1000", type=int, default=3, help="batch-1000 forward passes per model per round")
    parser.add_argument("--quick", action="store_true", help="1 warm-up step, 2 rounds of 1 step, few calls (a test)")
    parser.add_argument("--out", type=Path, help="also write the command, machine and whole output to this file")
    args = parser.parse_args()
    if args.quick:
        args.warmup, args.rounds, args.steps, args.calls_batch1, args.calls_batch1000 = 1, 2, 1, 5, 1
    if min(args.warmup, args.rounds, args.steps, args.calls_batch1, args.calls_batch1000) < 1:
        parser.error("--warmup, --rounds, --steps and the --calls options must be at least 1")
    tee = Tee(sys.stdout)
    command = "python benchmarks/model_costs.py " + shlex.join(sys.argv[1:])
    with contextlib.redirect_stdout(tee):
        print(f"command: {command.strip()}")
        print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
        print(f"machine: {cpu_description()}")
        print(f"device: CPU; torch {torch.__version__}, {torch.get_num_threads()} threads ({os.cpu_count()} CPUs), "
              f"Python {platform.python_version()}")
        print(f"load average (1 min) at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"training: {args.warmup} warm-up steps, then {args.rounds} rounds of {args.steps} steps per model, "
              f"eager, explicit attention; inference: {args.rounds} rounds of {args.calls_batch1} calls at batch 1 "
              f"and {args.calls_batch1000} at batch 1000")
        data = nb.load_mnist(mnist_data_dir(), val_size=5000)
        xb, yb = data.normalize(data.x_train[:BATCH_SIZE]).to(DEVICE), data.y_train[:BATCH_SIZE].to(DEVICE)
        steps_per_epoch = math.ceil(len(data.x_train) / BATCH_SIZE)
        params = {name: sum(p.numel() for p in net.parameters()) for name, net in build_models().items()}
        print(f"models: {', '.join(f'{name} {n:,} parameters' for name, n in params.items())}; "
              f"{len(data.x_train):,} training images, {steps_per_epoch} steps per epoch")
        print()
        times = {precision: time_training(precision, xb, yb, args.warmup, args.rounds, args.steps)
                 for precision in PRECISIONS}
        print_training(times, steps_per_epoch, params)
        calls = {1: args.calls_batch1, 1000: args.calls_batch1000}
        rates = {batch: time_inference(data.normalize(data.x_test[:batch]).to(DEVICE), n, args.rounds)
                 for batch, n in calls.items()}
        print_inference(rates, calls)
        print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    if args.out:
        tee.save(args.out)


if __name__ == "__main__":
    main()
