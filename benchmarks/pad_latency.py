"""The drawing pad's latency: from the end of a stroke to the updated view, in Python, per model.

    python benchmarks/pad_latency.py [--strokes 60]

Each stroke is a picture as the canvas sends it (a PNG data URL of the notebook's drawn digits, one per stroke's
end), set on the widget as the browser's message does: the observer decodes it, runs pad_view, renders the view and
encodes it. The table gives the median and the 90th percentile of the wall time and of the process's CPU time (what
the wall time would be on an idle core). The browser's own share (sending the picture, showing the view) is printed
by tests/test_drawing_pad.py.
"""

import argparse
import base64
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from definitions import ROOT, load_definitions  # noqa: E402

nb = load_definitions()


def canvas_pictures(count: int) -> list[str]:
    """Data URLs as the canvas sends them: the picture at every stroke's end of the notebook's digits, with new
    seeds, until there are `count`."""
    pictures = []
    for seed in range(count):
        for strokes in nb.PAD_STROKES.values():
            for end in range(1, len(strokes) + 1):
                png = nb.draw_strokes(strokes[:end], seed=seed)
                pictures.append("data:image/png;base64," + base64.b64encode(png).decode())
                if len(pictures) == count:
                    return pictures
    return pictures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strokes", type=int, default=60)
    args = parser.parse_args()
    models = nb.pad_models(ROOT / "checkpoints")
    pictures = canvas_pictures(args.strokes)
    print(f"{len(pictures)} strokes per model, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}")
    for name in models:
        pad = nb.DrawingPad(models, model_name=name)
        pad.picture = pictures[-1]  # a first call: lazy imports and allocations
        wall, cpu = [], []
        for picture in pictures:
            pad.picture = ""
            start, start_cpu = time.perf_counter(), time.process_time()
            pad.picture = picture
            wall.append(1000 * (time.perf_counter() - start))
            cpu.append(1000 * (time.process_time() - start_cpu))
            assert pad.view.startswith("data:image/png")
        print(f"{name:>14}: wall median {np.median(wall):.0f} ms, p90 {np.quantile(wall, 0.9):.0f} ms; "
              f"CPU median {np.median(cpu):.0f} ms, p90 {np.quantile(cpu, 0.9):.0f} ms")


if __name__ == "__main__":
    main()
