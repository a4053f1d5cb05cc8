"""How much does one seed say? The spread of the test accuracy over training seeds, per model.

The question: every accuracy of the notebook and of studies/conv_stem.py comes from one training run (seed 0). Another
seed changes the initial weights, the batch order and the augmentation, and with them the test accuracy; is the CNN's
lead over the ViT larger than the spread between seeds?

Reuses: the committed checkpoints (seed 0 of the ViT, the conv-stem ViT and the CNN, their test accuracy evaluated
here) and the runs of studies/results/seed_study.csv (one row per run of seeds 1 and 2: its validation and test
accuracy, not its weights), the notebook's `train_or_reuse_row`, `cached_result` and `read_table`, and the three
recipes of studies/conv_stem.py. Trains nothing unless asked: `--train missing` trains the seeds that the table lacks
(about 25 min per ViT run, 8 per CNN run on 2 CPU cores: the whole study about two hours), `--retrain` every seed
after the first again.
Computes: per model, the mean ± the sample standard deviation and the range of the test and validation accuracy over
the seeds; Welch's t-test of the difference between the mean test accuracies (scipy); which precision and compiling
each run trained with, where it was recorded. Takes about a minute without training; --quick trains tiny runs of seed 1
of the ViT and the CNN (1 epoch on 128 images) into runs/studies-quick/ and takes about 20 s.
"""

from dataclasses import replace

import numpy as np
import torch
from scipy import stats

import common
from common import nb
from conv_stem import recipes, training_data
from definitions import notebook_parameters

SEED_COLUMNS = ["run", "model", "seed", "epochs", "parameters", "best_epoch", "val_acc", "test_acc", "seconds",
                "training", "settings"]  # training: the precision and whether its steps were compiled
SEED_STUDY_SEEDS = 3  # seed 0 (the checkpoints) and seeds 1 and 2
NOT_RECORDED = "not recorded"
QUICK = dict(seeds=2, train=("ViT", "CNN"), epochs=1, train_subset=128, val=500, test=500)  # --quick: tiny runs of
# seed 1, to exercise the code only; the conv-stem ViT's is left missing, to exercise that path too


def mean_std_range(values: list[float]) -> str:
    values = 100 * np.array(values)
    if len(values) == 1:
        return f"{values[0]:.2f}% (one run)"
    return (f"{values.mean():.2f}% ± {values.std(ddof=1):.2f} ({values.min():.2f}–{values.max():.2f}), "
            f"{len(values)} seeds")


