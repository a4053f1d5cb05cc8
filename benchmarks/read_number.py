"""How long nb.read_number takes to read a picture of a 4-digit number once the model is loaded, per kind of
picture, model and PyTorch thread count, and where that time goes.

    python benchmarks/read_number.py                     # 30 rounds, read with 2 and with 1 threads
    python benchmarks/read_number.py --rounds 2          # a smoke test (what tests/test_benchmark.py runs)
    python benchmarks/read_number.py --out benchmarks/results/read_number.txt   # also the whole output, in a file
    python benchmarks/read_number.py --profile 20        # also cProfile's 20 costliest functions, per kind
    python benchmarks/read_number.py --blas-threads 1    # NumPy's BLAS limited to one thread during the reads

The goal (issue 34): a 4-digit picture is read in at most about 100 ms on 2 CPU cores once the model is loaded. Three
kinds of picture, a new one of each kind every round:
- drawn: the pad's 700 x 280 canvas with a 4-digit number of the notebook's strokes (nb.draw_strokes of
  nb.pad_strokes), the digits of "1734" in an order that changes from round to round, the hand's seed too; decoded
  from its PNG before the clock starts, as the pad's observer does;
- plain, ruled: a photo-like picture of 4 random MNIST test digits side by side, 3 to 8 of MNIST's pixels apart,
  enlarged 4 times, on paper of an uneven shade under a slope of light, dark ink on light paper four times in five,
  blurred and noisy (about 160 x 400 pixels, uint8); on ruled paper with printed lines 20 to 40 pixels apart, tilted
  by up to 3 degrees, and a margin line one time in two.
The models are those the pad offers (nb.pad_models of checkpoints/: the ViT and the CNN, each with its calibration).
After --warmup reads of each model with each thread count, every round reads each picture once with each pair of
model and --threads count (PyTorch's threads set by nb.torch_threads, outside the clock), the pairs in an order rotated
from picture to picture, so that a change in the machine's load touches them alike. The table gives, per kind, model
and thread count, the median and the 90th percentile of the wall time, the median of the process's CPU time (all
threads), and how many pictures were read exactly. The breakdown gives the mean wall time of each step of
read_number (its calls of nb.page_ink and its parts, nb.ink_pieces, nb.digit_from_ink for every candidate digit, and
nb.calibrated_probabilities, the model's one batch), timed in the same reads by wrapping those functions in the
notebook's namespace (a few microseconds a read); "the rest" is read_number's own code (the cut candidates' cropping,
choose_cuts). NumPy and SciPy, which do most of the preparation, do not follow PyTorch's thread count: NumPy's BLAS
(OpenBLAS; page_ink's least squares fit of the paper) keeps its own, which --blas-threads limits during the reads.
"""

import argparse
import contextlib
import cProfile
import datetime
import io
import itertools
import math
import os
import platform
import pstats
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from scipy import ndimage
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import Tee, cpu_description, quartiles  # noqa: E402
from definitions import ROOT, load_definitions, mnist_data_dir  # noqa: E402

nb = load_definitions()

KINDS = ("drawn", "plain", "ruled")
ORDERS = ["".join(p) for p in itertools.permutations("1734")]  # the 24 orders of the pad's four digits
STEPS = ("load_grey", "ink_contrast", "remove_lines", "page_ink", "ink_pieces", "digit_from_ink",
         "calibrated_probabilities")  # the notebook's functions timed inside read_number
PARTS = {"load_grey": "  picture to grey (load_grey)", "ink_contrast": "  paper's level (ink_contrast)",
         "remove_lines": "  printed lines (remove_lines)", "page_ink": "preparation (page_ink), all",
         "ink_pieces": "cutting into pieces (ink_pieces)", "digit_from_ink": "candidates to 28x28 (digit_from_ink)",
         "calibrated_probabilities": "the model (calibrated_probabilities)", "rest": "the rest of read_number",
         "total": "read_number"}


def drawn_picture(rng: np.random.Generator) -> tuple[Image.Image, str]:
    """The pad's canvas with a 4-digit number of "1734"'s digits in a random order, decoded as the pad decodes it."""
    number = ORDERS[rng.integers(len(ORDERS))]
    picture = Image.open(io.BytesIO(nb.draw_strokes(nb.pad_strokes(number), seed=int(rng.integers(1 << 16)))))
    picture.load()
    return picture, number


