"""Can the models' probabilities be taken at face value, before and after temperature scaling?

The question: label smoothing teaches every model to stop at about 91% confidence, so all three are under-confident.
Temperature scaling (Guo et al., 2017) divides the logits by one number T, fitted on the validation set, which
changes no prediction. How calibrated is each model on the test set before and after, and which model's
probabilities are the best, digit by digit?

Reuses: the committed checkpoints of the ViT, the conv-stem ViT and the CNN, with the temperature T and the unsure
threshold that the notebook fitted on the validation set and stored in each: READ here, never fitted or written (a
study never changes a checkpoint); the notebook's `test_predictions` and `mean_with_interval`.
Computes, on the 10,000 test digits, for each model before (T = 1) and after scaling: reliability diagrams, the
expected calibration error (15 equal bins) with its 95% interval from 1,000 bootstrap resamples of the test digits,
the negative log-likelihood (NLL), the Brier score and the mean confidence; and, after scaling, the paired
per-digit differences of NLL and Brier score between every two models. Takes about a minute on 2 CPU cores; --quick
(500 test digits, 100 resamples) about 15 s.
"""

import itertools
import math
from dataclasses import replace

import torch

import common
from common import nb

N_BINS = 15
RESAMPLES = 1_000


def calibration_bins(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int = N_BINS):
    """Per confidence bin: mean confidence, accuracy and count; and the expected calibration error."""
    edges = torch.linspace(0, 1, n_bins + 1)
    which = torch.bucketize(confidence, edges[1:-1], right=True)  # bin i holds (edges[i], edges[i+1]]
    count = torch.bincount(which, minlength=n_bins).float()
    mean_conf = torch.bincount(which, weights=confidence, minlength=n_bins) / count.clamp(min=1)
    accuracy = torch.bincount(which, weights=correct.float(), minlength=n_bins) / count.clamp(min=1)
    ece = ((count / count.sum()) * (accuracy - mean_conf).abs()).sum().item()
    return edges, mean_conf, accuracy, count, ece


