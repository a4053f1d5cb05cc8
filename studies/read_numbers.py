"""Read a number: how often is a number of MNIST test digits read exactly, and how often each of its digits?

Reuses the notebook's definitions (`nb`: read_number, number_reading, resize, wilson_interval, mcnemar,
share_with_interval, save_figure, MODEL_COLOURS), MNIST's test digits (only to measure: nothing is tuned here), the
handwriting study's photo simulator (`handwriting.photo_of_ink`, with its printed lines of ruled paper) and the
committed ViT and CNN with the temperatures and unsure thresholds of their checkpoints (`common.load_model`); it
trains and fits nothing. Builds `--numbers` numbers per condition (default 300): 1 to 6 test digits in turn, each
cropped to its ink columns and set on one line, 8, 4, 2 or 0 MNIST pixels apart; or 2 to 6 digits 4 pixels apart
but for one touching pair, whose ink boxes overlap by 2 pixels. Each line is scaled up 4 times and photographed on
plain and on ruled paper (4 in 5 dark ink on light paper). Number j has the same digits under every gap and paper,
and every picture its own seeded generator, so the set is the same on every run. Computes per condition and model
the share of numbers read exactly (95% Wilson interval), of numbers with the right count of digits, of digits read
right, of readings with a note ("cut", "maybe two") and of wrong readings without any warning; for the touching
pair, the share cut right and the share read exactly or reported as maybe two digits; the issue's goals; and
McNemar tests on the same numbers (ViT against CNN; ruled against plain paper). Writes results/read_numbers.json,
results/read_numbers.csv (every number and what each model read, digits separated by spaces),
figures/read_numbers.png and figures/read_numbers_examples.png. About seven minutes on a 2-core CPU; --quick (12
numbers per condition): half a minute.
"""

import time

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

import common
import handwriting
from common import nb

MODELS = ("ViT", "CNN")
PAPERS = ("plain", "ruled")
GAPS = (8, 4, 2, 0)  # MNIST pixels between the ink of neighbouring digits
TOUCHING = "touching pair"  # one pair's ink boxes overlapping by OVERLAP pixels, the others GAP_BESIDE apart
OVERLAP, GAP_BESIDE = 2, 4
LAYOUTS = (*(f"{gap} px" for gap in GAPS), TOUCHING)
APART = [f"{gap} px" for gap in GAPS if gap >= 2]  # the goals: digits apart by 2 pixels or more
GOALS = {"plain": 0.95, "ruled": 0.90}  # share of numbers read exactly, digits apart, per paper
LENGTHS = (1, 2, 3, 4, 5, 6)  # digits per number, in turn (a touching pair: 2 to 6)
SCALE = 4  # photo pixels per MNIST pixel
MARGIN = 6  # MNIST pixels of paper around the line
DIGIT_HEIGHT = 20  # MNIST's box: the printed lines are a quarter to a half of the digits' height apart


# ---------------------------------------------------------------------------------------------------------------------
# The numbers: test digits set side by side, photographed


def ink_columns(digit: np.ndarray) -> np.ndarray:
    """A (28, 28) digit cropped to its columns with ink: (28, w)."""
    cols = np.flatnonzero(digit.any(0))
    return digit[:, cols[0]:cols[-1] + 1]


