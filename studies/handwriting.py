"""Other writers, and photos on plain, ruled and squared paper: how well do the models trained on MNIST read digits
that are not MNIST's, once prepared the MNIST way, which of prepare_digit's steps carry that, and do their calibrated
probabilities still say when a reading is shaky?

Reuses the notebook's definitions (`nb`: prepare_digit and its steps, predict, Normalization,
calibrated_probabilities, PAD_STROKES, pad_strokes and draw_strokes, share, wilson_interval, mcnemar, save_figure),
MNIST's validation digits (for their stroke width only) and the three committed models with the temperatures and
unsure thresholds kept in their checkpoints (`common.load_model`); it trains and fits nothing. Defines the photo
simulator (`uci_digit`, `printed_lines`, `photo_of_ink`, `simulated_photo` with thinner or thicker pens,
`stroke_width`) and `show_predictions`, importable as `import handwriting`.
Computes, on scikit-learn's 1,797 UCI digits of 13 other writers and on `--photos` simulated photos of them per paper
(default 200; 4 in 5 dark ink on light paper, seeded): accuracy with 95% Wilson intervals; paired McNemar tests
(models against each other, papers against plain paper, photos against the same clean digits, naive resize against
prepare_digit); the ablation of prepare_digit's steps and pen widths on the first `--ablation-photos` photos (default
40), each against the full preparation on the same photos; the calibration off MNIST (ECE with the MNIST
temperatures, readings under and over the unsure threshold); and the stroke width of the drawing pad's brushes.
Writes results/handwriting.json, results/handwriting_ablation.csv, figures/preparation_steps.png,
handwriting_accuracy.png, other_writers_confusion.png and own_handwriting_predictions.png. One and a half to
two and a half minutes on a 2-core CPU; --quick (20 photos, 5 for the ablation): under a minute.
"""

import io
import math

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix
from tqdm import tqdm

import common
from common import nb

MODELS = ("ViT", "conv-stem ViT", "CNN")
PAPERS = ("plain", "ruled", "squared")
PEN_WIDTHS = (0.5, 0.75, 1.0, 1.5, 2.0)  # times the stroke width of each digit as written
BRUSHES = (16, 20, 24, 26, 28, 32)  # canvas pixels on the pad's PAD_WIDTH x PAD_HEIGHT canvas
MNIST_MEASURED = 300  # MNIST validation digits whose stroke width is measured, for the pens and the brushes
LEFT_OUT = {"polarity": "without the polarity decision (dark ink assumed)", "paper": "without removing the paper",
            "lines": "without removing printed lines", "crop": "without cropping (the whole frame scaled)",
            "aspect": "without keeping the aspect ratio (stretched to 20x20)",
            "antialias": "without anti-aliasing (nearest-neighbour scaling)",
            "centre": "without the centre of mass (the box centred)"}
FULL = "prepare_digit, all steps"


# ---------------------------------------------------------------------------------------------------------------------
# The photo simulator: other writers' digits drawn into photo-like pictures, on plain, ruled or squared paper


def uci_digit(digit: np.ndarray, side: int) -> np.ndarray:
    """A scikit-learn digit (8x8 ink counts 0-16 of 4x4 blocks of a 32x32 bitmap) -> (side, side) ink in [0, 1],
    white on black, by a smooth (bicubic) upsampling: it keeps each block's amount of ink, where cutting at half
    coverage would double every thin stroke."""
    return nb.resize(np.asarray(digit, np.float64) / 16, (side, side), Image.Resampling.BICUBIC).clip(0, 1)


