"""Off the test distribution: how do the ViT, the conv-stem ViT and the CNN hold up on rotated, shifted, noisy and
partly hidden digits, and is one architecture more robust than another?

Reuses the notebook's definitions (`nb`: affine, predict, wilson_interval, share, mcnemar, paired_counts,
show_digits, save_figure, MODEL_COLOURS), its MNIST split and the three committed checkpoints (`common.load_model`);
it trains nothing. Computes, for four corruptions at growing severity (rotation, translation, Gaussian pixel noise,
occlusion by a square), which of `--images` test digits (default 2,000, drawn with the seed as the notebook draws
them) each model reads right once corrupted. Every corruption is seeded, so every model sees the very same corrupted
digits, and two models are compared digit by digit with McNemar's test, at the table's moderate severity and at the
most severe one. Writes results/corruptions.json, figures/corruptions.png (accuracy curves with 95% Wilson bands)
and figures/corruption_examples.png. Two to four minutes on a 2-core CPU; --quick: 100 digits, seconds.
"""

import math

import torch
import torch.nn.functional as F
from tqdm import tqdm

import common
from common import nb

MODELS = ("ViT", "conv-stem ViT", "CNN")


def rotate(x: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each image of a (B, 1, H, W) batch in [0, 1] about its centre by `degrees`, in a random direction."""
    sign = torch.randint(0, 2, (len(x),), generator=generator).to(x.device) * 2 - 1
    angle = sign * math.radians(degrees)
    return nb.affine(x, angle, torch.ones(len(x), device=x.device), torch.zeros(len(x), 2, device=x.device))


def translate(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by exactly `pixels` to the right, left, bottom or top (drawn per image); 0 fills in."""
    moves = [(0, pixels), (0, -pixels), (pixels, 0), (-pixels, 0)]  # (down, right) in pixels
    which = torch.randint(0, 4, (len(x),), generator=generator).to(x.device)
    H, W = x.shape[-2:]
    padded = F.pad(x, (pixels,) * 4)  # a border of 0 that the shifted images take their new pixels from
    shifted = torch.stack([padded[..., pixels - dy:pixels - dy + H, pixels - dx:pixels - dx + W]
                           for dy, dx in moves])  # (4, B, 1, H, W): every image moved every way
    return shifted[which, torch.arange(len(x), device=x.device)]


def add_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian pixel noise of standard deviation `sigma`, clipped back to [0, 1]."""
    noise = torch.randn(x.shape, generator=generator).to(x.device)
    return (x + sigma * noise).clamp(0, 1)


def occlude(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Paint a size x size square of background (0) centred on a random ink pixel (> 0.5) of each digit."""
    B, _, H, W = x.shape
    ink = (x[:, 0] > 0.5).flatten(1).float().cpu()  # (B, H*W)
    centres = torch.multinomial(ink + 1e-12, 1, generator=generator)[:, 0]  # a uniformly drawn ink pixel
    rows, cols = torch.arange(H)[None, :, None], torch.arange(W)[None, None, :]
    cy, cx = (centres // W)[:, None, None], (centres % W)[:, None, None]
    low = size // 2  # the square covers [c - low, c - low + size) in both directions
    square = (rows >= cy - low) & (rows < cy - low + size) & (cols >= cx - low) & (cols < cx - low + size)
    return x * (~square[:, None]).to(x.device)


CORRUPTIONS = {  # name -> (function, severities from none to severe, unit, the moderate severity of the table)
    "rotation": (rotate, [0, 10, 20, 30, 45], "degrees", 30),
    "translation": (translate, [0, 1, 2, 3, 4, 6], "pixels", 3),
    "Gaussian noise": (add_noise, [0.0, 0.1, 0.2, 0.3, 0.5], "σ", 0.3),
    "occlusion": (occlude, [0, 4, 8, 12, 16], "pixels (side of the square)", 8),
}


def corruption_right(net, x: torch.Tensor, y: torch.Tensor, data, corrupt, severity, seed: int) -> torch.Tensor:
    """Which images the model reads right once corrupted at one severity, (B,) on the CPU; the same seed gives every
    model the same corrupted images, so that two models can be compared digit by digit."""
    corrupted = corrupt(x, severity, torch.Generator().manual_seed(seed))
    return (nb.predict(net, corrupted, data).argmax(1) == y).cpu()


def drawn_test_digits(data, images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`images` test digits drawn at random with `seed`, as the notebook draws them: (B, 1, 28, 28) and (B,)."""
    subset = torch.randperm(len(data.x_test), generator=torch.Generator().manual_seed(seed))[:images]
    return data.x_test[subset], data.y_test[subset]


def measure(models: dict, x: torch.Tensor, y: torch.Tensor, data, seed: int) -> dict:
    """(corruption, model) -> (severities, B) right or wrong; corruption j at severity k is drawn with the seed
    seed + 100 j + k, the same for every model."""
    right = {}
    runs = [(j, corruption, name) for j, corruption in enumerate(CORRUPTIONS) for name in models]
    for j, corruption, name in tqdm(runs, desc="corruptions x models", ncols=90):
        corrupt, severities, _, _ = CORRUPTIONS[corruption]
        right[corruption, name] = torch.stack([
            corruption_right(models[name], x, y, data, corrupt, severity, seed=seed + 100 * j + k)
            for k, severity in enumerate(severities)])
    return right


def plot_curves(right: dict, images: int) -> None:
    fig, axes = nb.plt.subplots(1, len(CORRUPTIONS), figsize=(4 * len(CORRUPTIONS), 3.8), sharey=True,
                                layout="constrained")
    for ax, (corruption, (_, severities, unit, table_severity)) in zip(axes, CORRUPTIONS.items()):
        for name in MODELS:
            per_severity = right[corruption, name]  # (severities, B)
            ax.plot(severities, 100 * per_severity.float().mean(1), "o-", color=nb.MODEL_COLOURS[name], label=name)
            band = [nb.wilson_interval(int(r.sum()), len(r)) for r in per_severity]
            ax.fill_between(severities, [100 * low for low, _ in band], [100 * high for _, high in band],
                            color=nb.MODEL_COLOURS[name], alpha=0.15, lw=0)
        ax.axvline(table_severity, color="gray", ls=":", lw=1)
        ax.set(xlabel=unit, title=corruption)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Accuracy under corruption, {images:,} test digits (bands: 95% Wilson intervals; dotted: the "
                 "severity in the table)")
    nb.save_figure(fig, "corruptions")
    nb.plt.close(fig)


def plot_examples(x: torch.Tensor, seed: int) -> None:
    """The same six test digits under each corruption at the table's severity."""
    examples = torch.cat([corrupt(x[:6], moderate, torch.Generator().manual_seed(seed))
                          for corrupt, _, _, moderate in CORRUPTIONS.values()])
    nb.show_digits(examples, [c if k == 0 else "" for c in CORRUPTIONS for k in range(6)], ["black"] * len(examples),
                   "The same six test digits under each corruption at the table's severity", "corruption_examples",
                   columns=6)
    nb.plt.close("all")


def severity_label(corruption: str, severity) -> str:
    return f"{corruption}, {severity:g} {CORRUPTIONS[corruption][2].split(' ')[0]}"


def summarise(right: dict) -> tuple[dict, list[dict]]:
    """Per corruption: every model's accuracy, count right and Wilson interval per severity; and the paired tests of
    every pair of models at the moderate and the most severe level."""
    curves, paired = {}, []
    for corruption, (_, severities, unit, moderate) in CORRUPTIONS.items():
        n = right[corruption, MODELS[0]].shape[1]
        curves[corruption] = {
            "unit": unit, "severities": severities, "moderate": moderate,
            "right": {name: [int(r.sum()) for r in right[corruption, name]] for name in MODELS},
            "accuracy": {name: [r.float().mean().item() for r in right[corruption, name]] for name in MODELS},
            "interval": {name: [list(nb.wilson_interval(int(r.sum()), n)) for r in right[corruption, name]]
                         for name in MODELS}}
        for level, k in (("moderate", severities.index(moderate)), ("most severe", len(severities) - 1)):
            for i, first in enumerate(MODELS):
                for second in MODELS[i + 1:]:
                    only_first, only_second, p = nb.mcnemar(right[corruption, first][k], right[corruption, second][k])
                    paired.append({"corruption": corruption, "severity": severities[k], "level": level,
                                   "first": first, "second": second, "right_only_first": only_first,
                                   "right_only_second": only_second, "p": p})
    return curves, paired


def print_tables(right: dict, paired: list[dict], images: int) -> None:
    moderate = {c: CORRUPTIONS[c][1].index(CORRUPTIONS[c][3]) for c in CORRUPTIONS}
    common.print_table(["model", "clean"] + [severity_label(c, CORRUPTIONS[c][3]) for c in CORRUPTIONS],
                       [[name, nb.share(right["rotation", name][0])]
                        + [nb.share(right[c, name][moderate[c]]) for c in CORRUPTIONS] for name in MODELS],
                       f"Accuracy on {images:,} test digits, with its 95% Wilson interval in brackets.\n")
    pairs = [(a, b) for i, a in enumerate(MODELS) for b in MODELS[i + 1:]]
    rows = {}
    for test in paired:
        p = "p < 0.001" if test["p"] < 0.001 else f"p = {test['p']:.3f}"
        rows.setdefault(severity_label(test["corruption"], test["severity"]), []).append(
            f"{test['right_only_first']} / {test['right_only_second']}, {p}")
    common.print_table(["corruption, severity"] + [f"{a} / {b}" for a, b in pairs], [[k, *v] for k, v in rows.items()],
                       "Right only for the first / only for the second, McNemar p: paired on the same corrupted "
                       "digits, at the table's severity and at the most severe one.\n")


def main():
    args = common.options(__doc__.split("\n\n")[0],
                          images=(int, 2_000, "test digits to corrupt (default 2,000; --quick: 100)"))
    images = min(args.images, 100) if args.quick else args.images
    print("reusing: the notebook's definitions, its MNIST split, the committed ViT, conv-stem ViT and CNN")
    print(f"computing: {len(CORRUPTIONS)} corruptions at growing severity on {images:,} test digits (seed "
          f"{args.seed}), each model's accuracy and the paired tests between models")
    data = common.load_data()
    models = {name: common.load_model(name)[0] for name in MODELS}
    x, y = drawn_test_digits(data, images, args.seed)
    right = measure(models, x, y, data, args.seed)
    curves, paired = summarise(right)
    print_tables(right, paired, images)
    plot_curves(right, images)
    plot_examples(x, args.seed)
    common.write_json(args, "corruptions", {"images": images, "models": list(MODELS), "corruptions": curves,
                                            "paired": paired})


if __name__ == "__main__":
    main()