def compose(digits: list[np.ndarray], gaps: list[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Digits cropped to their ink columns, set left to right with `gaps` (pixels; negative: overlapping) between
    them on a line with MARGIN pixels of paper around it: the line's ink (28 + 2 MARGIN, W) in [0, 1] (where two
    digits overlap, the darker stroke) and each digit's own ink on the same canvas."""
    crops = [ink_columns(d) for d in digits]
    width = sum(c.shape[1] for c in crops) + sum(gaps) + 2 * MARGIN
    own, left = [], MARGIN
    for crop, gap in zip(crops, [*gaps, 0]):
        canvas = np.zeros((28 + 2 * MARGIN, width))
        canvas[MARGIN:MARGIN + 28, left:left + crop.shape[1]] = crop
        own.append(canvas)
        left += crop.shape[1] + gap
    return np.max(own, axis=0), own


def inks_touch(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two digits' ink (> 0) is one connected piece where they meet (pixels sharing an edge)."""
    pieces, _ = ndimage.label((first > 0) | (second > 0))
    return bool(np.intersect1d(pieces[first > 0], pieces[second > 0]).size)


def number_layout(layout: str, j: int, count: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Number j of a layout: which test digits (the same first digits under every layout and paper) and its gaps."""
    rng = np.random.default_rng([seed, j])
    which = rng.choice(count, max(LENGTHS), replace=False)
    if layout != TOUCHING:
        n = LENGTHS[j % len(LENGTHS)]
        return which[:n], [int(layout.split()[0])] * (n - 1)
    n = 2 + j % (max(LENGTHS) - 1)
    gaps = [GAP_BESIDE] * (n - 1)
    gaps[int(rng.integers(n - 1))] = -OVERLAP
    return which[:n], gaps


def number_picture(images: np.ndarray, labels: np.ndarray, paper: str, layout: str, j: int, seed: int) -> dict:
    """Number j of a layout photographed on `paper`: the uint8 picture, the true digits and, for a touching pair,
    whether its ink touches."""
    which, gaps = number_layout(layout, j, len(images), seed)
    ink, own = compose([images[i] for i in which], gaps)
    H, W = ink.shape[0] * SCALE, ink.shape[1] * SCALE
    ink = nb.resize(ink, (W, H), Image.Resampling.BICUBIC).clip(0, 1)
    rng = np.random.default_rng([seed, j, PAPERS.index(paper), LAYOUTS.index(layout)])
    picture = handwriting.photo_of_ink(ink, rng, dark_ink=0.8, paper=paper, writing_height=DIGIT_HEIGHT * SCALE)
    pair = next((k for k, gap in enumerate(gaps) if gap < 0), None)
    return {"picture": picture, "truth": "".join(str(int(labels[i])) for i in which), "gaps": gaps,
            "touching_ink": None if pair is None else inks_touch(own[pair], own[pair + 1])}


# ---------------------------------------------------------------------------------------------------------------------
# Reading and scoring


def read(model, calibration: dict, picture: np.ndarray) -> dict:
    """read_number on a picture: the most likely digits (also where unsure), each digit's note, which digits are
    unsure, and number_reading's sentence; a ValueError (no ink, too many marks) reads as no digits."""
    try:
        found = nb.read_number(model, picture, calibration)
    except ValueError as err:
        return {"said": "", "notes": [], "unsure": [], "text": f"ValueError: {err}"}
    return {"said": "".join(str(d.top3[0][0]) for d in found), "notes": [d.note for d in found],
            "unsure": [i for i, d in enumerate(found) if d.top3[0][1] < calibration["unsure_below"]],
            "text": nb.number_reading(found, calibration["unsure_below"])}


def outcome(truth: str, reading: dict) -> dict:
    """One reading against the truth: read exactly, the right count of digits, digits right (0 when the count is
    wrong), a note ("cut" or "maybe two"), and any warning (a note or an unsure digit)."""
    count_right = len(reading["said"]) == len(truth)
    noted = any(reading["notes"])
    return {"exact": reading["said"] == truth, "count_right": count_right,
            "digits_right": sum(a == b for a, b in zip(reading["said"], truth)) if count_right else 0,
            "noted": noted, "maybe_two": "maybe two" in reading["notes"], "cut": "cut" in reading["notes"],
            "warned": noted or bool(reading["unsure"])}


def tally(outcomes: list[dict], truths: list[str]) -> dict:
    """A model's outcomes on one condition's numbers: the share read exactly (with its Wilson interval), and counts."""
    counts = {key: int(sum(o[key] for o in outcomes))
              for key in ("count_right", "digits_right", "noted", "maybe_two", "cut", "warned")}
    digits = sum(len(t) for t in truths)
    return {"exact": handwriting.score(exact_of(outcomes)), **counts, "digits": digits,
            "digit_share": counts["digits_right"] / digits,
            "wrong_without_warning": int(sum(not o["exact"] and not o["warned"] for o in outcomes))}


def touching_tally(outcomes: list[dict], touching_ink: list[bool]) -> dict:
    """For numbers with a touching pair: cut right (read exactly), read exactly or reported as maybe two digits,
    read exactly or warned at all; and, among the pairs whose ink really touches, how many were cut right."""
    def share(keep) -> dict:
        return handwriting.score(torch.tensor([keep(o) for o in outcomes]))

    touching = [o for o, t in zip(outcomes, touching_ink) if t]
    return {"cut_right": share(lambda o: o["exact"]),
            "exact_or_maybe_two": share(lambda o: o["exact"] or o["maybe_two"]),
            "exact_or_warned": share(lambda o: o["exact"] or o["warned"]),
            "ink_touching": {"n": len(touching), "cut_right": sum(o["exact"] for o in touching),
                             "exact_or_maybe_two": sum(o["exact"] or o["maybe_two"] for o in touching)}}


def exact_of(outcomes: list[dict]) -> torch.Tensor:
    """(N,) bool: which numbers were read exactly."""
    return torch.tensor([o["exact"] for o in outcomes])


# ---------------------------------------------------------------------------------------------------------------------
# The study


def read_all(models: dict, images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> tuple[dict, list]:
    """Every number of every condition read by every model: {(paper, layout): {"truths", "touching_ink",
    "outcomes": {model: [...]}}} and one row per number for the CSV."""
    runs, rows = {}, []
    conditions = [(paper, layout) for paper in PAPERS for layout in LAYOUTS]
    progress = tqdm(total=len(conditions) * n, desc="numbers read by both models", ncols=90)
    for paper, layout in conditions:
        run = runs[paper, layout] = {"truths": [], "touching_ink": [], "outcomes": {name: [] for name in models}}
        for j in range(n):
            number = number_picture(images, labels, paper, layout, j, seed)
            run["truths"].append(number["truth"])
            run["touching_ink"].append(number["touching_ink"])
            row = {"paper": paper, "layout": layout, "number": j, "truth": " ".join(number["truth"]),
                   "touching_ink": "" if number["touching_ink"] is None else number["touching_ink"]}
            for name, (model, calibration) in models.items():
                reading = read(model, calibration, number["picture"])
                run["outcomes"][name].append(outcome(number["truth"], reading))
                row |= {f"{name} read": " ".join(reading["said"]),
                        f"{name} unsure (positions)": " ".join(str(i + 1) for i in reading["unsure"]),
                        f"{name} notes": "; ".join(f"{i + 1}: {note}" for i, note in enumerate(reading["notes"])
                                                   if note),
                        f"{name} exact": reading["said"] == number["truth"]}
            rows.append(row)
            progress.update()
    progress.close()
    return runs, rows


def summarise(runs: dict, models: dict) -> dict:
    """Per condition: each model's tally, its outcomes by number length, and ViT against CNN on the same numbers;
    ruled against plain paper per layout and model; the issue's goals."""
    conditions, by_length = [], []
    for (paper, layout), run in runs.items():
        entry = {"paper": paper, "layout": layout, "numbers": len(run["truths"]),
                 "models": {name: tally(run["outcomes"][name], run["truths"]) for name in models},
                 "paired": handwriting.paired(*MODELS, *(exact_of(run["outcomes"][name]) for name in MODELS))}
        if layout == TOUCHING:
            entry["ink_touching"] = int(sum(run["touching_ink"]))
            for name in models:
                entry["models"][name] |= touching_tally(run["outcomes"][name], run["touching_ink"])
        conditions.append(entry)
        lengths = [len(t) for t in run["truths"]]
        for n in sorted(set(lengths)):
            by_length.append({"paper": paper, "layout": layout, "length": n, "numbers": lengths.count(n),
                              **{name: sum(o["exact"] for o, k in zip(run["outcomes"][name], lengths) if k == n)
                                 for name in models}})
    papers = [handwriting.paired("plain", "ruled", exact_of(runs["plain", layout]["outcomes"][name]),
                                 exact_of(runs["ruled", layout]["outcomes"][name]), model=name, layout=layout)
              for layout in LAYOUTS for name in models]
    goals = []
    for paper, goal in GOALS.items():
        apart = {name: torch.cat([exact_of(runs[paper, layout]["outcomes"][name]) for layout in APART])
                 for name in models}
        for name in models:
            exact = handwriting.score(apart[name])
            goals.append({"paper": paper, "layouts": APART, "model": name, "goal": goal, "exact": exact,
                          "met": exact["accuracy"] >= goal})
        goals.append({"paper": paper, "layouts": APART, **handwriting.paired(*MODELS, *(apart[n] for n in MODELS))})
    return {"conditions": conditions, "by_length": by_length, "plain_against_ruled": papers, "goals": goals}


# ---------------------------------------------------------------------------------------------------------------------
# Figures and tables


def plot_shares(summary: dict) -> None:
    """The share of numbers read exactly per layout, plain and ruled paper side by side, both models, with 95%
    Wilson intervals and the issue's goals."""
    fig, axes = nb.plt.subplots(1, len(PAPERS), figsize=(11, 4), sharey=True, layout="constrained")
    width = 0.8 / len(MODELS)
    for ax, paper in zip(axes, PAPERS):
        entries = [c for c in summary["conditions"] if c["paper"] == paper]
        for i, name in enumerate(MODELS):
            x = np.arange(len(entries)) + (i - (len(MODELS) - 1) / 2) * width
            share = np.array([100 * c["models"][name]["exact"]["accuracy"] for c in entries])
            low, high = (np.array([100 * c["models"][name]["exact"]["interval"][k] for c in entries]) for k in (0, 1))
            ax.bar(x, share, width, color=nb.MODEL_COLOURS[name], label=name)
            ax.errorbar(x, share, yerr=[share - low, high - share], fmt="none", color="black", lw=1, capsize=2)
        ax.hlines(100 * GOALS[paper], -0.5, len(APART) - 0.5, color="tab:red", ls="--", lw=1,
                  label=f"goal, digits apart ({GOALS[paper]:.0%})")
        ax.set(xticks=range(len(entries)), xticklabels=[c["layout"].replace(" px", " px apart") for c in entries],
               xlabel="space between the digits (MNIST pixels)", ylim=(0, 105), title=f"{paper} paper")
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("numbers read exactly (%)")
    n = summary["conditions"][0]["numbers"]
    fig.suptitle(f"Numbers of 1 to 6 MNIST test digits read exactly, {n} per bar (bars: 95% Wilson intervals)")
    nb.save_figure(fig, "read_numbers")
    nb.plt.close(fig)


def pick_examples(runs: dict) -> list[tuple[str, str, int]]:
    """(paper, layout, j) of the figure's examples, each a different number: read exactly with digits apart, on plain
    and on ruled paper; a touching pair cut right, and one reported as maybe two; and the ViT's first failures with
    digits apart on each paper, and with a touching pair that it neither cut right nor reported."""
    picks = []

    def first(paper: str, layouts: list[str], keep) -> None:
        for layout in layouts:
            run = runs[paper, layout]
            for j, (o, truth) in enumerate(zip(run["outcomes"]["ViT"], run["truths"])):
                if keep(o, truth) and j not in {p[2] for p in picks}:
                    picks.append((paper, layout, j))
                    return

    first("plain", ["4 px"], lambda o, t: o["exact"] and len(t) == 4)
    first("ruled", ["2 px"], lambda o, t: o["exact"] and len(t) == 5)
    first("plain", [TOUCHING], lambda o, t: o["exact"] and o["cut"])
    first("plain", [TOUCHING], lambda o, t: o["maybe_two"])
    for paper in PAPERS:
        first(paper, APART, lambda o, t: not o["exact"])
    first("plain", [TOUCHING], lambda o, t: not o["exact"] and not o["maybe_two"])
    return picks


def plot_examples(models: dict, images: np.ndarray, labels: np.ndarray, picks: list, seed: int) -> list[dict]:
    """The example pictures, each with its truth and what each model read (number_reading's sentence)."""
    fig, axes = nb.plt.subplots(len(picks), 1, figsize=(10, 1.9 * len(picks)), squeeze=False, layout="constrained")
    examples = []
    for ax, (paper, layout, j) in zip(axes[:, 0], picks):
        number = number_picture(images, labels, paper, layout, j, seed)
        readings = {name: read(model, calibration, number["picture"])["text"]
                    for name, (model, calibration) in models.items()}
        ax.imshow(number["picture"], cmap="gray", vmin=0, vmax=255)
        ax.set_anchor("W")  # pictures and titles aligned on the left
        spacing = "one touching pair" if layout == TOUCHING else f"{layout} apart"
        ax.set_title(f"{paper} paper, {spacing}, number {j}: written {number['truth']}\n"
                     + "\n".join(f"{name} reads {text}" for name, text in readings.items()), fontsize=8, loc="left")
        ax.axis("off")
        examples.append({"paper": paper, "layout": layout, "number": j, "truth": number["truth"], "read": readings})
    fig.suptitle("Examples: the photo, its digits, and what read_number and number_reading made of it")
    nb.save_figure(fig, "read_numbers_examples")
    nb.plt.close(fig)
    return examples


def print_tables(summary: dict) -> None:
    rows = []
    for c in summary["conditions"]:
        for name in MODELS:
            m = c["models"][name]
            rows.append([c["paper"], c["layout"], name, handwriting.percent(m["exact"]),
                         f"{m['count_right'] / c['numbers']:.1%}", f"{m['digit_share']:.1%}",
                         f"{m['maybe_two']} / {m['cut']}", m["wrong_without_warning"]])
    common.print_table(["paper", "layout", "model", "read exactly", "count right", "digits right",
                        "noted maybe two / cut", "wrong, no warning"], rows,
                       "Digits right: of all digits, none of a number whose count is wrong.\n")
    touching = [c for c in summary["conditions"] if c["layout"] == TOUCHING]
    common.print_table(["paper", "model", "cut right", "exact or maybe two", "exact or warned",
                        "ink touching: cut right / exact or maybe two"],
                       [[c["paper"], name, handwriting.percent(c["models"][name]["cut_right"]),
                         handwriting.percent(c["models"][name]["exact_or_maybe_two"]),
                         handwriting.percent(c["models"][name]["exact_or_warned"]),
                         f"{c['models'][name]['ink_touching']['cut_right']} / "
                         f"{c['models'][name]['ink_touching']['exact_or_maybe_two']} of {c['ink_touching']}"]
                        for c in touching for name in MODELS], "")
    common.print_table(["paper", "layout", "ViT / CNN: exact only for the ViT / only for the CNN, McNemar p"],
                       [[c["paper"], c["layout"], handwriting.counts(c["paired"])] for c in summary["conditions"]],
                       "")
    common.print_table(["model", "layout", "plain / ruled: exact only on plain / only on ruled, McNemar p"],
                       [[t["model"], t["layout"], handwriting.counts(t)] for t in summary["plain_against_ruled"]], "")
    common.print_table(["paper", "digits apart: model", "read exactly", "goal", "met"],
                       [[g["paper"], g["model"], handwriting.percent(g["exact"]), f"{g['goal']:.0%}",
                         "yes" if g["met"] else "no"] for g in summary["goals"] if "model" in g and "goal" in g], "")


def main():
    args = common.options(__doc__.split("\n\n")[0],
                          numbers=(int, 300, "numbers per condition (paper x layout; default 300; --quick: 12)"))
    n = min(args.numbers, 12) if args.quick else args.numbers
    print("reusing: the notebook's read_number and number_reading; the handwriting study's photo simulator; MNIST's "
          "test digits; the committed ViT and CNN with the temperatures and unsure thresholds of their checkpoints")
    print(f"computing: {n} numbers per condition, {len(PAPERS)} papers x {len(LAYOUTS)} layouts, read by "
          f"{' and '.join(MODELS)} (seed {args.seed})")
    models = {name: common.load_model(name)[:2] for name in MODELS}
    data = common.load_data()
    images, labels = data.x_test[:, 0].numpy(), data.y_test.numpy()  # (10000, 28, 28) in [0, 1], (10000,)
    started = time.perf_counter()
    with nb.torch_threads(1):  # one number's digits are a small batch: one thread reads it faster, as the pad does
        runs, rows = read_all(models, images, labels, n, args.seed)
    seconds = time.perf_counter() - started
    summary = summarise(runs, models)
    plot_shares(summary)
    with nb.torch_threads(1):
        examples = plot_examples(models, images, labels, pick_examples(runs), args.seed)
    print_tables(summary)
    common.write_csv(args, "read_numbers", rows)
    common.write_json(args, "read_numbers", {
        "models": list(MODELS), "papers": list(PAPERS), "layouts": list(LAYOUTS), "numbers_per_condition": n,
        "lengths": list(LENGTHS), "touching": {"overlap": OVERLAP, "gap_beside": GAP_BESIDE, "lengths": [2, 6]},
        "scale": SCALE, "calibration": {name: {k: c[k] for k in ("temperature", "unsure_below")}
                                        for name, (_, c) in models.items()},
        **summary, "examples": examples,
        "reading_seconds": seconds})


if __name__ == "__main__":
    main()