def compose(digits: list[np.ndarray], gaps: list[int], margin: int = 6) -> np.ndarray:
    """MNIST digits (28, 28) in [0, 1] side by side, each cropped to its ink's columns, `gaps` pixels apart, in a
    band with `margin` pixels around them: white ink on black."""
    crops = [d[:, d.any(0)] for d in digits]
    ink = np.zeros((28 + 2 * margin, sum(c.shape[1] for c in crops) + sum(gaps) + 2 * margin))
    left = margin
    for crop, gap in zip(crops, [*gaps, 0], strict=True):
        ink[margin:margin + 28, left:left + crop.shape[1]] = crop
        left += crop.shape[1] + gap
    return ink


def ruled_lines(shape: tuple[int, int], rng: np.random.Generator, spacing: float) -> np.ndarray:
    """(H, W) strength in [0, 1] of ruled paper's printed lines `spacing` pixels apart, anti-aliased, tilted by up to
    3 degrees, 1 to 3 pixels thick and 15% to 50% as strong as the ink; a margin line one time in two."""
    tilt = math.radians(rng.uniform(-3, 3))
    y, x = np.indices(shape, dtype=np.float64)
    across, along = y * math.cos(tilt) - x * math.sin(tilt), x * math.cos(tilt) + y * math.sin(tilt)
    distance = np.abs((across - rng.uniform(0, spacing) + spacing / 2) % spacing - spacing / 2)
    lines = rng.uniform(0.15, 0.5) * np.clip(rng.uniform(1, 3) / 2 + 0.5 - distance, 0, 1)
    if rng.random() < 0.5:
        margin = np.abs(along - rng.uniform(0.1, 0.25) * shape[1])
        lines = np.maximum(lines, rng.uniform(0.15, 0.5) * np.clip(rng.uniform(1, 3) / 2 + 0.5 - margin, 0, 1))
    return lines


def photo(ink: np.ndarray, rng: np.random.Generator, paper: str, scale: int = 4) -> np.ndarray:
    """White-on-black ink -> a photo-like uint8 picture of it written on plain or ruled paper, `scale` times larger:
    an uneven paper shade under a slope of light, dark ink four times in five (else light ink on dark paper), blurred
    and noisy."""
    H, W = ink.shape[0] * scale, ink.shape[1] * scale
    ink = nb.resize(ink, (W, H), Image.Resampling.BICUBIC).clip(0, 1)
    if paper == "ruled":
        ink = np.maximum(ink, ruled_lines((H, W), rng, rng.uniform(5, 10) * scale))
    paper_shade, pen = rng.uniform(0.6, 0.95), rng.uniform(0.05, 0.35)
    if rng.random() >= 0.8:
        paper_shade, pen = 1 - paper_shade, 1 - pen
    y, x = np.indices((H, W)) / max(H, W)
    angle = rng.uniform(0, 2 * math.pi)
    light = 1 + rng.uniform(0, 0.3) * ((x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle))
    picture = ndimage.gaussian_filter((paper_shade + (pen - paper_shade) * ink) * light, rng.uniform(0.5, 2.0))
    picture += rng.normal(0, rng.uniform(0.01, 0.04), picture.shape)
    return (picture.clip(0, 1) * 255).round().astype(np.uint8)


def photo_picture(rng: np.random.Generator, paper: str, test) -> tuple[np.ndarray, str]:
    """A photo-like picture of 4 random MNIST test digits, 3 to 8 pixels apart, and the number they make."""
    which = rng.choice(len(test.data), 4, replace=False)
    digits = [test.data[i].numpy() / 255 for i in which]
    ink = compose(digits, [int(g) for g in rng.integers(3, 9, 3)])
    return photo(ink, rng, paper), "".join(str(int(test.targets[i])) for i in which)


def pictures_of(kind: str, rounds: int, test) -> list[tuple[object, str]]:
    rng = np.random.default_rng([KINDS.index(kind), 34])
    if kind == "drawn":
        return [drawn_picture(rng) for _ in range(rounds)]
    return [photo_picture(rng, kind, test) for _ in range(rounds)]