def printed_lines(shape: tuple[int, int], rng: np.random.Generator, paper: str, spacing: float) -> np.ndarray:
    """(H, W) strength in [0, 1] of a notebook's printed lines, anti-aliased, tilted by up to 3 degrees: "ruled"
    paper has horizontal lines `spacing` pixels apart and, one time in two, a vertical margin line; "squared" paper a
    grid of squares of side `spacing`. Lines are 1 to 3 pixels thick and 15% to 50% as strong as the ink."""
    tilt = math.radians(rng.uniform(-3, 3))
    y, x = np.indices(shape, dtype=np.float64)
    across, along = y * math.cos(tilt) - x * math.sin(tilt), x * math.cos(tilt) + y * math.sin(tilt)  # (H, W) each

    def nearest(position: np.ndarray, period: float) -> np.ndarray:  # distance to the lines offset + k * period
        return np.abs((position - rng.uniform(0, period) + period / 2) % period - period / 2)

    def drawn(distance: np.ndarray) -> np.ndarray:  # distance to a line's centre -> its strength, anti-aliased
        return rng.uniform(0.15, 0.5) * np.clip(rng.uniform(1, 3) / 2 + 0.5 - distance, 0, 1)

    strength = drawn(nearest(across, spacing))
    if paper == "squared":
        strength = np.maximum(strength, drawn(nearest(along, spacing)))
    elif rng.random() < 0.5:  # a margin line, a tenth to a quarter of the page from its left edge
        strength = np.maximum(strength, drawn(np.abs(along - rng.uniform(0.1, 0.25) * shape[1])))
    return strength


def stroke_width(ink: np.ndarray) -> float:
    """The mean width in pixels of the strokes: where the ink is at least half its typical strength (its 90th
    percentile, which a noisy pixel does not set), median-filtered. A strip w pixels wide has a mean distance to its
    edge of (w + 2) / 4 pixels."""
    strong = ink >= 0.5 * np.percentile(ink[ink > 0], 90)
    smooth = ndimage.median_filter(strong, 3)  # without the noise's holes and specks (unless that is all there is)
    stroke = np.pad(smooth if smooth.any() else strong, 1)  # the picture's edge is an edge of the strokes
    return 4 * ndimage.distance_transform_edt(stroke)[stroke].mean() - 2


def prepared_stroke_width(digit: np.ndarray, zoom: int = 8) -> float:
    """The stroke width of a prepared (28, 28) digit in pixels of the 28x28 field, measured on it zoomed `zoom` times
    (a distance transform needs more than the two or three pixels that a stroke is wide there)."""
    return stroke_width(nb.resize(digit, (28 * zoom, 28 * zoom), Image.Resampling.BICUBIC).clip(0, None)) / zoom


def disk(radius: float) -> np.ndarray:
    """A boolean disk footprint of the given radius in pixels."""
    r = math.floor(radius)
    y, x = np.indices((2 * r + 1, 2 * r + 1)) - r
    return x * x + y * y <= radius * radius


def photo_of_ink(ink: np.ndarray, rng: np.random.Generator, *, dark_ink: float = 1.0, paper: str = "plain",
                 writing_height: float = 0.0) -> np.ndarray:
    """(H, W) ink in [0, 1] -> a photo-like (H, W) uint8 picture of it: dark ink on light paper with probability
    `dark_ink` (else light on dark), an illumination gradient, blur and sensor noise. `paper` "ruled" or "squared"
    adds printed lines under the ink, a quarter to a half of `writing_height` pixels apart."""
    if paper not in PAPERS:
        raise ValueError(f"paper={paper!r}: expected one of {PAPERS}")
    H, W = ink.shape
    if paper != "plain":
        ink = np.maximum(ink, printed_lines((H, W), rng, paper, rng.uniform(1 / 4, 1 / 2) * writing_height))
    paper_shade, pen = rng.uniform(0.6, 0.95), rng.uniform(0.05, 0.35)
    if rng.random() >= dark_ink:
        paper_shade, pen = 1 - paper_shade, 1 - pen
    y, x = np.indices((H, W)) / max(H, W)
    angle = rng.uniform(0, 2 * math.pi)
    light = 1 + rng.uniform(0, 0.3) * ((x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle))  # +-15% at most
    picture = ndimage.gaussian_filter((paper_shade + (pen - paper_shade) * ink) * light, rng.uniform(0.5, 2.0))
    picture += rng.normal(0, rng.uniform(0.01, 0.04), picture.shape)  # sensor noise
    return (picture.clip(0, 1) * 255).round().astype(np.uint8)


