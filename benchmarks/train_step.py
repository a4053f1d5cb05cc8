"""The notebook's ViT against vit-pytorch's ViT of the same shape, one training step at a time, like with like.

    python benchmarks/train_step.py                   # CPU (or CUDA when present): the step table and its ratios
    python benchmarks/train_step.py --epochs 2        # also seconds per epoch of train(), eager and compiled
    python benchmarks/train_step.py --profile         # also where the time of train()'s loop goes (torch.profiler)
    python benchmarks/train_step.py --out benchmarks/results/train_step.txt   # also the whole output, in a file

A step is forward, loss, backward and AdamW update on a batch of 128 random 28x28 images. Every variant takes one
step per round, the variants in a new random order each round, so that a change in the machine's load touches them
alike; the table gives each variant's median step time. The two models differ in nothing but the model: both take
the same optimiser (the notebook's make_optimizer: AdamW with weight decay on matrices only, vit-pytorch's [CLS]
token and position embeddings named to it as the notebook's are; the kind of AdamW the notebook builds, PyTorch's
default or its fused kernel, in every row but the AdamW pairs), the same precision (the notebook's autocast_for,
with nb.CPU_PRECISION set to float32 or bfloat16) and the same compilation (both eager, or both through
torch.compile). The notebook itself never compiles: compiling is this benchmark's own, to price what torch.compile
would buy. Each ratio below the table divides two variants that differ in one thing only, round by round (the
median of the per-round ratios, with the quartiles).

- Step table: both models eager and compiled, in float32 and bfloat16 (CPU); the notebook's ViT with either attention
  path forced (`fused` set to True or False on every attention module: PyTorch's fused kernel or the explicit
  softmax(QK^T/sqrt d)V; the "default" column marks the path that `fused = None`, the notebook's default, takes on
  this device); the notebook's ViT (eager and compiled) and vit-pytorch's (eager) with the other kind of AdamW, to
  price the fused AdamW kernel by itself and to repeat the old benchmark's pairing (the notebook fused, vit-pytorch
  not); and the notebook's whole train_step (gradient clipping, the loss scaler) plus the weight average as train()
  runs it: eager, the default attention path, in the precision of a full training run on this machine.
- Matrix products: GFLOP/s of float32 and bfloat16 products of the model's shapes, and nb.bfloat16_speedup().
- Loop (--loop-steps): the notebook's own train() for two epochs of random images in a full run's precision (eager,
  as train() runs), the second epoch's images/s against the bare step and against train_step + weight average, each
  timed in blocks of as many steps just before and just after; then a copy of train()'s loop timed part by part.
- Epochs (--epochs N): seconds per epoch of train() on 55,000 random images, one-epoch runs taking turns, N rounds:
  float32 and bfloat16, eager as the notebook trains and compiled (the benchmark hands train() a compiled model for
  its full batches).
Needs `pip install -r requirements-dev.txt` (vit-pytorch is a dev-only dependency).
"""

import argparse
import contextlib
import dataclasses
import datetime
import io
import platform
import random
import shlex
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import torch
import torch.nn.functional as F
from vit_pytorch import ViT as PeerViT

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from torch.overrides import TorchFunctionMode  # noqa: E402

from common import Tee, cpu_description, quartiles  # noqa: E402
from definitions import load_definitions  # noqa: E402  (the notebook's `definitions` cells, as a module)

