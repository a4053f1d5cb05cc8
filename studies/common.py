"""What every study shares: the notebook's definitions, its options, the data, the committed models, the outputs.

A study is a script, `python studies/NAME.py`. It loads the notebook's definitions (the cells tagged `definitions`)
with the loader the tests and benchmarks use, reuses the committed checkpoints and result files unless asked to
retrain, and writes its results (JSON or CSV) to `studies/results/` and its figures to `studies/figures/`.
`--quick` is the smoke test of CI: a small version of the study, written under `runs/studies-quick/` (git-ignored),
so that it never changes a committed file.
"""

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from definitions import load_definitions, mnist_data_dir  # noqa: E402

nb = load_definitions()
nb.OUTPUT_DIR = str(ROOT)  # the committed checkpoints/ are read from the repository
STUDIES = ROOT / "studies"
CONV_STEM_CHECKPOINT = ROOT / "checkpoints" / "vit_conv_stem_mnist.pt"


def conv_stem_widths(config) -> list[int]:
    """Channels of the stride-2 layers: as many as halve image_size to the patch grid, widths doubling up to D."""
    layers = math.ceil(math.log2(config.patch_size))  # P = 7: 3 layers, 28 -> 14 -> 7 -> 4
    return [config.embed_dim // 2 ** (layers - 1 - i) for i in range(layers)]  # D = 128: 32, 64, 128


class ConvStem(nn.Module):
    """Xiao et al. (2021)'s convolutional stem in place of the patch embedding: 3x3 stride-2 conv-BN-ReLU layers down
    to the patch grid, then a 1x1 projection to the token width. ViTConfig(stem="conv") builds it."""

    def __init__(self, config):
        super().__init__()
        self.image_size, self.in_channels = config.image_size, config.in_channels
        layers, c_in, side = [], config.in_channels, config.image_size
        for c in conv_stem_widths(config):
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in, side = c, (side + 1) // 2
        if side**2 != config.num_patches:
            raise ValueError(f"a stride-2 stem cannot reach the {config.image_size // config.patch_size}-wide patch "
                             f"grid of patch_size {config.patch_size}; use a power of 2 or 7 times one")
        layers.append(nn.Conv2d(c_in, config.embed_dim, kernel_size=1))  # (B, D, h, w)
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        nb.check_images(x, self.in_channels, self.image_size)
        return self.layers(x).flatten(2).transpose(1, 2)  # (B, N, D), N = h * w


def conv_stem_parameters(c) -> int:
    """3x3 convolutions without bias, each with a BatchNorm (scale and shift), then the 1x1 projection."""
    widths = conv_stem_widths(c)
    convs = sum(c_in * c_out * 9 + 2 * c_out for c_in, c_out in zip([c.in_channels, *widths], widths))
    return convs + widths[-1] * c.embed_dim + c.embed_dim


nb.STEMS["conv"] = ConvStem  # the notebook's VisionTransformer builds it for ViTConfig(stem="conv")


def options(description: str, **extra) -> argparse.Namespace:
    """The options every study takes, and `extra` ones: name=(type, default, help)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="a small version for a smoke test, written under runs/studies-quick/")
    parser.add_argument("--retrain", action="store_true",
                        help="train what the study would otherwise reuse from checkpoints/ or its result file")
    parser.add_argument("--seed", type=int, default=0, help="every random number of the study (default 0)")
    for name, (kind, default, text) in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default, help=text)
    args = parser.parse_args()
    args.out = ROOT / "runs" / "studies-quick" if args.quick else STUDIES
    nb.FIGURE_DIR = str(args.out / "figures")
    nb.SEED = args.seed
    return args


def load_data(seed: int = 0, val_size: int = 5_000):
    """MNIST split as the notebook splits it (55,000 / 5,000 / 10,000 with seed 0), on the CPU."""
    return nb.load_mnist(mnist_data_dir(), val_size=val_size, seed=seed, device="cpu")


def load_model(name: str, folder: Path = ROOT / "checkpoints"):
    """A committed model ("ViT", "CNN", "conv-stem ViT", or a file name under `folder`) with its calibration
    (mean, std, temperature, unsure_below), on the CPU, in evaluation mode."""
    path = CONV_STEM_CHECKPOINT if name == "conv-stem ViT" else Path(folder) / nb.CHECKPOINT_FILES.get(name, name)
    checkpoint = nb.load_checkpoint(path)
    calibration = dict(checkpoint["normalization"], **{k: checkpoint["metrics"][k]
                                                        for k in ("temperature", "unsure_below")
                                                        if k in checkpoint["metrics"]})
    print(f"reusing {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} (trained, not retrained here)")
    return nb.model_from_checkpoint(checkpoint).eval(), calibration, checkpoint


def write_json(args: argparse.Namespace, name: str, result: dict) -> Path:
    """Write a study's result file, with the command that made it and the date."""
    path = args.out / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join([str(Path(sys.argv[0]).relative_to(ROOT)) if Path(sys.argv[0]).is_absolute()
                                     and Path(sys.argv[0]).is_relative_to(ROOT) else sys.argv[0], *sys.argv[1:]])
    meta = {"command": command, "date": time.strftime("%Y-%m-%d"), "quick": args.quick, "seed": args.seed}
    path.write_text(json.dumps({"meta": meta, **result}, indent=1) + "\n")
    print(f"results written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def write_csv(args: argparse.Namespace, name: str, rows: list[dict]) -> Path:
    path = args.out / "results" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"results written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def print_table(columns: list[str], rows: list[list], note: str = "") -> None:
    """Print rows as a plain-text table under their column names."""
    cells = [[str(c) for c in columns]] + [[str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for k, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    if note:
        print(note)