def simulated_photo(digit: np.ndarray, rng: np.random.Generator, *, dark_ink: float = 1.0, paper: str = "plain",
                    pen_width: float = 1.0) -> np.ndarray:
    """A photo-like uint8 picture of a scikit-learn digit (photo_of_ink): a frame of 256x256 to 400x300 pixels, the
    digit 1/3 to 4/5 of the frame tall anywhere in it, dark ink on light paper with probability `dark_ink`. `paper`
    "ruled" or "squared" adds printed lines (their spacing a quarter to a half of the digit's height), and
    `pen_width` scales the width of the strokes (1: as written)."""
    if paper not in PAPERS:
        raise ValueError(f"paper={paper!r}: expected one of {PAPERS}")
    H, W = rng.integers(256, 301), rng.integers(256, 401)
    side = round(rng.uniform(1 / 3, 4 / 5) * min(H, W))
    top, left = rng.integers(0, H - side + 1), rng.integers(0, W - side + 1)
    ink = np.zeros((H, W))
    ink[top:top + side, left:left + side] = uci_digit(digit, side)
    if pen_width != 1.0:  # a thinner or thicker pen: the strokes eroded or dilated by a disk
        footprint = disk(abs(pen_width - 1) * stroke_width(ink) / 2)
        ink = (ndimage.grey_dilation if pen_width > 1 else ndimage.grey_erosion)(ink, footprint=footprint)
    return photo_of_ink(ink, rng, dark_ink=dark_ink, paper=paper, writing_height=side)


def photos_of(digits: np.ndarray, which: np.ndarray, seed: int, **kwargs) -> list[np.ndarray]:
    """Simulated photos of the digits `which`, photo j drawn with the generator [seed, j] (4 in 5 dark ink on light
    paper): the same digit at the same place in every call, whatever the paper or the pen."""
    return [simulated_photo(digits[i], np.random.default_rng([seed, j]), dark_ink=0.8, **kwargs)
            for j, i in enumerate(which)]


# ---------------------------------------------------------------------------------------------------------------------
# Preparations and scores


def naive_resize(picture: np.ndarray) -> torch.Tensor:
    """A naive preparation: the whole picture resized to 28x28, inverted when its paper (border) is light."""
    x = torch.tensor(np.asarray(Image.fromarray(picture).resize((28, 28))), dtype=torch.float32)[None] / 255
    light_paper = np.median(np.concatenate([picture[0], picture[-1], picture[:, 0], picture[:, -1]])) > 127
    return 1 - x if light_paper else x


def prepare_or_blank(picture, leave_out=()) -> torch.Tensor:
    """prepare_digit, or a black field (counted as wrong) for a picture in which it finds no ink."""
    try:
        return nb.prepare_digit(picture, leave_out)
    except ValueError:
        return torch.zeros(1, 28, 28)


def prepared(pictures: list, leave_out=(), desc: str = "") -> torch.Tensor:
    return torch.stack([prepare_or_blank(p, leave_out)
                        for p in tqdm(pictures, desc=desc, ncols=90, leave=False, disable=not desc)])


def logits_of(model, x: torch.Tensor, calibration: dict) -> torch.Tensor:
    """(N, 1, 28, 28) prepared digits -> (N, 10) logits, normalised as the model was trained, on the CPU."""
    return nb.predict(model, x, nb.Normalization(calibration["mean"], calibration["std"])).cpu()


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = 15) -> float:
    """ECE over `n_bins` equal confidence bins: the mean |accuracy - mean confidence| of the bins, weighted by how
    many readings each holds; bin i holds (i / n_bins, (i + 1) / n_bins]."""
    which = torch.bucketize(confidence, torch.linspace(0, 1, n_bins + 1)[1:-1], right=True)
    gap = torch.bincount(which, weights=correct.float() - confidence, minlength=n_bins)  # per bin: sum of right - conf
    return (gap.abs().sum() / len(confidence)).item()


def score(right: torch.Tensor) -> dict:
    """How many of the readings `right` are right, their share and its 95% Wilson interval."""
    n, k = len(right), int(right.sum())
    return {"right": k, "n": n, "accuracy": k / n if n else None, "interval": list(nb.wilson_interval(k, n)) if n
            else None}


def paired(first: str, second: str, right_first: torch.Tensor, right_second: torch.Tensor, **labels) -> dict:
    """McNemar's test on the same pictures: how many only the first reads right, only the second, and p."""
    only_first, only_second, p = nb.mcnemar(right_first, right_second)
    return {**labels, "first": first, "second": second, "right_only_first": only_first,
            "right_only_second": only_second, "p": p}