class StepTimer:
    """Inside `timing()`, the notebook's functions of STEPS add their wall time, in ms, to `spent` (the outermost call
    of each only), and calibrated_probabilities its batch size to `batch`."""

    def __init__(self):
        self.spent, self.batch, self.depth = dict.fromkeys(STEPS, 0.0), 0, dict.fromkeys(STEPS, 0)

    def wrapped(self, name: str, function):
        def timed(*args, **kwargs):
            self.depth[name] += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.depth[name] -= 1
                if not self.depth[name]:
                    self.spent[name] += 1000 * (time.perf_counter() - start)
                if name == "calibrated_probabilities":
                    self.batch += len(args[1])
        return timed

    @contextlib.contextmanager
    def timing(self):
        originals = {name: getattr(nb, name) for name in STEPS}
        for name, function in originals.items():
            setattr(nb, name, self.wrapped(name, function))
        try:
            yield
        finally:
            for name, function in originals.items():
                setattr(nb, name, function)

    def reset(self) -> None:
        self.spent, self.batch = dict.fromkeys(STEPS, 0.0), 0


def read(model, calibration, picture, threads: int, timer: StepTimer) -> tuple[float, float, dict, int, str]:
    """One read_number of `picture` with `threads` PyTorch threads: wall and CPU ms, ms per step, the model's batch
    size and the number read."""
    with nb.torch_threads(threads):
        timer.reset()
        start, start_cpu = time.perf_counter(), time.process_time()
        digits = nb.read_number(model, picture, calibration)
        wall, cpu = 1000 * (time.perf_counter() - start), 1000 * (time.process_time() - start_cpu)
    steps = dict(timer.spent, total=wall)
    steps["rest"] = wall - steps["page_ink"] - steps["ink_pieces"] - steps["digit_from_ink"] - steps[
        "calibrated_probabilities"]
    return wall, cpu, steps, timer.batch, "".join(str(d.top3[0][0]) for d in digits)