def reliability_diagram(ax, confidence: torch.Tensor, correct: torch.Tensor, title: str, min_count: int = 30) -> float:
    """Accuracy per confidence bin (bars, the number of digits above each) against the bin's mean confidence (black
    ticks); bins with fewer than `min_count` digits are grey. Returns the expected calibration error."""
    edges, mean_conf, accuracy, count, ece = calibration_bins(confidence, correct)
    centres, width = (edges[:-1] + edges[1:]) / 2, 1 / len(count)
    for few, colour, label in [(False, "tab:blue", "accuracy in bin"),
                               (True, "lightgrey", f"accuracy in a bin of fewer than {min_count} digits")]:
        chosen = (count > 0) & ((count < min_count) == few)
        ax.bar(centres[chosen], accuracy[chosen], width=width, color=colour, edgecolor="black", label=label)
    filled = count > 0
    ax.scatter(centres[filled], mean_conf[filled], marker="_", s=150, color="black", zorder=3,
               label="mean confidence in bin")
    for x, acc, n in zip(centres[filled], accuracy[filled], count[filled]):
        ax.text(x, acc + 0.02, f"{int(n):,}", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(xlabel="confidence (max softmax probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.15),
           title=f"{title} (ECE {ece:.2%})")
    ax.legend(fontsize=7, loc="upper left")
    return ece


def bootstrap_ece(confidence: torch.Tensor, correct: torch.Tensor, resamples: int = RESAMPLES,
                  seed: int = 0) -> tuple[float, float]:
    """95% interval of the ECE over the test digits drawn with replacement (seeded: the same on every run); the
    resamples are binned all at once, each in its own block of bins."""
    generator = torch.Generator().manual_seed(seed)
    draws = torch.randint(len(confidence), (resamples, len(confidence)), generator=generator)  # (R, N)
    edges, *_ = calibration_bins(confidence, correct)
    n_bins = len(edges) - 1
    which = torch.bucketize(confidence[draws], edges[1:-1], right=True) + n_bins * torch.arange(resamples)[:, None]
    confidence_sum, right_sum = (torch.bincount(which.flatten(), weights=w.flatten(), minlength=resamples * n_bins)
                                 .view(resamples, n_bins) for w in (confidence[draws], correct[draws].float()))
    eces = ((right_sum - confidence_sum).abs() / len(confidence)).sum(1)  # = sum of count/N * |accuracy - confidence|
    return eces.quantile(0.025).item(), eces.quantile(0.975).item()


def stored_temperature(name: str, calibration: dict) -> tuple[float, float]:
    """The temperature and unsure threshold that the notebook fitted on validation and stored in the checkpoint."""
    if not {"temperature", "unsure_below"} <= set(calibration):
        raise SystemExit(f"The {name} checkpoint holds no temperature: the notebook fits it on the validation set and "
                         "stores it, once; this study only reads it.")
    return calibration["temperature"], calibration["unsure_below"]


def scores(ax, test: dict, t: float, title: str, resamples: int, seed: int) -> tuple[dict, dict]:
    """The calibration scores of the test logits at temperature t (with its reliability diagram on `ax`), and the
    per-digit NLL and Brier score (N,)."""
    probs = (test["logits"] / t).softmax(1)
    confidence = probs.max(1).values
    nll = torch.nn.functional.cross_entropy(test["logits"] / t, test["labels"], reduction="none")  # (N,)
    brier = (probs - torch.nn.functional.one_hot(test["labels"], 10)).pow(2).sum(1)  # (N,)
    ece = reliability_diagram(ax, confidence, test["correct"], title)
    low, high = bootstrap_ece(confidence, test["correct"], resamples, seed)
    return ({"temperature": t, "ece": ece, "ece_low": low, "ece_high": high, "nll": nll.mean().item(),
             "brier": brier.mean().item(), "mean_confidence": confidence.mean().item()},
            {"nll": nll, "brier": brier})


def paired_difference(values: torch.Tensor) -> dict:
    """Mean of per-digit differences with its 95% interval (mean ± 1.96 standard errors, as nb.mean_with_interval)."""
    mean, half = values.mean().item(), 1.96 * values.std().item() / math.sqrt(len(values))
    return {"mean": mean, "low": mean - half, "high": mean + half}


def main():
    args = common.options(__doc__.splitlines()[0])
    data = common.load_data()
    if args.quick:
        data = replace(data, x_test=data.x_test[:500], y_test=data.y_test[:500])
    resamples = 100 if args.quick else RESAMPLES
    models = {name: common.load_model(name) for name in ("ViT", "conv-stem ViT", "CNN")}
    print(f"reusing the temperature and unsure threshold stored in each checkpoint (fitted on validation by the "
          f"notebook; not fitted here); computing on {len(data.x_test):,} test digits: reliability, ECE with "
          f"{resamples:,} bootstrap resamples, NLL, Brier score, paired per-digit differences")
    fig, axes = nb.plt.subplots(2, len(models), figsize=(4.8 * len(models), 9), squeeze=False, layout="constrained")
    result, per_digit = {}, {}
    for column, (name, (net, calibration, _)) in enumerate(models.items()):
        T, unsure_below = stored_temperature(name, calibration)
        test = nb.test_predictions(net, data)
        assert torch.equal((test["logits"] / T).argmax(1), test["pred"]), "a temperature must not change a prediction"
        before, _ = scores(axes[0, column], test, 1.0, f"{name}, before: T = 1", resamples, args.seed)
        after, per_digit[name] = scores(axes[1, column], test, T, f"{name}, after: T = {T:.2f}", resamples, args.seed)
        result[name] = {"temperature": T, "unsure_below": unsure_below,
                        "accuracy": test["correct"].float().mean().item(),
                        "test_digits": len(test["labels"]), "before": before, "after": after}
    fig.suptitle("Reliability on the test set, before (top) and after (bottom) temperature scaling")
    nb.save_figure(fig, "temperature_scaling")
    common.print_table(
        ["model", "T (stored)", "unsure below", "test ECE (95% bootstrap interval)", "NLL", "Brier score",
         "mean confidence", "accuracy"],
        [[name, f"{r['temperature']:.3f}", f"{r['unsure_below']:.3f}",
          " → ".join(f"{s['ece']:.2%} ({s['ece_low']:.2%}–{s['ece_high']:.2%})" for s in (r["before"], r["after"])),
          " → ".join(f"{s['nll']:.4f}" for s in (r["before"], r["after"])),
          " → ".join(f"{s['brier']:.4f}" for s in (r["before"], r["after"])),
          " → ".join(f"{s['mean_confidence']:.2%}" for s in (r["before"], r["after"])), f"{r['accuracy']:.2%}"]
         for name, r in result.items()],
        "Each cell: before → after temperature scaling. NLL: the mean negative log-likelihood of the true digit; "
        "Brier score: the mean squared distance between the probabilities and the one-hot label (0 is perfect).")
    pairs = []
    for a, b in itertools.combinations(models, 2):
        pairs.append({"first": a, "second": b, **{score: paired_difference(per_digit[a][score] - per_digit[b][score])
                                                  for score in ("nll", "brier")}})
    common.print_table(["first minus second, per test digit", "NLL difference (95% interval)",
                        "Brier difference (95% interval)"],
                       [[f"{a} − {b}"] + [nb.mean_with_interval(per_digit[a][s] - per_digit[b][s], decimals=4)
                                          for s in ("nll", "brier")] for a, b in itertools.combinations(models, 2)],
                       "After temperature scaling; paired on the same digits: an interval that excludes 0 separates "
                       "the two models.")
    common.write_json(args, "calibration", {"bins": N_BINS, "resamples": resamples, "models": result,
                                            "paired_after_scaling": pairs, "figures": ["temperature_scaling.png"]})


if __name__ == "__main__":
    main()