def counts(test: dict) -> str:
    """A paired test as a table shows it: "right only for the first / only for the second, p"."""
    return (f"{test['right_only_first']} / {test['right_only_second']}, "
            + ("p < 0.001" if test["p"] < 0.001 else f"p = {test['p']:.3f}"))


def percent(entry: dict) -> str:
    return nb.share_with_interval(entry["right"], entry["n"])


# ---------------------------------------------------------------------------------------------------------------------
# The parts of the study


def show_preparation(images, name: str) -> None:
    """One row per picture: the picture after every step of prepare_digit (+: MNIST's centre)."""
    steps = [nb.preparation_steps(image) for image in images]
    fig, axes = nb.plt.subplots(len(images), len(steps[0]), figsize=(2.3 * len(steps[0]), 2.4 * len(images)),
                                squeeze=False, layout="constrained")
    for row, pictures in zip(axes, steps):
        for ax, (title, picture) in zip(row, pictures.items()):
            ax.imshow(picture, cmap="gray", vmin=0, vmax=1 if title == "original" else picture.max())
            ax.set_title(f"{title}\n{picture.shape[1]}×{picture.shape[0]}", fontsize=8)  # two lines: no overlap
            ax.axis("off")
        row[-1].plot(nb.MNIST_CENTRE, nb.MNIST_CENTRE, "r+", ms=8)
    fig.suptitle("prepare_digit step by step")
    nb.save_figure(fig, name)
    nb.plt.close(fig)


def show_predictions(images, models: dict, name: str) -> None:
    """Per picture: the original, the prepared digit, and every model's calibrated probabilities side by side;
    `models` maps a name of MODEL_COLOURS to (model, dict(mean=, std=, temperature=, unsure_below=))."""
    fig, axes = nb.plt.subplots(len(images), 3, figsize=(9, 1.9 * len(images)), squeeze=False,
                                gridspec_kw={"width_ratios": [1, 1, 3]})
    width = 0.8 / len(models)
    for (ax_image, ax_digit, ax_bars), image in zip(axes, images):
        x = nb.prepare_digit(image)  # (1, 28, 28)
        ax_image.imshow(nb.load_grey(image), cmap="gray", vmin=0, vmax=1)
        ax_digit.imshow(x[0], cmap="gray")
        for i, (label, (net, calibration)) in enumerate(models.items()):
            probs = nb.calibrated_probabilities(net, x[None], calibration)[0]  # (10,)
            label_text = f"{label}: {int(probs.argmax())} ({probs.max().item():.0%})"
            ax_bars.bar(np.arange(10) + (i - (len(models) - 1) / 2) * width, probs, width,
                        color=nb.MODEL_COLOURS[label], label=label_text)
        ax_bars.set(xticks=range(10), ylim=(0, 1), ylabel="probability")
        ax_bars.legend(fontsize=7, loc="upper left")
        ax_image.axis("off")
        ax_digit.axis("off")
    for ax, title in zip(axes[0], ("picture", "prepared", "calibrated probabilities")):
        ax.set_title(title, fontsize=9)
    nb.save_figure(fig, name)
    nb.plt.close(fig)


def other_writers(models: dict, digits, checkpoints: dict) -> tuple[dict, dict, torch.Tensor]:
    """Every model on the 1,797 UCI digits, prepared: accuracy against MNIST's, ECE before and after the MNIST
    temperature, mean confidence when right and wrong, and the paired tests between models. Also returns each model's
    calibrated probabilities (N, 10) and the prepared digits (N, 1, 28, 28)."""
    x = prepared([np.pad(uci_digit(image, 32), 8) for image in digits.images], desc="other writers")
    labels = torch.as_tensor(digits.target)
    result, probs, right = {"digits": len(labels), "models": {}}, {}, {}
    for name, (model, calibration) in models.items():
        logits = logits_of(model, x, calibration)
        probs[name] = (logits / calibration["temperature"]).softmax(1)
        confidence, right[name] = probs[name].max(1).values, probs[name].argmax(1) == labels
        mnist = checkpoints[name]["metrics"]["test_acc"]
        result["models"][name] = {
            **score(right[name]), "mnist_test_accuracy": mnist,
            "difference_points": 100 * (right[name].float().mean().item() - mnist),
            "ece_t1": expected_calibration_error(logits.softmax(1).max(1).values, right[name]),
            "ece_mnist_temperature": expected_calibration_error(confidence, right[name]),
            "confidence_right": confidence[right[name]].mean().item(),
            "confidence_wrong": confidence[~right[name]].mean().item()}
    result["paired"] = [paired(a, b, right[a], right[b]) for i, a in enumerate(models) for b in list(models)[i + 1:]]
    return result, probs, x


