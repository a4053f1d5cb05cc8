"""One training step of the notebook's ViT against vit-pytorch's ViT of the same shape, measured side by side.

    python benchmarks/train_step.py            # CPU (or CUDA when present), 5 warm-up + 30 timed rounds
    python benchmarks/train_step.py --profile  # also where the time of the notebook's step goes (torch.profiler)

Every variant takes one step per round, in turn, on the same batch of 128 random 28x28 images, so that a change in
the machine's load touches them alike; the table gives each variant's median step time and its ratio to
vit-pytorch's. A step is forward, loss, backward and AdamW update; the notebook's `train_step` row adds what the
notebook's training loop does besides (gradient clipping, the loss scaler, the weight average). The last line runs
the notebook's own `train()` for one epoch on random images and compares its images per second with the bare step's.
Needs `pip install -r requirements-dev.txt` (vit-pytorch is a dev-only dependency).
"""

import argparse
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
    for fused in (False, True):
        model = nb.VisionTransformer(config).to(device)
        for block in model.blocks:
            block.attn.fused = fused
        optimizer = nb.make_optimizer(model, 1e-3, 0.05)
        out[f"notebook ViT, {'fused' if fused else 'explicit'} attention"] = (
            model, lambda xb, yb, m=model, o=optimizer: bare_step(m, o, xb, yb, device))
    model = nb.VisionTransformer(config).to(device)  # as the notebook trains it: the fused kernel
    optimizer = nb.make_optimizer(model, 1e-3, 0.05)
    scaler = torch.amp.GradScaler("cuda", enabled=nb.precision_for(device)[1])
    ema = nb.make_ema(model, 0.999)

    def notebook_step(xb, yb):
        nb.train_step(model, xb, yb, optimizer, scaler, 0.1, 1.0)
        ema.update_parameters(model)

    out["notebook train_step + clipping + weight average"] = (model, notebook_step)
    return out


def benchmark(device, batch_size, warmup, rounds):
    config = nb.ViTConfig()  # the notebook's default: patch 7, width 128, depth 6, 4 heads, MLP ratio 2
    runs = variants(config, device)
    xb = torch.randn(batch_size, 1, 28, 28, device=device)
    yb = torch.randint(0, 10, (batch_size,), device=device)
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


def loop_images_per_second(device, batch_size, steps):
    """The notebook's own train() for one epoch of `steps` batches of random images: its logged images per second."""
    n = batch_size * steps
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n + 256, 1, 28, 28, generator=generator).to(device)
    y = torch.randint(0, 10, (n + 256,), generator=generator).to(device)
    data = nb.MNISTSplits(x[:n], y[:n], x[n:], y[n:], x[n:], y[n:], mean=0.5, std=0.29)
    model = nb.VisionTransformer(nb.ViTConfig()).to(device)
    history = nb.train(model, data, epochs=1, batch_size=batch_size, lr=1e-3, weight_decay=0.05, warmup_epochs=1,
                       label_smoothing=0.1, grad_clip=1.0, augment=True, ema_decay=0.999, name="loop")
    return history["images_per_s"][0]


def profile(device, batch_size, steps=10):
    """Where the time of the notebook's training step goes: its operators, by total self time."""
    from torch.profiler import ProfilerActivity, profile, record_function

    runs = variants(nb.ViTConfig(), device)
    name = next(n for n in runs if n.startswith("notebook train_step"))
    model, step = runs[name]
    model.train()
    xb = torch.randn(batch_size, 1, 28, 28, device=device)
    yb = torch.randint(0, 10, (batch_size,), device=device)
    for _ in range(3):
        step(xb, yb)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            with record_function("augmentation"):
                nb.random_affine(xb)
            step(xb, yb)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--loop-steps", type=int, default=60, help="batches of the train() epoch; 0 skips it")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    device = nb.pick_device(args.device)
    print(f"{nb.device_name(device)} | {nb.precision_name(device)} | {platform.processor() or platform.machine()} | "
          f"torch {torch.__version__} | batch {args.batch_size}, {args.warmup} warm-up + {args.rounds} timed rounds")
    medians = benchmark(device, args.batch_size, args.warmup, args.rounds)
    if args.loop_steps:
        loop = loop_images_per_second(device, args.batch_size, args.loop_steps)
        step_name = next(n for n in medians if n.startswith("notebook train_step"))
        bare = args.batch_size / medians[step_name]
        print(f"notebook train() loop: {loop:,.0f} images/s against {bare:,.0f} for its train_step alone "
              f"({loop / bare:.2f})")
    if args.profile:
        profile(device, args.batch_size)


if __name__ == "__main__":
    main()
