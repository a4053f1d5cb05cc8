"""One training step of the notebook's ViT against vit-pytorch's ViT of the same shape, measured side by side.

    python benchmarks/train_step.py            # CPU (or CUDA when present), 5 warm-up + 30 timed rounds
    python benchmarks/train_step.py --profile  # also where the time of the notebook's step goes (torch.profiler)
    python benchmarks/train_step.py --epochs 2 # also seconds per epoch of train(), eager and compiled, in turn

Every variant takes one step per round, in turn, on the same batch of 128 random 28x28 images, so that a change in
the machine's load touches them alike; the table gives each variant's median step time and its ratio to
vit-pytorch's. A step is forward, loss, backward and AdamW update: the notebook's ViT eagerly with either attention
path, and compiled by torch.compile with either (the explicit one is how its long CPU training runs take it). The
notebook's `train_step` row adds what the notebook's training loop does besides (gradient clipping, the loss scaler,
the weight average), compiled where a full training run compiles. The loop line runs the notebook's own `train()`
for two epochs on random images and compares its images per second in the second epoch with the bare step's.
Needs `pip install -r requirements-dev.txt` (vit-pytorch is a dev-only dependency).
"""

import argparse
import contextlib
import io
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from vit_pytorch import ViT as PeerViT

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import load_definitions  # noqa: E402  (the notebook's `definitions` cells, as a module)