def plot_confusion(labels: torch.Tensor, predicted: torch.Tensor, model_name: str) -> None:
    fig, ax = nb.plt.subplots(figsize=(6, 5.5))
    ConfusionMatrixDisplay(confusion_matrix(labels, predicted, labels=range(10), normalize="true"),
                           display_labels=range(10)).plot(ax=ax, cmap="Blues", colorbar=False, values_format=".2f",
                                                          text_kw={"fontsize": 7})
    ax.set_title(f"{model_name} on other writers' digits, row-normalised (each row: recall)")
    nb.save_figure(fig, "other_writers_confusion")
    nb.plt.close(fig)


def condition(name: str, pictures: str, probs: torch.Tensor, labels: torch.Tensor, unsure_below: float) -> dict:
    """Accuracy and calibration of calibrated probabilities on one kind of picture, split by the unsure threshold."""
    confidence, right = probs.max(1).values, probs.argmax(1) == labels
    sure = confidence >= unsure_below
    return {"model": name, "pictures": pictures, **score(right),
            "ece": expected_calibration_error(confidence, right),
            "confidence_right": confidence[right].mean().item() if right.any() else None,
            "confidence_wrong": confidence[~right].mean().item() if (~right).any() else None,
            "unsure_share": 1 - sure.float().mean().item(), "sure": score(right[sure]), "unsure": score(right[~sure])}


def plot_accuracy(other: dict, photos: dict) -> None:
    """Accuracy with 95% Wilson intervals per model: other writers' clean digits, then the photos, naive and
    prepared."""
    groups = ["other writers, clean"] + list(photos["accuracy"][MODELS[0]])
    entries = {name: [other["models"][name]] + list(photos["accuracy"][name].values()) for name in MODELS}
    fig, ax = nb.plt.subplots(figsize=(10, 4), layout="constrained")
    width = 0.8 / len(MODELS)
    for i, name in enumerate(MODELS):
        x = np.arange(len(groups)) + (i - (len(MODELS) - 1) / 2) * width
        accuracy = np.array([100 * e["accuracy"] for e in entries[name]])
        low, high = (np.array([100 * e["interval"][k] for e in entries[name]]) for k in (0, 1))
        ax.bar(x, accuracy, width, color=nb.MODEL_COLOURS[name], label=name)
        ax.errorbar(x, accuracy, yerr=[accuracy - low, high - accuracy], fmt="none", color="black", lw=1, capsize=2)
    ax.axhline(10, color="gray", ls=":", lw=1, label="chance (10%)")
    labels = [group if group.startswith("other") else f"photos, {group.split(', ')[-1]} paper\n"
              + ("naive resize" if group.startswith("naive") else "prepare_digit") for group in groups]
    ax.set(xticks=range(len(groups)), xticklabels=labels, ylabel="accuracy (%)", ylim=(0, 105),
           title=f"Other writers' {other['digits']:,} digits and {photos['per_paper']} simulated photos of them per "
                 "paper (bars: 95% Wilson intervals)")
    ax.legend(fontsize=8, loc="center", bbox_to_anchor=(0.3, 0.6))  # above the naive resize's low bars
    nb.save_figure(fig, "handwriting_accuracy")
    nb.plt.close(fig)


