"""The drawing pad's latency: from the end of a stroke to the updated view, in Python, per model and thread count.

    python benchmarks/pad_latency.py                     # 60 strokes per model, read with 1 and with 2 threads
    python benchmarks/pad_latency.py --strokes 2         # a smoke test (what tests/test_benchmark.py runs)
    python benchmarks/pad_latency.py --out benchmarks/results/pad_latency.txt   # also the whole output, in a file

Each stroke is a picture as the canvas sends it (a PNG data URL of the pad's 700 x 280 canvas, one per stroke's end
while the numbers 1734, 7 and 41 are drawn with the notebook's strokes), set on the widget as the browser's message
does: the observer decodes it, runs pad_view (read_number, and each digit's rollout for the ViT), renders the view and
encodes it. The models are those the pad offers (nb.pad_models of checkpoints/). The notebook's pad reads a stroke with
one PyTorch thread (nb.torch_threads(1) in DrawingPad._read); here each stroke is read once with each count of --threads
(the pad's torch_threads made to set that count), the counts in a rotated order from stroke to stroke, so that a change
in the machine's load touches them alike. The table gives the median and the 90th percentile of the wall time and of the
process's CPU time (all threads; what the wall time would be on one idle core); the ratios divide each thread count's
wall time by one thread's, stroke by stroke (median of the per-stroke ratios, with the quartiles; above 1.00 that count
is slower). The browser's own share (sending the picture, showing the view) is printed by tests/test_drawing_pad.py.
"""

import argparse
import base64
import contextlib
import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import Tee, cpu_description, quartiles  # noqa: E402
from definitions import ROOT, load_definitions  # noqa: E402

nb = load_definitions()


NUMBERS = ("1734", "7", "41")  # drawn on the pad's canvas, stroke by stroke: a number, a digit, a number again


def canvas_pictures(count: int) -> list[str]:
    """Data URLs as the canvas sends them: the picture at every stroke's end while the notebook's digits are drawn
    as the numbers of NUMBERS (nb.pad_strokes: 1, 1-7, 1-7-3, 1-7-3 and the first stroke of the 4, 1734; 7; ...),
    with new seeds, until there are `count`."""
    pictures = []
    for seed in range(count):
        for number in NUMBERS:
            strokes = nb.pad_strokes(number)
            for end in range(1, len(strokes) + 1):
                png = nb.draw_strokes(strokes[:end], seed=seed)
                pictures.append("data:image/png;base64," + base64.b64encode(png).decode())
                if len(pictures) == count:
                    return pictures
    return pictures


@contextlib.contextmanager
def pad_threads(count: int):
    """Inside the block, the pad reads each stroke with `count` PyTorch threads: the notebook's torch_threads, which
    DrawingPad._read looks up in the notebook's namespace at every stroke, is given `count` whatever it is asked."""
    notebook_threads = nb.torch_threads
    nb.torch_threads = lambda _count: notebook_threads(count)
    try:
        yield
    finally:
        nb.torch_threads = notebook_threads


def read_stroke(pad, picture: str, threads: int) -> tuple[float, float]:
    """Wall and CPU milliseconds from setting the stroke's picture on the pad to its view being ready."""
    pad.picture = ""
    with pad_threads(threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        pad.picture = picture
        wall, cpu = 1000 * (time.perf_counter() - start), 1000 * (time.process_time() - start_cpu)
    assert pad.view.startswith("data:image/png"), "the pad showed no view"
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strokes", type=int, default=60, help="strokes per model (default %(default)s)")
    parser.add_argument("--threads", default="1,2", help="comma-separated PyTorch thread counts (default %(default)s)")
    parser.add_argument("--out", type=Path, help="also write the command, machine and whole output to this file")
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",") if t.strip()]
    if args.strokes < 1 or not counts or min(counts) < 1:
        parser.error("--strokes and every --threads count must be at least 1")
    tee = Tee(sys.stdout)
    command = "python benchmarks/pad_latency.py " + shlex.join(sys.argv[1:])
    with contextlib.redirect_stdout(tee):
        print(f"command: {command.strip()}")
        print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
        print(f"machine: {cpu_description()}")
        print(f"device: CPU, {os.cpu_count()} CPUs; torch {torch.__version__} ({torch.get_num_threads()} threads by "
              f"default), Python {platform.python_version()}")
        print(f"load average (1 min) at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        models = nb.pad_models(ROOT / "checkpoints")
        if not models:
            raise SystemExit(f"no model of {list(nb.CHECKPOINT_FILES.values())} in checkpoints/: nothing to time")
        pictures = canvas_pictures(args.strokes)
        print(f"{len(pictures)} strokes per model, each read with {', '.join(map(str, counts))} PyTorch "
              f"thread{'s' * (counts != [1])} in turn (the notebook's pad: 1); models: {', '.join(models)}")
        print()
        header = (f"{'model':>14} {'threads':>7} {'wall median ms':>14} {'wall p90 ms':>11} {'CPU median ms':>13} "
                  f"{'CPU p90 ms':>10}")
        print(header)
        print("-" * len(header))
        walls = {}
        for name in models:
            pad = nb.DrawingPad(models, model_name=name)
            for threads in counts:  # a first call with each count: lazy imports, allocations, thread pools
                read_stroke(pad, pictures[-1], threads)
            wall, cpu = {t: [] for t in counts}, {t: [] for t in counts}
            for i, picture in enumerate(pictures):
                k = i % len(counts)
                for threads in counts[k:] + counts[:k]:
                    w, c = read_stroke(pad, picture, threads)
                    wall[threads].append(w)
                    cpu[threads].append(c)
            walls[name] = wall
            for threads in counts:
                print(f"{name:>14} {threads:>7} {np.median(wall[threads]):>14.0f} "
                      f"{np.quantile(wall[threads], 0.9):>11.0f} {np.median(cpu[threads]):>13.0f} "
                      f"{np.quantile(cpu[threads], 0.9):>10.0f}")
        if 1 in counts and len(counts) > 1:
            print()
            print("Wall time against one thread, stroke by stroke: median of the per-stroke ratios (quartiles); above "
                  "1.00 the count is slower")
            for name, wall in walls.items():
                for threads in counts:
                    if threads != 1:
                        q1, median, q3 = quartiles([a / b for a, b in zip(wall[threads], wall[1], strict=True)])
                        print(f"  {name}: {threads} threads / 1 thread: {median:.2f} ({q1:.2f}-{q3:.2f})")
        print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    if args.out:
        tee.save(args.out)


if __name__ == "__main__":
    main()