nb = load_definitions()
nb.CPU_PRECISION = "float32"  # a parameter of the notebook; every timed block sets its own (cpu_precision)
LR, WEIGHT_DECAY, EMA_DECAY = 1e-3, 0.05, 0.999
NOTEBOOK, PEER = "notebook ViT", "vit-pytorch ViT"
MATMUL_SHAPES = {"qkv": (128 * 17, 128, 384), "MLP in": (128 * 17, 128, 256), "MLP out": (128 * 17, 256, 128)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def cpu_precision(dtype: torch.dtype):
    """nb.CPU_PRECISION set to `dtype` for the block: what nb.autocast_for, train_step and train() compute in on a
    CPU."""
    before = nb.CPU_PRECISION
    nb.CPU_PRECISION = str(dtype).removeprefix("torch.")
    try:
        yield
    finally:
        nb.CPU_PRECISION = before


def precisions(device: torch.device) -> dict[str, torch.dtype]:
    """The precisions to compare: float32 and bfloat16 autocast on a CPU; elsewhere the device's own (nb)."""
    if device.type == "cpu":
        return {"float32": torch.float32, "bfloat16": torch.bfloat16}
    return {nb.precision_name(device): nb.precision_for(device)}


def dtype_name(device: torch.device, dtype: torch.dtype) -> str:
    return next(name for name, d in precisions(device).items() if d == dtype)


def peer_vit(config, device: torch.device) -> torch.nn.Module:
    """vit-pytorch's ViT of the notebook's shape; its [CLS] token and position embeddings named as the notebook names
    its own (no_weight_decay), so that nb.make_optimizer groups both models' parameters alike."""
    peer = PeerViT(image_size=config.image_size, patch_size=config.patch_size, num_classes=config.num_classes,
                   dim=config.embed_dim, depth=config.depth, heads=config.num_heads,
                   mlp_dim=config.mlp_ratio * config.embed_dim, channels=config.in_channels,
                   dim_head=config.embed_dim // config.num_heads).to(device)
    peer.no_weight_decay = lambda: {"cls_token", "pos_embedding"}
    return peer


def adamw_kind(optimizer: torch.optim.Optimizer) -> str:
    return "fused" if optimizer.defaults.get("fused") else "default"


def notebook_adamw(device: torch.device) -> str:
    """The kind of AdamW that the notebook's make_optimizer builds on `device`: "fused" or "default"."""
    return adamw_kind(nb.make_optimizer(torch.nn.Linear(2, 2).to(device), LR, WEIGHT_DECAY))


def adamw(model: torch.nn.Module, kind: str) -> torch.optim.AdamW:
    """AdamW over the notebook's parameter groups (nb.make_optimizer: weight decay on matrices only) with its
    settings, as PyTorch's fused kernel (kind "fused": fused=True) or PyTorch's default (a loop of small operations
    on a CPU)."""
    optimizer = nb.make_optimizer(model, LR, WEIGHT_DECAY)
    if adamw_kind(optimizer) == kind:
        return optimizer
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in optimizer.param_groups]
    return torch.optim.AdamW(groups, lr=LR, betas=optimizer.defaults["betas"], fused=True if kind == "fused" else None)


class CallsSeen(TorchFunctionMode):
    """The names of the torch functions called inside the block."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.add(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def default_attention(device: torch.device) -> str:
    """The attention path that the notebook's attention module takes on `device` with `fused = None`, its default (and
    so train()'s path): "fused kernel" where its forward pass calls F.scaled_dot_product_attention, else "explicit".
    Asked of the module itself, so that the benchmark follows the notebook's rule rather than restating it."""
    module = nb.MultiHeadSelfAttention(nb.ViTConfig(embed_dim=8, num_heads=2, depth=1)).to(device)
    assert module.fused is None, "the notebook's attention no longer defaults to fused = None (by device)"
    with torch.no_grad(), CallsSeen() as seen:
        module(torch.zeros(2, 3, 8, device=device))
    return "fused kernel" if "scaled_dot_product_attention" in seen.names else "explicit"


def set_attention(model: torch.nn.Module, attention: str) -> None:
    """Force one attention path on every attention module of the notebook's model."""
    for module in model.modules():
        if isinstance(module, nb.MultiHeadSelfAttention):
            module.fused = attention == "fused kernel"


def bare_step(net, optimizer, xb, yb, device) -> None:
    """Forward, loss, backward, update: what every training loop does, in nb.autocast_for's precision."""
    with nb.autocast_for(device):
        loss = F.cross_entropy(net(xb).float(), yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@dataclasses.dataclass
class Variant:
    model_name: str  # NOTEBOOK or PEER
    mode: str  # "eager" or "compiled"
    attention: str  # "fused kernel" or "explicit" (vit-pytorch's is explicit)
    precision: str  # "float32", "bfloat16"
    adamw: str  # "fused" or "default"
    step_name: str = "bare step"  # or "train_step + EMA"
    model: torch.nn.Module = None
    step: object = None  # one step on (xb, yb)
    default: str = ""  # "yes" where this is the attention path of the notebook's default (fused = None) here

    @property
    def key(self) -> tuple:
        return (self.model_name, self.step_name, self.mode, self.attention, self.precision, self.adamw)


def key(model_name, mode, attention, precision, adamw, step_name="bare step") -> tuple:
    return (model_name, step_name, mode, attention, precision, adamw)


def full_run_precision(device: torch.device) -> torch.dtype:
    """The precision of a full training run of the notebook on this device: CPU_PRECISION "auto" (nb.precision_for,
    by the measured nb.bfloat16_speedup). Its steps run eagerly: the notebook's train() does not compile."""
    with cpu_precision("auto"):
        return nb.precision_for(device)


def make_variants(config, device: torch.device, loop_dtype: torch.dtype) -> list[Variant]:
    """Every variant of the step table, each with its own model (seed 0) and optimiser: both models with the
    notebook's kind of AdamW; with the other kind, the notebook's ViT eager and compiled and vit-pytorch's eager, in
    float32."""
    out = []
    main = notebook_adamw(device)
    other = "default" if main == "fused" else "fused"
    default = default_attention(device)

    def add(model_name, mode, attention, precision, kind=main):
        torch.manual_seed(0)
        if model_name == PEER:
            model = peer_vit(config, device)
        else:
            model = nb.VisionTransformer(config).to(device)
            set_attention(model, attention)
        optimizer = adamw(model, kind)
        net = torch.compile(model) if mode == "compiled" else model
        dtype = precisions(device)[precision]

        def step(xb, yb):
            with cpu_precision(dtype):
                bare_step(net, optimizer, xb, yb, device)

        variant = Variant(model_name, mode, attention, precision, adamw_kind(optimizer), model=model, step=step)
        if model_name == NOTEBOOK and attention == default:
            variant.default = "yes"
        out.append(variant)

    for precision in precisions(device):
        for mode in ("eager", "compiled"):
            add(PEER, mode, "explicit", precision)
            for attention in ("fused kernel", "explicit"):
                if precision == "float32" or attention == "explicit" or mode == "eager":
                    add(NOTEBOOK, mode, attention, precision)
        if precision == "float32":  # the other AdamW: the fused kernel priced by itself; the old benchmark's pairing
            add(NOTEBOOK, "eager", "fused kernel", precision, other)
            add(NOTEBOOK, "compiled", "explicit", precision, other)
            add(PEER, "eager", "explicit", precision, other)
    # the notebook's whole train_step with the weight average as train() runs it: eager, the attention modules left
    # at their default (fused = None), in the precision of a full run
    precision = dtype_name(device, loop_dtype)
    torch.manual_seed(0)
    model = nb.VisionTransformer(config).to(device)
    optimizer, scaler, ema = nb.make_optimizer(model, LR, WEIGHT_DECAY), nb.make_scaler(device), nb.make_ema(model,
                                                                                                         EMA_DECAY)

    def notebook_step(xb, yb):
        with cpu_precision(loop_dtype):
            nb.train_step(model, xb, yb, optimizer, scaler, 0.1, 1.0)
            ema.update_parameters(model)

    out.append(Variant(NOTEBOOK, "eager", default, precision, adamw_kind(optimizer), "train_step + EMA", model,
                       notebook_step, "yes"))
    return out


def time_variants(variants: list[Variant], device, batch_size: int, warmup: int, rounds: int) -> dict:
    """Each variant's step times (s), round by round: key -> list."""
    xb = torch.randn(batch_size, 1, 28, 28, device=device)
    yb = torch.randint(0, 10, (batch_size,), device=device)
    for v in variants:  # a first step each: where torch.compile compiles
        v.model.train()
        synchronize(device)
        start = time.perf_counter()
        v.step(xb, yb)
        synchronize(device)
        if v.mode == "compiled":
            print(f"first step of {v.model_name}, {v.step_name}, compiled, {v.attention}, {v.precision}: "
                  f"{time.perf_counter() - start:.1f} s (compilation included)", flush=True)
    times = {v.key: [] for v in variants}
    order = list(variants)
    shuffler = random.Random(0)
    for round_ in range(warmup + rounds):
        shuffler.shuffle(order)
        for v in order:
            synchronize(device)
            start = time.perf_counter()
            v.step(xb, yb)
            synchronize(device)
            if round_ >= warmup:
                times[v.key].append(time.perf_counter() - start)
    return times


def print_step_table(variants: list[Variant], times: dict, batch_size: int) -> None:
    print(f"\nStep table: median ms per step of {batch_size} images, with the quartiles of the rounds; default: "
          "the attention path that the notebook's default (fused = None) takes on this device, train()'s path")
    header = (f"{'#':>2}  {'model':<15} {'step':<16} {'mode':<8} {'attention':<12} {'precision':<9} {'AdamW':<7} "
              f"{'params':>7} {'median ms':>9} {'quartiles ms':>13} {'default':>7}")
    print(header)
    print("-" * len(header))
    for i, v in enumerate(variants, 1):
        q1, q2, q3 = (1000 * q for q in quartiles(times[v.key]))
        params = sum(p.numel() for p in v.model.parameters())
        print(f"{i:>2}  {v.model_name:<15} {v.step_name:<16} {v.mode:<8} {v.attention:<12} {v.precision:<9} "
              f"{v.adamw:<7} {params:>7,} {q2:>9.1f} {f'{q1:.1f}-{q3:.1f}':>13} {v.default:>7}")


def comparisons(device, loop_precision: str, loop_attention: str) -> list[tuple]:
    """(what the ratio prices, numerator key, denominator key): each pair differs in one thing only. `a`: the
    notebook's kind of AdamW, which both models take in every row but the AdamW pairs."""
    a = notebook_adamw(device)
    out = []
    f32 = "float32" if "float32" in precisions(device) else None
    for p in precisions(device):
        for mode in ("eager", "compiled"):
            for attention in ("explicit", "fused kernel"):
                out.append((f"notebook/vit-pytorch, {mode}, {p} (notebook: {attention})",
                            key(NOTEBOOK, mode, attention, p, a), key(PEER, mode, "explicit", p, a)))
    for p in precisions(device):
        for mode in ("eager", "compiled"):
            out.append((f"fused kernel/explicit attention, notebook {mode}, {p}",
                        key(NOTEBOOK, mode, "fused kernel", p, a), key(NOTEBOOK, mode, "explicit", p, a)))
    for p in precisions(device):
        out += [(f"compiled/eager, notebook, {p} (explicit attention)", key(NOTEBOOK, "compiled", "explicit", p, a),
                 key(NOTEBOOK, "eager", "explicit", p, a)),
                (f"compiled/eager, vit-pytorch, {p}", key(PEER, "compiled", "explicit", p, a),
                 key(PEER, "eager", "explicit", p, a))]
    if "bfloat16" in precisions(device) and f32:
        for mode in ("eager", "compiled"):
            out.append((f"bfloat16/float32, notebook {mode} (explicit attention)",
                        key(NOTEBOOK, mode, "explicit", "bfloat16", a), key(NOTEBOOK, mode, "explicit", f32, a)))
        for mode in ("eager", "compiled"):
            out.append((f"bfloat16/float32, vit-pytorch {mode}", key(PEER, mode, "explicit", "bfloat16", a),
                        key(PEER, mode, "explicit", f32, a)))
    if f32:
        out += [("fused/default AdamW, notebook eager, float32 (fused kernel)",
                 key(NOTEBOOK, "eager", "fused kernel", f32, "fused"),
                 key(NOTEBOOK, "eager", "fused kernel", f32, "default")),
                ("fused/default AdamW, notebook compiled, float32 (explicit)",
                 key(NOTEBOOK, "compiled", "explicit", f32, "fused"),
                 key(NOTEBOOK, "compiled", "explicit", f32, "default")),
                ("fused/default AdamW, vit-pytorch eager, float32", key(PEER, "eager", "explicit", f32, "fused"),
                 key(PEER, "eager", "explicit", f32, "default")),
                ("old benchmark's pairing: notebook eager (fused AdamW)/vit-pytorch eager (default AdamW), float32",
                 key(NOTEBOOK, "eager", "fused kernel", f32, "fused"), key(PEER, "eager", "explicit", f32, "default")),
                ("old benchmark's pairing: notebook compiled (fused AdamW)/vit-pytorch eager (default AdamW), float32",
                 key(NOTEBOOK, "compiled", "explicit", f32, "fused"), key(PEER, "eager", "explicit", f32, "default"))]
    out.append((f"train_step + clipping + EMA/bare step, notebook eager, {loop_precision} (a full run's mode)",
                key(NOTEBOOK, "eager", loop_attention, loop_precision, a, step_name="train_step + EMA"),
                key(NOTEBOOK, "eager", loop_attention, loop_precision, a)))
    return out


def print_ratios(variants: list[Variant], times: dict, pairs: list[tuple]) -> dict:
    """Each pair's ratio of step times (below 1: the numerator is faster), as the median of the per-round ratios."""
    number = {v.key: i for i, v in enumerate(variants, 1)}
    print("\nRatios of step times, numerator/denominator (below 1.00: the first is faster); median of the per-round "
          "ratios [quartiles]")
    width = max(len(text) for text, *_ in pairs)
    header = f"{'ratio':>5} {'[quartiles]':>13}  {'rows':>7}  what it prices"
    print(header)
    print("-" * (len(header) + width - len("what it prices")))
    results = {}
    for text, top, bottom in pairs:
        if top not in times or bottom not in times:
            continue
        per_round = [a / b for a, b in zip(times[top], times[bottom])]
        q1, q2, q3 = quartiles(per_round)
        results[text] = q2
        print(f"{q2:>5.2f} {f'[{q1:.2f}-{q3:.2f}]':>13}  {f'{number[top]}/{number[bottom]}':>7}  {text}")
    return results


def matmul_seconds(dtype: torch.dtype, m: int, k: int, n: int, repeats: int = 20) -> float:
    """Seconds per (m, k) @ (k, n) product on the CPU: the median of 5 timings of `repeats` products, as
    nb.bfloat16_speedup times them."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        times.append(time.perf_counter() - start)
    return statistics.median(times) / repeats


def print_matmul_rates() -> None:
    print("\nMatrix products of the model's shapes on the CPU (GFLOP/s = 2mkn / seconds; median of 5 timings of 20):")
    print(f"{'product':<8} {'(m, k) @ (k, n)':<22} {'float32':>8} {'bfloat16':>9} {'bf16/f32':>9}")
    for name, (m, k, n) in MATMUL_SHAPES.items():
        rate = {dtype: 2 * m * k * n / matmul_seconds(dtype, m, k, n) / 1e9 for dtype in (torch.float32,
                                                                                          torch.bfloat16)}
        print(f"{name:<8} {f'({m}, {k}) @ ({k}, {n})':<22} {rate[torch.float32]:>8.1f} "
              f"{rate[torch.bfloat16]:>9.1f} {rate[torch.bfloat16] / rate[torch.float32]:>9.2f}")
    print(f"nb.bfloat16_speedup() (the notebook's rule: bfloat16 where >= {nb.BFLOAT16_MIN_SPEEDUP}): "
          f"{nb.bfloat16_speedup():.2f}")


def random_splits(n: int, device) -> object:
    """n random training images (and 256 for validation and test) in the notebook's MNISTSplits."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n + 256, 1, 28, 28, generator=generator).to(device)
    y = torch.randint(0, 10, (n + 256,), generator=generator).to(device)
    return nb.MNISTSplits(x[:n], y[:n], x[n:], y[n:], x[n:], y[n:], mean=0.5, std=0.29)


TRAIN_SETTINGS = dict(lr=LR, weight_decay=WEIGHT_DECAY, warmup_epochs=1, label_smoothing=0.1, grad_clip=1.0,
                      augment=True, ema_decay=EMA_DECAY)  # the notebook's, but one warm-up epoch


@contextlib.contextmanager
def compiled_steps(model: torch.nn.Module, batch_size: int):
    """The benchmark's own compiling, for the notebook's train(), which does not compile: inside the block, every
    nb.train_step of `model` on a full batch runs through torch.compile(model) (compiled at its first step); a smaller
    last batch runs eagerly rather than being compiled a second time. train() looks train_step up in the notebook's
    namespace at each step, so replacing it there is enough; the weight average and validation see `model` itself."""
    compiled, notebook_step = torch.compile(model), nb.train_step

    def step(net, xb, *args, **kwargs):
        return notebook_step(compiled if net is model and len(xb) == batch_size else net, xb, *args, **kwargs)

    nb.train_step = step
    try:
        yield
    finally:
        nb.train_step = notebook_step


def train_epochs(device, batch_size: int, n: int, epochs: int, dtype: torch.dtype, compiled: bool) -> dict:
    """The notebook's own train() of its ViT (augmentation, weight average, progress bar) on n random images in
    `dtype`, eager as the notebook trains or with its steps compiled (compiled_steps): its history."""
    torch.manual_seed(0)
    model = nb.VisionTransformer(nb.ViTConfig()).to(device)
    steps = compiled_steps(model, batch_size) if compiled else contextlib.nullcontext()
    with steps, cpu_precision(dtype), contextlib.redirect_stdout(io.StringIO()):  # its progress bars, epoch lines
        return nb.train(model, random_splits(n, device), epochs=epochs, batch_size=batch_size, name="benchmark",
                        **TRAIN_SETTINGS)


LOOP_PARTS = ("next batch (shuffle, index, progress bar)", "augmentation + normalisation",
              "train_step (forward, loss, backward, clipping, AdamW)", "learning-rate schedule",
              "weight average (AveragedModel)", "loss and accuracy sums (log.count)")


def loop_copy(device, batch_size: int, steps: int, dtype: torch.dtype, profiler=None) -> dict:
    """train()'s loop written out from the notebook's parts (its batches under EpochLog's progress bar, random_affine,
    train_step, the schedule, the weight average, EpochLog.count), eager with the attention modules at their default,
    as train() runs it; its second epoch timed part by part: part -> seconds, and "epoch" -> the epoch's seconds.
    Validation is left out (train() does not time it either)."""
    from torch.profiler import record_function

    label = record_function if profiler is not None else (lambda name: contextlib.nullcontext())
    torch.manual_seed(0)
    model = nb.VisionTransformer(nb.ViTConfig()).to(device)
    data = random_splits(batch_size * steps, device)
    optimizer, scaler, ema = nb.make_optimizer(model, LR, WEIGHT_DECAY), nb.make_scaler(device), nb.make_ema(model,
                                                                                                         EMA_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, nb.warmup_cosine(steps, 2 * steps))
    log = nb.EpochLog("benchmark", 2)
    seconds = dict.fromkeys(LOOP_PARTS, 0.0)
    for epoch in (1, 2):
        model.train()
        with contextlib.redirect_stdout(io.StringIO()):  # the progress bar writes to sys.stdout
            bar = log.progress(nb.batches(data.x_train, data.y_train, batch_size, shuffle=True), steps, epoch)
        batches = iter(bar)
        timed = epoch == 2
        context = profiler if timed and profiler is not None else contextlib.nullcontext()
        start = time.perf_counter()
        with context, cpu_precision(dtype):
            while True:
                marks = [time.perf_counter()]
                with label(LOOP_PARTS[0]):
                    batch = next(batches, None)
                if batch is None:
                    break
                xb, yb = batch
                marks.append(time.perf_counter())
                with label(LOOP_PARTS[1]):
                    xb = data.normalize(nb.random_affine(xb))
                    synchronize(device)
                marks.append(time.perf_counter())
                with label(LOOP_PARTS[2]):
                    logits, loss = nb.train_step(model, xb, yb, optimizer, scaler, 0.1, 1.0)
                    synchronize(device)
                marks.append(time.perf_counter())
                with label(LOOP_PARTS[3]):
                    schedule.step()
                marks.append(time.perf_counter())
                with label(LOOP_PARTS[4]):
                    ema.update_parameters(model)
                    synchronize(device)
                marks.append(time.perf_counter())
                with label(LOOP_PARTS[5]):
                    log.count(logits, loss, yb)
                    synchronize(device)
                marks.append(time.perf_counter())
                if timed:
                    for part, a, b in zip(LOOP_PARTS, marks, marks[1:]):
                        seconds[part] += b - a
        seconds["epoch"] = time.perf_counter() - start
    return seconds


def step_block(variant: Variant, device, batch_size: int, steps: int) -> float:
    """Images per second of `steps` steps of a variant in a row."""
    xb = torch.randn(batch_size, 1, 28, 28, device=device)
    yb = torch.randint(0, 10, (batch_size,), device=device)
    variant.model.train()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        variant.step(xb, yb)
    synchronize(device)
    return batch_size * steps / (time.perf_counter() - start)


def loop_against_step(variants: list[Variant], device, batch_size: int, steps: int, dtype: torch.dtype,
                      profile: bool) -> None:
    """train()'s loop against the bare step and train_step + EMA, as a full run runs: eager, in its precision."""
    precision, attention = dtype_name(device, dtype), default_attention(device)
    bare = next(v for v in variants if v.key == key(NOTEBOOK, "eager", attention, precision, notebook_adamw(device)))
    whole = next(v for v in variants if v.step_name == "train_step + EMA")
    print(f"\nLoop: the notebook's train() in a full run's mode ({precision}, eager, {attention} attention; "
          f"{steps} batches of {batch_size} per epoch, two epochs, the second timed) against blocks of {steps} steps "
          "timed just before and just after it (images/s)")
    before = {name: step_block(v, device, batch_size, steps) for name, v in (("bare", bare), ("whole", whole))}
    history = train_epochs(device, batch_size, batch_size * steps, 2, dtype, compiled=False)
    after = {name: step_block(v, device, batch_size, steps) for name, v in (("bare", bare), ("whole", whole))}
    # train()'s own timing of the epoch (EpochLog): from its first batch to its log line, so it includes validating
    # the 256 images of random_splits: forward passes only, by estimate the work of about one of 200 training steps
    loop = batch_size * steps / history["seconds"][1]
    bare_rate = (before["bare"] + after["bare"]) / 2
    whole_rate = (before["whole"] + after["whole"]) / 2
    print(f"train() loop ({precision}, eager), second epoch: {loop:,.0f} images/s "
          f"({history['seconds'][1]:.2f} s, train()'s own timing, its validation of 256 images included)")
    print(f"bare step: {bare_rate:,.0f} images/s (before {before['bare']:,.0f}, after {after['bare']:,.0f}); "
          f"loop/bare step {loop / bare_rate:.2f}")
    print(f"train_step + clipping + EMA: {whole_rate:,.0f} images/s (before {before['whole']:,.0f}, after "
          f"{after['whole']:,.0f}); loop/train_step + EMA {loop / whole_rate:.2f}")
    profiler = None
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        profiler = torch_profile(activities=activities)
    parts = loop_copy(device, batch_size, steps, dtype, profiler)
    total = parts.pop("epoch")
    print(f"\nThe loop written out from the notebook's parts, its second epoch timed part by part "
          f"({batch_size * steps / total:,.0f} images/s{' under the profiler' if profile else ''}):")
    print(f"{'ms per step':>11} {'share':>6}  part")
    for part, s in list(parts.items()) + [("the rest (the loop's own Python)", total - sum(parts.values()))]:
        print(f"{1000 * s / steps:>11.2f} {s / total:>6.1%}  {part}")
    print(f"{1000 * total / steps:>11.2f} {1:>6.1%}  the epoch")
    if profiler is not None:
        print(f"\nWhere the second epoch's time goes (torch.profiler, {steps} steps), by self CPU time:")
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


EPOCH_KINDS = "float32 eager,bfloat16 eager,float32 compiled,bfloat16 compiled"


def seconds_per_epoch(device, batch_size: int, rounds: int, n: int, kinds: list[str]) -> None:
    """Seconds per epoch of train() on n images (the ViT's training set: 55,000), one-epoch runs of each kind taking
    turns, after an untimed short run of each compiled kind (the compilation, once per process, is left out).
    "eager" is train() as the notebook runs it; "compiled" its steps through torch.compile (compiled_steps)."""
    print(f"\nEpochs: seconds per epoch of train() on {n:,} random images (batch {batch_size}; as train() logs them, "
          "its validation of 256 images included), "
          f"one-epoch runs taking turns, {rounds} round{'s' * (rounds > 1)}; eager as the notebook trains, compiled "
          "by this benchmark")
    for kind in kinds:
        precision, mode = kind.rsplit(" ", 1) if " " in kind else (kind, "")
        if precision not in precisions(device) or mode not in ("eager", "compiled"):
            raise SystemExit(f"--epoch-kinds: {kind!r} is not '<{'|'.join(precisions(device))}> <eager|compiled>'")
    for kind in kinds:  # a short untimed run of each compiled kind first: each epoch below is compiled already
        precision, mode = kind.rsplit(" ", 1)
        if mode == "compiled":
            train_epochs(device, batch_size, 4 * batch_size, 1, precisions(device)[precision], True)
    seconds = {kind: [] for kind in kinds}
    for round_ in range(rounds):
        for kind in kinds:
            precision, mode = kind.rsplit(" ", 1)
            history = train_epochs(device, batch_size, n, 1, precisions(device)[precision], mode == "compiled")
            seconds[kind].append(history["seconds"][0])
            print(f"round {round_ + 1}: {kind}: {seconds[kind][-1]:.1f} s", flush=True)
    for kind, values in seconds.items():
        print(f"train() of the ViT, {kind}: {statistics.median(values):.1f} s per epoch (median of {len(values)}: "
              f"{', '.join(f'{s:.1f}' for s in values)})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--loop-steps", type=int, default=200, help="batches per train() epoch (two); 0 skips it")
    parser.add_argument("--epochs", type=int, default=0, help="rounds of one-epoch train() runs of each kind")
    parser.add_argument("--epoch-kinds", default=EPOCH_KINDS,
                        help="comma-separated '<precision> <eager|compiled>' (default: %(default)s)")
    parser.add_argument("--epoch-images", type=int, default=55_000, help="images per --epochs epoch")
    parser.add_argument("--profile", action="store_true", help="the loop's second epoch under torch.profiler")
    parser.add_argument("--out", type=Path, help="also write the command, machine and whole output to this file")
    args = parser.parse_args()
    tee = Tee(sys.stdout)
    command = "python benchmarks/train_step.py " + shlex.join(sys.argv[1:])
    with contextlib.redirect_stdout(tee):
        device = nb.pick_device(args.device)
        print(f"command: {command.strip()}")
        print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
        print(f"machine: {cpu_description()}")
        print(f"device: {nb.device_name(device)}; torch {torch.__version__}, "
              f"vit-pytorch {metadata.version('vit-pytorch')}, Python {platform.python_version()}")
        print(f"rounds: batch {args.batch_size}, {args.warmup} warm-up + {args.rounds} timed rounds")
        loop_dtype, loop_attention = full_run_precision(device), default_attention(device)
        print(f"a full training run here: {dtype_name(device, loop_dtype)} (nb.precision_for with CPU_PRECISION "
              f"'auto'), eager (the notebook's train() does not compile: compiled rows are this benchmark's own)")
        print(f"attention: with fused = None, the notebook's default, its modules take the {loop_attention} path "
              "here; the step table forces each path (fused = True or False)")
        print(f"AdamW: the notebook's make_optimizer builds the {notebook_adamw(device)} kind; both models take it "
              "in every row but the AdamW pairs")
        variants = make_variants(nb.ViTConfig(), device, loop_dtype)
        times = time_variants(variants, device, args.batch_size, args.warmup, args.rounds)
        print_step_table(variants, times, args.batch_size)
        print_ratios(variants, times, comparisons(device, dtype_name(device, loop_dtype), loop_attention))
        if device.type == "cpu":
            print_matmul_rates()
        if args.loop_steps:
            loop_against_step(variants, device, args.batch_size, args.loop_steps, loop_dtype, args.profile)
        if args.epochs:
            kinds = [kind.strip() for kind in args.epoch_kinds.split(",") if kind.strip()]
            seconds_per_epoch(device, args.batch_size, args.epochs, args.epoch_images, kinds)
    if args.out:
        tee.save(args.out)


if __name__ == "__main__":
    main()