def photo_study(models: dict, digits, x_clean: torch.Tensor, photo_digits: np.ndarray, seed: int):
    """The photos on every paper: accuracy after a naive resize (plain paper) and after prepare_digit; the paired
    tests; and each model's calibrated probabilities per paper."""
    photos = {paper: photos_of(digits.images, photo_digits, seed, paper=paper) for paper in PAPERS}
    labels = torch.as_tensor(digits.target[photo_digits])
    inputs = {"naive resize, plain": torch.stack([naive_resize(p) for p in photos["plain"]])}
    inputs |= {paper: prepared(photos[paper], desc=f"{paper} paper") for paper in PAPERS}
    inputs["clean"] = x_clean[torch.as_tensor(photo_digits)]  # the same digits, prepared from their clean images
    probs = {(name, how): (logits_of(model, x, calibration) / calibration["temperature"]).softmax(1)
             for name, (model, calibration) in models.items() for how, x in inputs.items()}
    right = {key: p.argmax(1) == labels for key, p in probs.items()}
    tests = []
    for name in models:
        tests.append(paired("naive resize, plain", "plain", right[name, "naive resize, plain"], right[name, "plain"],
                            model=name))
        tests += [paired("plain", paper, right[name, "plain"], right[name, paper], model=name)
                  for paper in PAPERS[1:]]
        tests += [paired(paper, "clean", right[name, paper], right[name, "clean"], model=name) for paper in PAPERS]
    tests += [paired("ViT", name, right["ViT", paper], right[name, paper], paper=paper)
              for paper in PAPERS for name in models if name != "ViT"]
    result = {"per_paper": len(photo_digits), "digits": [int(i) for i in photo_digits],
              "accuracy": {name: {how: score(right[name, how]) for how in ["naive resize, plain", *PAPERS]}
                           for name in models},
              "paired": tests}
    return result, photos, inputs, probs, labels


def ablation(models: dict, photos: dict, full: dict, labels: torch.Tensor, n: int) -> tuple[list, list]:
    """Each step of prepare_digit left out in turn, on the first n photos of each paper, against the full
    preparation on the same photos: per model and paper, and pooled over the three papers."""
    inputs = {FULL: {paper: full[paper][:n] for paper in PAPERS}}
    for step in tqdm(nb.PREPARATION_STEPS, desc="ablation", ncols=90):
        inputs[LEFT_OUT[step]] = {paper: prepared(photos[paper][:n], (step,)) for paper in PAPERS}
    right = {(how, name, paper): logits_of(model, x[paper], calibration).argmax(1) == labels[:n]
             for how, x in inputs.items() for name, (model, calibration) in models.items() for paper in PAPERS}
    rows, pooled = [], []
    for how in inputs:
        step = next((s for s, text in LEFT_OUT.items() if text == how), None)
        for name in models:
            for paper in PAPERS:
                row = {"preparation": how, "left_out": step, "model": name, "paper": paper,
                       **score(right[how, name, paper])}
                test = paired(FULL, how, right[FULL, name, paper], right[how, name, paper]) if step else {}
                rows.append(row | {"right_only_full": test.get("right_only_first"),
                                   "right_only_without": test.get("right_only_second"), "p": test.get("p")})
            if step:
                everywhere = [torch.cat([right[h, name, paper] for paper in PAPERS]) for h in (FULL, how)]
                pooled.append({"left_out": step, "preparation": how, "model": name, "full": score(everywhere[0]),
                               "without": score(everywhere[1]), **paired(FULL, how, *everywhere)})
    return rows, pooled


def pens(models: dict, digits, photo_digits: np.ndarray, labels: torch.Tensor, seed: int) -> list[dict]:
    """The first photos on plain paper written with thinner and thicker pens: the stroke width once prepared and
    each model's accuracy, paired against the pen as written (1x) on the same photos."""
    rows, right = [], {}
    for width in tqdm(PEN_WIDTHS, desc="pen widths", ncols=90):
        x = prepared(photos_of(digits.images, photo_digits, seed, pen_width=width))
        right[width] = {name: logits_of(model, x, calibration).argmax(1) == labels[:len(x)]
                        for name, (model, calibration) in models.items()}
        rows.append({"pen_width": width, "stroke_width": float(np.median([prepared_stroke_width(d[0].numpy())
                                                                            for d in x])),
                     "models": {name: score(r) for name, r in right[width].items()}})
    for row in rows:
        for name in models:
            row["models"][name]["vs_written"] = paired("1x", f"{row['pen_width']:g}x", right[1.0][name],
                                                       right[row["pen_width"]][name])
    return rows