def summary(values: list[float]) -> dict:
    values = np.array(values)
    return {"runs": len(values), "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "min": float(values.min()), "max": float(values.max())}


def seed_zero_run(name: str, data) -> dict:
    """The run of seed 0: the committed checkpoint, its test accuracy evaluated here."""
    net, _, checkpoint = common.load_model(name)
    history = checkpoint["history"]
    return {"model": name, "seed": checkpoint["settings"]["seed"], "val_acc": max(history["val_acc"]),
            "test_acc": nb.evaluate(net, data.x_test, data.y_test, data)[1], "test_digits": len(data.x_test),
            "minutes": sum(history["seconds"]) / 60, "training": history.get("training", NOT_RECORDED),
            "source": "checkpoint"}


def table_run(name: str, row: dict, source: str) -> dict:
    return {"model": name, "seed": int(row["seed"]), "val_acc": float(row["val_acc"]),
            "test_acc": float(row["test_acc"]), "test_digits": None, "minutes": float(row["seconds"]) / 60,
            "training": row.get("training") or NOT_RECORDED, "source": source}


def seed_runs(args, data, table: list[dict], path) -> tuple[list[dict], dict]:
    """Every run of the study: seed 0 from the checkpoints, the others from the table (trained first where asked);
    and the number of runs still missing per model."""
    quick = {name: QUICK["epochs"] for name in ("ViT", "conv-stem ViT", "CNN")}
    recipe = recipes(quick, QUICK["train_subset"]) if args.quick else recipes()
    seeds = QUICK["seeds"] if args.quick else SEED_STUDY_SEEDS
    train = "all" if args.retrain else ("missing" if args.quick else args.train)
    if train != "none":
        nb.CPU_PRECISION = "float32" if args.quick else notebook_parameters()["CPU_PRECISION"]
    train_data = data if args.quick or train == "none" else training_data(None)
    runs, missing = [], {}
    for name, (make_model, _, settings, train_settings) in recipe.items():
        runs.append(seed_zero_run(name, data))
        for seed in range(settings["seed"] + 1, settings["seed"] + seeds):
            seed_settings = dict(settings, seed=seed)
            row = nb.cached_result(table, seed_settings, with_test=True)
            trains = train == "all" or (train == "missing" and row is None)
            if trains and (not args.quick or name in QUICK["train"]):
                row = nb.train_or_reuse_row(f"{name}, seed {seed}", make_model, seed_settings, train_settings,
                                            train_data, table, path, SEED_COLUMNS, rerun=True, with_test=True,
                                            model=name)
                runs.append(table_run(name, row, "trained by this run"))
            elif row is not None:
                runs.append(table_run(name, row, path.name))
            else:
                missing[name] = missing.get(name, 0) + 1
    return runs, missing


def quick_data(data):
    """--quick: the first 128 training, 500 validation and 500 test digits."""
    data = replace(data, x_val=data.x_val[:QUICK["val"]], y_val=data.y_val[:QUICK["val"]],
                   x_test=data.x_test[:QUICK["test"]], y_test=data.y_test[:QUICK["test"]])
    return nb.first_training_images(data, QUICK["train_subset"])


def welch_tests(by_model: dict) -> list[dict]:
    """Welch's t-test of each model's mean test accuracy (in points) against the ViT's: variances not assumed equal."""
    tests = []
    vit = [100 * r["test_acc"] for r in by_model["ViT"]]
    for name in ("conv-stem ViT", "CNN"):
        other = [100 * r["test_acc"] for r in by_model.get(name, [])]
        if len(vit) > 1 and len(other) > 1:
            welch = stats.ttest_ind(other, vit, equal_var=False)
            modes = {r["training"] for r in by_model["ViT"] + by_model[name]}
            tests.append({"first": name, "second": "ViT", "difference_points": float(np.mean(other) - np.mean(vit)),
                          "t": float(welch.statistic), "df": float(welch.df), "p": float(welch.pvalue),
                          "training_modes": sorted(modes),
                          "training_known_and_equal": NOT_RECORDED not in modes and len(modes) == 1})
    return tests


def plot_seeds(by_model: dict) -> None:
    """Each seed's test accuracy (a dot; hollow where the table does not record how the run trained), their range and
    their mean."""
    fig, ax = nb.plt.subplots(figsize=(7.5, 0.9 + 0.7 * len(by_model)))
    for row, (name, runs) in enumerate(by_model.items()):
        colour = nb.MODEL_COLOURS[name]
        percents = [100 * r["test_acc"] for r in runs]
        recorded = [r["training"] != NOT_RECORDED for r in runs]
        ax.plot([min(percents), max(percents)], [row, row], color=colour, lw=2, alpha=0.5)
        for percent, known in zip(percents, recorded):
            ax.scatter([percent], [row], s=40, zorder=5 if known else 3, color=colour if known else "white",
                       edgecolors=colour)  # a recorded run on top where two seeds tie
        ax.scatter([np.mean(percents)], [row], marker="|", s=400, color="black", zorder=4)
    ax.scatter([], [], s=40, color="gray", label="run, training recorded (checkpoint)")
    ax.scatter([], [], s=40, color="white", edgecolors="gray", label="run, training not recorded (seed_study.csv)")
    ax.scatter([], [], marker="|", s=200, color="black", label="mean over the seeds")
    ax.set_yticks(range(len(by_model)), list(by_model))
    ax.set_ylim(len(by_model) - 0.4, -0.6)  # first model at the top, as in the table
    ax.set(xlabel="test accuracy (%)", title="Test accuracy of each seed (dots) and their mean (bar)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    nb.save_figure(fig, "seed_study")


def main():
    args = common.options(__doc__.splitlines()[0], train=(str, "none", "'missing': train the seed runs that the "
                                                            "table lacks (hours); 'none' (default): only show them"))
    if args.train not in ("none", "missing"):
        raise SystemExit(f"--train is 'none' or 'missing', not {args.train!r} (--retrain trains every seed again)")
    torch.manual_seed(args.seed)
    path = args.out / "results" / "seed_study.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if args.quick:
        path.unlink(missing_ok=True)  # tiny runs, trained afresh every time
    table = nb.read_table(path)
    print(f"reusing {len(table)} runs of {path.relative_to(common.ROOT)} and the committed checkpoints (seed 0); "
          "computing: the test accuracy of seed 0, mean ± std (range) per model, Welch's t-test")
    data = quick_data(common.load_data()) if args.quick else common.load_data()
    runs, missing = seed_runs(args, data, table, path)
    by_model = {}
    for run in runs:
        by_model.setdefault(run["model"], []).append(run)
    common.print_table(
        ["model", "seeds", "test accuracy: mean ± std (range)", "validation accuracy: mean ± std (range)"],
        [[name, ", ".join(str(r["seed"]) for r in rs), mean_std_range([r["test_acc"] for r in rs]),
          mean_std_range([r["val_acc"] for r in rs])] for name, rs in by_model.items()])
    common.print_table(["model", "seed", "training time", "training (precision, compiling)", "from"],
                       [[r["model"], r["seed"], f"{r['minutes']:.1f} min", r["training"], r["source"]] for r in runs])
    if missing:
        print(f"not in {path.name} yet: {missing} run(s); `python studies/seeds.py --train missing` trains them")
    tests = welch_tests(by_model)
    for t in tests:
        print(f"{t['first']} minus {t['second']}, mean test accuracy over the seeds: {t['difference_points']:+.2f} "
              f"points; Welch's t = {t['t']:.2f}, {t['df']:.1f} degrees of freedom, two-sided p = {t['p']:.4f}")
        if NOT_RECORDED in t["training_modes"]:
            print(f"  caution: {path.name} does not record how some of these runs trained (precision, compiling), "
                  "and their training times differ from seed 0's: the test may compare runs trained in different "
                  "modes as well as with different seeds")
        elif not t["training_known_and_equal"]:
            print(f"  caution: the runs compared trained in different modes ({', '.join(t['training_modes'])}): the "
                  "test compares modes as well as seeds")
    plot_seeds(by_model)
    common.write_json(args, "seeds", {
        "seeds_per_model": QUICK["seeds"] if args.quick else SEED_STUDY_SEEDS, "runs": runs, "missing_runs": missing,
        "test_accuracy": {name: summary([r["test_acc"] for r in rs]) for name, rs in by_model.items()},
        "val_accuracy": {name: summary([r["val_acc"] for r in rs]) for name, rs in by_model.items()},
        "welch": tests, "table": str(path.relative_to(common.ROOT)), "figures": ["seed_study.png"]})


if __name__ == "__main__":
    main()