nb = load_definitions()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_step(model, optimizer, xb, yb, device):
    """Forward, loss, backward, update: what every training loop does, in the device's precision."""
    with nb.autocast_for(device):
        loss = F.cross_entropy(model(xb).float(), yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def variants(config, device):
    """name -> (model, a function doing one step on (xb, yb))."""
    torch.manual_seed(0)
    peer = PeerViT(image_size=28, patch_size=config.patch_size, num_classes=10, dim=config.embed_dim,
                   depth=config.depth, heads=config.num_heads, mlp_dim=config.mlp_ratio * config.embed_dim,
                   channels=1, dim_head=config.embed_dim // config.num_heads).to(device)
    peer_optimizer = torch.optim.AdamW(peer.parameters(), lr=1e-3, weight_decay=0.05)
    out = {"vit-pytorch ViT": (peer, lambda xb, yb: bare_step(peer, peer_optimizer, xb, yb, device))}
    paths = {"explicit attention": False, "fused attention": True,  # eager, each path forced
             "compiled": None,  # as the notebook compiles it: the explicit path inside (fused = None)
             "compiled, fused kernel inside": True}  # the alternative it was chosen over
    for path, fused in paths.items():
        model = nb.VisionTransformer(config).to(device)
        for block in model.blocks:
            block.attn.fused = fused
        optimizer = nb.make_optimizer(model, 1e-3, 0.05)
        net = torch.compile(model) if path.startswith("compiled") else model
        out[f"notebook ViT, {path}"] = (model, lambda xb, yb, n=net, o=optimizer: bare_step(n, o, xb, yb, device))
    model = nb.VisionTransformer(config).to(device)  # as a full training run takes it (nb.compiles_training)
    net = torch.compile(model) if nb.compiles_training(device, nb.COMPILE_MIN_STEPS) else model
    optimizer = nb.make_optimizer(model, 1e-3, 0.05)
    scaler = nb.make_scaler(device)
    ema = nb.make_ema(model, 0.999)

    def notebook_step(xb, yb):
        nb.train_step(net, xb, yb, optimizer, scaler, 0.1, 1.0)
        ema.update_parameters(model)

    name = f"notebook train_step + clipping + weight average{', compiled' if net is not model else ''}"
    out[name] = (model, notebook_step)
    return out


def benchmark(device, batch_size, warmup, rounds):
    config = nb.ViTConfig()  # the notebook's default: patch 7, width 128, depth 6, 4 heads, MLP ratio 2
    runs = variants(config, device)
    xb = torch.randn(batch_size, 1, 28, 28, device=device)
    yb = torch.randint(0, 10, (batch_size,), device=device)
    for name, (model, step) in runs.items():  # a first step each: where torch.compile compiles
        model.train()
        synchronize(device)
        start = time.perf_counter()
        step(xb, yb)
        synchronize(device)
        if "compiled" in name:
            print(f"{name}: first step, compilation included, {time.perf_counter() - start:.1f} s")
    times = {name: [] for name in runs}
    for round_ in range(warmup + rounds):
        for name, (model, step) in runs.items():
            model.train()
            synchronize(device)
            start = time.perf_counter()
            step(xb, yb)
            synchronize(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    peer = medians["vit-pytorch ViT"]
    print(f"{'variant':<62} {'params':>9} {'median ms':>10} {'ratio':>6}")
    for name, (model, _) in runs.items():
        params = sum(p.numel() for p in model.parameters())
        print(f"{name:<62} {params:>9,} {1000 * medians[name]:>10.1f} {medians[name] / peer:>6.2f}")
    return medians


def random_splits(n, device):
    """n random training images (and 256 for validation and test) in the notebook's MNISTSplits."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n + 256, 1, 28, 28, generator=generator).to(device)
    y = torch.randint(0, 10, (n + 256,), generator=generator).to(device)
    return nb.MNISTSplits(x[:n], y[:n], x[n:], y[n:], x[n:], y[n:], mean=0.5, std=0.29)


def train_epochs(device, batch_size, n, epochs, compiled, name):
    """The notebook's own train() of its ViT (augmentation, weight average) on n random images: its history. With
    `compiled`, the run compiles wherever a long run of the notebook would (nb.compiles_training)."""
    default = nb.COMPILE_MIN_STEPS
    nb.COMPILE_MIN_STEPS = 1 if compiled else math.inf
    try:
        torch.manual_seed(0)
        model = nb.VisionTransformer(nb.ViTConfig()).to(device)
        with contextlib.redirect_stdout(io.StringIO()):  # its progress bars and epoch lines
            return nb.train(model, random_splits(n, device), epochs=epochs, batch_size=batch_size, lr=1e-3,
                            weight_decay=0.05, warmup_epochs=1, label_smoothing=0.1, grad_clip=1.0, augment=True,
                            ema_decay=0.999, name=name)
    finally:
        nb.COMPILE_MIN_STEPS = default


def seconds_per_epoch(device, batch_size, rounds, n):
    """Seconds per epoch of train() on n images (the ViT's training set: 55,000), one-epoch runs taking turns, eager
    and compiled; the first compiled epoch includes the compilation (torch.compile caches it on disk)."""
    if not nb.compiles_training(device, math.inf):
        print(f"seconds per epoch: training on {device.type} does not compile (nb.compiles_training); skipped")
        return
    seconds = {"eager": [], "compiled": []}
    for round_ in range(rounds):
        for kind in seconds:
            seconds[kind].append(train_epochs(device, batch_size, n, 1, kind == "compiled", kind)["seconds"][0])
            print(f"round {round_ + 1}: {kind} epoch {seconds[kind][-1]:.1f} s", flush=True)
    for kind, values in seconds.items():
        later = values[1:] if kind == "compiled" and len(values) > 1 else values
        print(f"train() of the ViT, {kind}: {statistics.median(later):.1f} s per epoch (median of {len(later)})"
              + (f"; first epoch, compiling included, {values[0]:.1f} s" if kind == "compiled" else ""))


def profile(device, batch_size, steps=10):
    """Where the time of the notebook's training step goes, eager and compiled: its operators by total self time."""
    from torch.profiler import ProfilerActivity, profile, record_function

    xb = torch.randn(batch_size, 1, 28, 28, device=device)
    yb = torch.randint(0, 10, (batch_size,), device=device)
    for compiled in (False, True):
        torch.manual_seed(0)
        model = nb.VisionTransformer(nb.ViTConfig()).to(device).train()
        net = torch.compile(model) if compiled else model
        optimizer, scaler, ema = nb.make_optimizer(model, 1e-3, 0.05), nb.make_scaler(device), nb.make_ema(model, 0.999)
        for _ in range(3):
            nb.train_step(net, xb, yb, optimizer, scaler, 0.1, 1.0)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            for _ in range(steps):
                with record_function("augmentation"):
                    nb.random_affine(xb)
                with record_function("input check"):
                    nb.check_images(xb, 1, 28)
                with record_function("train_step"):
                    nb.train_step(net, xb, yb, optimizer, scaler, 0.1, 1.0)
                with record_function("weight average"):
                    ema.update_parameters(model)
        print(f"\nthe notebook's training step, {'compiled' if compiled else 'eager (fused attention)'}: "
              f"{steps} steps")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--loop-steps", type=int, default=200, help="batches per train() epoch (two); 0 skips it")
    parser.add_argument("--epochs", type=int, default=0,
                        help="rounds of one-epoch train() runs, eager and compiled in turn (CPU; about 45 s each)")
    parser.add_argument("--epoch-images", type=int, default=55_000, help="images per --epochs epoch")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    device = nb.pick_device(args.device)
    print(f"{nb.device_name(device)} | {nb.precision_name(device)} | {platform.processor() or platform.machine()} | "
          f"torch {torch.__version__} | batch {args.batch_size}, {args.warmup} warm-up + {args.rounds} timed rounds")
    medians = benchmark(device, args.batch_size, args.warmup, args.rounds)
    if args.loop_steps:
        compiled = nb.compiles_training(device, nb.COMPILE_MIN_STEPS)
        history = train_epochs(device, args.batch_size, args.batch_size * args.loop_steps, 2, compiled, "loop")
        loop = history["images_per_s"][1]  # the second epoch: no compilation in it
        bare = next(n for n in medians if n.startswith("notebook ViT, " + ("compiled" if compiled else "fused")))
        step = next(n for n in medians if n.startswith("notebook train_step"))
        bare_rate, step_rate = args.batch_size / medians[bare], args.batch_size / medians[step]
        print(f"notebook train() loop{', compiled' if compiled else ''}: {loop:,.0f} images/s against "
              f"{bare_rate:,.0f} for the bare step ({loop / bare_rate:.2f}) and {step_rate:,.0f} for train_step "
              f"({loop / step_rate:.2f})")
    if args.epochs:
        seconds_per_epoch(device, args.batch_size, args.epochs, args.epoch_images)
    if args.profile:
        profile(device, args.batch_size)


if __name__ == "__main__":
    main()