def brushes(seeds=(0, 1)) -> list[dict]:
    """The median stroke width, once prepared, of the pad's digits (PAD_STROKES, each drawn alone as pad_strokes
    places it on the canvas) drawn with each brush width."""
    return [{"brush": brush, "stroke_width": float(np.median([
        prepared_stroke_width(nb.prepare_digit(Image.open(io.BytesIO(nb.draw_strokes(nb.pad_strokes(digit), seed,
                                                                                     brush=brush))))[0].numpy())
        for digit in nb.PAD_STROKES for seed in seeds]))} for brush in BRUSHES]


# ---------------------------------------------------------------------------------------------------------------------


def print_tables(other: dict, photos: dict, conditions: list, ablation_rows: list, pooled: list, pen_rows: list,
                 brush_rows: list, mnist_width: float) -> None:
    common.print_table(["model", "MNIST test", "other writers", "difference (points)", "ECE, T = 1",
                        "ECE, MNIST temperature", "mean confidence right / wrong"],
                       [[name, f"{m['mnist_test_accuracy']:.2%}", percent(m), f"{m['difference_points']:+.2f}",
                         f"{m['ece_t1']:.2%}", f"{m['ece_mnist_temperature']:.2%}",
                         f"{m['confidence_right']:.1%} / {m['confidence_wrong']:.1%}"]
                        for name, m in other["models"].items()],
                       f"{other['digits']:,} scikit-learn digits, prepared with prepare_digit.")
    common.print_table(["other writers", "right only for the first / only for the second, McNemar p"],
                       [[f"{t['first']} / {t['second']}", counts(t)] for t in other["paired"]], "")
    hows = list(photos["accuracy"][MODELS[0]])
    common.print_table(["model", *hows], [[name, *(percent(photos["accuracy"][name][h]) for h in hows)]
                                          for name in MODELS],
                       f"{photos['per_paper']} simulated photos per paper, the same digits on every paper.")
    common.print_table(["compared on the same digits", "right only for the first / only for the second, McNemar p"],
                       [[f"{t.get('model', t.get('paper'))}: {t['first']} / {t['second']}", counts(t)]
                        for t in photos["paired"]], "clean: the same digits prepared from their clean images.\n")
    common.print_table(["model", "pictures", "accuracy", "ECE", "confidence right / wrong", "unsure",
                        "accuracy when sure", "accuracy when unsure"],
                       [[c["model"], c["pictures"], percent(c), f"{c['ece']:.2%}",
                         " / ".join("–" if v is None else f"{v:.1%}" for v in (c["confidence_right"],
                                                                               c["confidence_wrong"])),
                         f"{c['unsure_share']:.1%}", percent(c["sure"]), percent(c["unsure"])] for c in conditions],
                       "Calibrated with the MNIST temperatures; unsure: under the model's own threshold.\n")
    columns = [(name, paper) for name in MODELS for paper in PAPERS]
    table = {}
    for row in ablation_rows:
        table.setdefault(row["preparation"], {})[row["model"], row["paper"]] = row
    common.print_table(["preparation", *(f"{n}, {p}" for n, p in columns)],
                       [[how, *(f"{r[c]['accuracy']:.1%}" + (f" (p {r[c]['p']:.3f})" if r[c]["left_out"] else "")
                                for c in columns)] for how, r in table.items()],
                       "The first photos of each paper; p: McNemar against all steps on the same photos.")
    common.print_table(["left out, pooled over the papers", "model", "all steps", "without", "right only with all / "
                        "only without, p"],
                       [[t["left_out"], t["model"], percent(t["full"]), percent(t["without"]), counts(t)]
                        for t in pooled], "")
    common.print_table(["pen", "stroke width once prepared (px)", *MODELS],
                       [[f"{r['pen_width']:g}x", f"{r['stroke_width']:.2f}",
                         *(f"{percent(r['models'][n])}; {counts(r['models'][n]['vs_written'])}" for n in MODELS)]
                        for r in pen_rows],
                       f"MNIST's validation digits: {mnist_width:.2f} px (median of the first {MNIST_MEASURED}).")
    common.print_table(["brush (px)", "stroke width once prepared (px)"],
                       [[r["brush"], f"{r['stroke_width']:.2f}"] for r in brush_rows],
                       f"The pad's default: PAD_BRUSH = {nb.PAD_BRUSH} px.\n")