def profile(models: dict, pictures: dict, threads: int, top: int) -> None:
    """cProfile of read_number over every picture of each kind with each model and `threads` threads: the `top`
    functions by their own time, then by cumulative time (its timings carry cProfile's overhead)."""
    for kind, kind_pictures in pictures.items():
        profiler = cProfile.Profile()
        with nb.torch_threads(threads):
            profiler.enable()
            for model, calibration in models.values():
                for picture, _ in kind_pictures:
                    nb.read_number(model, picture, calibration)
            profiler.disable()
        reads = len(models) * len(kind_pictures)
        for order in ("tottime", "cumulative"):
            print(f"\ncProfile, {kind}: {reads} reads ({', '.join(models)}), {threads} thread{'s' * (threads != 1)}, "
                  f"sorted by {order} (seconds in all)")
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order).print_stats(top)
            lines = text.getvalue().splitlines()
            header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
            print("\n".join(line for line in lines[header:] if line.strip()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="pictures of each kind (default %(default)s)")
    parser.add_argument("--threads", default="2,1", help="comma-separated PyTorch thread counts (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed reads per model and count (default %(default)s)")
    parser.add_argument("--blas-threads", type=int, metavar="N",
                        help="limit NumPy's BLAS to N threads during the reads (threadpoolctl; default: as it is)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile the reads with the first --threads count and print the N costliest "
                             "functions per kind (default: no profile)")
    parser.add_argument("--out", type=Path, help="also write the command, machine and whole output to this file")
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",") if t.strip()]
    if args.rounds < 1 or args.warmup < 0 or not counts or min(counts) < 1 or (args.blas_threads or 1) < 1:
        parser.error("--rounds, --blas-threads and every --threads count must be at least 1, --warmup at least 0")
    tee = Tee(sys.stdout)
    command = "python benchmarks/read_number.py " + shlex.join(sys.argv[1:])
    with contextlib.redirect_stdout(tee):
        print(f"command: {command.strip()}")
        print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
        print(f"machine: {cpu_description()}")
        print(f"device: CPU, {os.cpu_count()} CPUs; torch {torch.__version__} ({torch.get_num_threads()} threads by "
              f"default), NumPy {np.__version__}, Python {platform.python_version()}")
        blas = [f"{pool['internal_api']} {pool['version']}, {pool['num_threads']} threads" for pool in threadpool_info()
                if pool["user_api"] == "blas"]
        limit = f"; limited to {args.blas_threads} during the reads" if args.blas_threads else ""
        print(f"NumPy's BLAS: {'; '.join(blas) or 'none loaded'} (OPENBLAS_NUM_THREADS="
              f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}){limit}")
        print(f"load average (1 min) at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        models = nb.pad_models(ROOT / "checkpoints")
        if not models:
            raise SystemExit(f"no model of {list(nb.CHECKPOINT_FILES.values())} in checkpoints/: nothing to time")
        test = torchvision.datasets.MNIST(mnist_data_dir(), train=False, download=True)
        pictures = {kind: pictures_of(kind, args.rounds, test) for kind in KINDS}
        for kind, kind_pictures in pictures.items():
            sizes = sorted({np.asarray(p).shape[:2] for p, _ in kind_pictures}, key=lambda s: s[1])
            print(f"{kind}: {len(kind_pictures)} pictures of 4 digits, H x W from {sizes[0][0]} x {sizes[0][1]} to "
                  f"{sizes[-1][0]} x {sizes[-1][1]}")
        pairs = [(name, threads) for threads in counts for name in models]
        print(f"each read once by every model and PyTorch thread count ({', '.join(map(str, counts))}) in a rotated "
              f"order, after {args.warmup} warm-up read{'s' * (args.warmup != 1)} of each; models: {', '.join(models)}")
        timer = StepTimer()
        results = {(kind, *pair): [] for kind in KINDS for pair in pairs}  # -> [(wall, cpu, steps, batch, read)]
        blas_limit = threadpool_limits(args.blas_threads, "blas") if args.blas_threads else contextlib.nullcontext()
        with blas_limit, timer.timing():
            for name, threads in pairs:  # lazy imports, allocations, thread pools
                for picture, _ in itertools.islice(itertools.cycle(pictures["drawn"]), args.warmup):
                    read(*models[name], picture, threads, timer)
            rotation = 0
            for i in range(args.rounds):
                for kind in KINDS:
                    picture, number = pictures[kind][i]
                    k = rotation % len(pairs)
                    rotation += 1
                    for name, threads in pairs[k:] + pairs[:k]:
                        wall, cpu, steps, batch, said = read(*models[name], picture, threads, timer)
                        results[kind, name, threads].append((wall, cpu, steps, batch, said == number))
        print()
        header = (f"{'kind':>6} {'model':>5} {'threads':>7} {'wall median ms':>14} {'wall p90 ms':>11} "
                  f"{'CPU median ms':>13} {'read exactly':>12}")
        print(header)
        print("-" * len(header))
        for kind in KINDS:
            for name, threads in sorted(pairs, key=lambda p: (list(models).index(p[0]), p[1])):
                runs = results[kind, name, threads]
                wall = [r[0] for r in runs]
                print(f"{kind:>6} {name:>5} {threads:>7} {np.median(wall):>14.0f} {np.quantile(wall, 0.9):>11.0f} "
                      f"{np.median([r[1] for r in runs]):>13.0f} {sum(r[4] for r in runs):>7}/{len(runs)}")
        if 1 in counts and len(counts) > 1:
            print()
            print("Wall time against one thread, picture by picture: median of the per-picture ratios (quartiles); "
                  "above 1.00 the count is slower")
            for kind in KINDS:
                for name in models:
                    for threads in counts:
                        if threads != 1:
                            q1, median, q3 = quartiles([a[0] / b[0] for a, b in zip(
                                results[kind, name, threads], results[kind, name, 1], strict=True)])
                            print(f"  {kind}, {name}: {threads} threads / 1 thread: {median:.2f} ({q1:.2f}-{q3:.2f})")
        for threads in counts:
            print()
            print(f"Where the time goes with {threads} thread{'s' * (threads != 1)}: mean ms per read (share of the "
                  f"mean read); the model's batch: candidate digits per read")
            columns = [(kind, name) for kind in KINDS for name in models]
            head = f"{'step':<38}" + "".join(f"{f'{kind} {name}':>15}" for kind, name in columns)
            print(head)
            print("-" * len(head))
            for part, label in PARTS.items():
                cells = []
                for kind, name in columns:
                    runs = results[kind, name, threads]
                    mean = statistics.fmean(r[2][part] for r in runs)
                    total = statistics.fmean(r[2]["total"] for r in runs)
                    cells.append(f"{mean:>8.1f} ({100 * mean / total:>3.0f}%)" if part != "total" else f"{mean:>14.1f}")
                print(f"{label:<38}" + "".join(f"{c:>15}" for c in cells))
            print(f"{'the model batch (digits)':<38}" + "".join(
                f"{statistics.fmean(r[3] for r in results[kind, name, threads]):>15.1f}" for kind, name in columns))
        if args.profile:
            with threadpool_limits(args.blas_threads, "blas") if args.blas_threads else contextlib.nullcontext():
                profile(models, pictures, counts[0], args.profile)
        print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    if args.out:
        tee.save(args.out)


if __name__ == "__main__":
    main()