def main():
    args = common.options(__doc__.split("\n\n")[0],
                          photos=(int, 200, "simulated photos per paper (default 200; --quick: 20)"),
                          ablation_photos=(int, 40, "of them, per paper, for the ablation and the pens (default 40; "
                                                    "--quick: 5)"))
    n_photos, n_ablation = (min(args.photos, 20), min(args.ablation_photos, 5)) if args.quick else \
        (args.photos, args.ablation_photos)
    n_ablation = min(n_ablation, n_photos)
    print("reusing: the notebook's prepare_digit, predict and drawing pad; the committed ViT, conv-stem ViT and CNN "
          "with the temperatures and unsure thresholds of their checkpoints")
    print(f"computing: other writers' digits; {n_photos} simulated photos per paper; the ablation of prepare_digit "
          f"and the pen widths on {n_ablation} of them; the pad's brushes (seed {args.seed})")
    loaded = {name: common.load_model(name) for name in MODELS}
    models = {name: (model, calibration) for name, (model, calibration, _) in loaded.items()}
    digits = load_digits()  # 1,797 digits of 13 writers other than MNIST's, 8x8 ink counts 0-16

    example_rng = np.random.default_rng(args.seed)  # the figure's own generator
    show_preparation([simulated_photo(digits.images[i], example_rng, dark_ink=dark_ink, paper=paper)
                      for i, dark_ink, paper in [(0, 1.0, "plain"), (25, 0.0, "plain"), (10, 1.0, "ruled"),
                                                 (42, 1.0, "squared")]], "preparation_steps")

    other, other_probs, x_clean = other_writers(models, digits, {name: c for name, (_, _, c) in loaded.items()})
    other_labels = torch.as_tensor(digits.target)
    plot_confusion(other_labels, other_probs["ViT"].argmax(1), "ViT")

    photo_digits = np.random.default_rng(args.seed + 1).choice(len(digits.images), n_photos, replace=False)
    photos, pictures, inputs, photo_probs, labels = photo_study(models, digits, x_clean, photo_digits, args.seed)
    plot_accuracy(other, photos)
    conditions = []
    for name, (_, calibration) in models.items():
        conditions += [condition(name, f"photos, {paper} paper", photo_probs[name, paper], labels,
                                 calibration["unsure_below"]) for paper in PAPERS]
        conditions.append(condition(name, "other writers", other_probs[name], other_labels,
                                    calibration["unsure_below"]))

    ablation_rows, pooled = ablation(models, pictures, {p: inputs[p] for p in PAPERS}, labels, n_ablation)
    pen_rows = pens(models, digits, photo_digits[:n_ablation], labels, args.seed)
    mnist_digits = common.load_data().x_val[:MNIST_MEASURED]
    mnist_width = float(np.median([prepared_stroke_width(x[0].numpy()) for x in mnist_digits]))
    brush_rows = brushes()
    show_predictions([pictures[paper][j] for paper in PAPERS for j in (0, 1)], models,
                        "own_handwriting_predictions")
    nb.plt.close("all")

    print_tables(other, photos, conditions, ablation_rows, pooled, pen_rows, brush_rows, mnist_width)
    common.write_csv(args, "handwriting_ablation", [{k: v for k, v in row.items() if k != "interval"}
                                                    | {"low": row["interval"][0], "high": row["interval"][1]}
                                                    for row in ablation_rows])
    common.write_json(args, "handwriting", {
        "models": list(MODELS),
        "calibration": {name: {k: c[k] for k in ("temperature", "unsure_below")} for name, (_, c) in models.items()},
        "other_writers": other, "photos": photos, "calibration_off_mnist": conditions,
        "ablation": {"photos_per_paper": n_ablation, "rows": ablation_rows, "pooled": pooled},
        "pens": {"photos": n_ablation, "mnist_stroke_width": mnist_width, "rows": pen_rows},
        "brushes": {"pad_brush": nb.PAD_BRUSH, "mnist_stroke_width": mnist_width, "mnist_digits": MNIST_MEASURED,
                    "rows": brush_rows}})


if __name__ == "__main__":
    main()
