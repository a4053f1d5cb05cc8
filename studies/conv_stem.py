"""Does a convolutional stem close the gap between the ViT and a CNN on MNIST?

The question: the CNN reads more test digits than the ViT; Xiao et al. (2021, "Early Convolutions Help Transformers
See Better") replace the ViT's patch embedding by 3x3 stride-2 convolutions (`common.ConvStem`), which gives the ViT
the CNN's locality on the raw pixels. Is the conv-stem ViT as good as the CNN, and does it look elsewhere?

Reuses: the notebook's models, `train_or_load` (only with --retrain), `test_predictions`, `wilson_interval`,
`mcnemar`, `vit_parameter_formula`, `plot_history`, `attention_maps`, `attention_views`, `attention_rollout` and
`plot_attention_views`; the committed checkpoints of the ViT, the CNN and the conv-stem ViT
(checkpoints/vit_conv_stem_mnist.pt, trained by the notebook's recipe, the ViT's for 30 epochs).
Computes, on the 10,000 test digits: each model's accuracy with its 95% Wilson interval, McNemar's exact test between
every pair of models, the parameters (checked against the formula), the epochs and the logged training time; the
three learning curves; the three attention views of the plain and the conv-stem ViT side by side, for the six test
digits of the notebook's attention section (the first three the ViT reads right, its first three mistakes); and,
paired on 500 test digits, how sharply each ViT's rollout ranks the patches (its entropy).
Takes about a minute on 2 CPU cores; --quick about 15 s (500 test digits); --retrain trains the conv-stem ViT anew,
about 27 minutes on 2 CPU cores (with --quick: 1 epoch on 1,000 images, into runs/studies-quick/checkpoints/).
"""

import itertools
import math
from dataclasses import asdict, replace

import torch

import common
from common import nb
from definitions import mnist_data_dir, notebook_parameters

CONV_STEM_EPOCHS = 30  # the plain ViT's budget
QUICK_TRAINING = dict(epochs=1, train_subset=1_000)  # --quick --retrain: a tiny run, only to exercise the code
SHARPNESS_DIGITS = 500  # test digits on which the rollouts' entropies are compared


def recipes(epochs: dict | None = None, train_subset: int | None = None) -> dict:
    """The three models as the notebook trains them, name -> (make_model, config, settings, train_settings), with the
    settings built exactly as its cells build them, so that the committed checkpoints hold these settings.
    `epochs` (name -> epochs) and `train_subset` override the recipe for a quick run."""
    p = notebook_parameters()
    config = nb.ViTConfig(patch_size=p["PATCH_SIZE"], embed_dim=p["EMBED_DIM"], depth=p["DEPTH"],
                          num_heads=p["NUM_HEADS"], mlp_ratio=p["MLP_RATIO"])
    conv_config = replace(config, stem="conv")
    train_settings = dict(epochs=p["EPOCHS"], batch_size=p["BATCH_SIZE"], lr=p["LEARNING_RATE"],
                          weight_decay=p["WEIGHT_DECAY"], warmup_epochs=p["WARMUP_EPOCHS"],
                          label_smoothing=p["LABEL_SMOOTHING"], grad_clip=p["GRAD_CLIP"], augment=p["AUGMENT"],
                          ema_decay=p["EMA_DECAY"])
    run = dict(seed=p["SEED"], train_subset=train_subset if train_subset else p["TRAIN_SUBSET"],
               val_size=p["VAL_SIZE"])
    epochs = {"ViT": p["EPOCHS"], "conv-stem ViT": CONV_STEM_EPOCHS, "CNN": p["CNN_EPOCHS"], **(epochs or {})}
    models = {"ViT": (lambda: nb.VisionTransformer(config), asdict(config)),
              "conv-stem ViT": (lambda: nb.VisionTransformer(conv_config), asdict(conv_config)),
              "CNN": (lambda: nb.ConvNet(p["CNN_CHANNELS"]), {"channels": list(p["CNN_CHANNELS"])})}
    recipe = {}
    for name, (make_model, model_config) in models.items():
        model_train_settings = dict(train_settings, epochs=epochs[name])
        recipe[name] = (make_model, model_config, dict(**model_config, **model_train_settings, **run),
                        model_train_settings)
    return recipe


def training_data(train_subset: int | None):
    """The notebook's split on the device the notebook would pick, for training."""
    data = nb.load_mnist(mnist_data_dir(), val_size=notebook_parameters()["VAL_SIZE"], seed=0,
                         device=nb.pick_device("auto"))
    return nb.first_training_images(data, train_subset)


def conv_stem_checkpoint(args):
    """The conv-stem ViT's checkpoint, checked to hold the notebook's recipe; with --retrain, trained anew first by the
    notebook's own `train_or_load` (with --quick: a tiny run, written under runs/studies-quick/, never over the
    committed file)."""
    quick_training = args.quick and args.retrain
    make_model, config, settings, train_settings = recipes(
        {"conv-stem ViT": QUICK_TRAINING["epochs"]} if quick_training else None,
        QUICK_TRAINING["train_subset"] if quick_training else None)["conv-stem ViT"]
    path = common.CONV_STEM_CHECKPOINT
    if quick_training:
        path = args.out / "checkpoints" / path.name
    if args.retrain:
        nb.CPU_PRECISION = "float32" if args.quick else notebook_parameters()["CPU_PRECISION"]
        data = training_data(settings["train_subset"])
        nb.train_or_load("conv-stem ViT", path, make_model, config, settings, train_settings, data, retrain=True)
    nb.load_checkpoint(path, settings)  # a CheckpointError unless it was trained with exactly these settings
    return path, nb.ViTConfig(**config)


def test_subset(data, n: int | None):
    """The splits with only the first `n` test digits (all of them for None)."""
    return data if n is None else replace(data, x_test=data.x_test[:n], y_test=data.y_test[:n])


def accuracy_row(name: str, net, checkpoint: dict, test: dict, formula: int) -> dict:
    n_right, n_test = int(test["correct"].sum()), len(test["correct"])
    low, high = nb.wilson_interval(n_right, n_test)
    history = checkpoint["history"]
    parameters = nb.count_parameters(net)
    assert parameters == formula, f"{name}: {parameters:,} parameters, the formula says {formula:,}"
    return {"right": n_right, "test_digits": n_test, "errors": n_test - n_right, "accuracy": n_right / n_test,
            "wilson_low": low, "wilson_high": high, "parameters": parameters, "parameter_formula": formula,
            "epochs": len(history["epoch"]), "epoch_kept": history["best_epoch"],
            "val_acc_kept": max(history["val_acc"]), "val_acc_first_epoch": history["val_acc"][0],
            "training_minutes": sum(history["seconds"]) / 60, "training": history.get("training", "not recorded"),
            "device": checkpoint.get("device", "not recorded")}


def pairwise_mcnemar(tests: dict) -> list[dict]:
    """McNemar's exact test between every pair of models, on the same test digits."""
    pairs = []
    for a, b in itertools.combinations(tests, 2):
        right_a_only, right_b_only, p = nb.mcnemar(tests[a]["correct"], tests[b]["correct"])
        pairs.append({"first": a, "second": b, "right_only_first": right_a_only, "right_only_second": right_b_only,
                      "disagreements": right_a_only + right_b_only, "p": p})
    return pairs


def rollout_entropy(net, images, data) -> torch.Tensor:
    """(B,) entropy of each digit's rollout of [CLS] over the patches, divided by log N: 1 for a uniform map, lower
    for a map that ranks the patches more sharply."""
    rollouts = torch.cat([nb.attention_rollout(nb.attention_maps(net, batch, data))[:, 0, 1:]
                          for batch in images.split(100)])  # (B, N)
    shares = rollouts / rollouts.sum(-1, keepdim=True)
    return -(shares * shares.clamp(min=1e-12).log()).sum(-1) / math.log(shares.shape[-1])


def sharpness(vit, conv_vit, data, n: int) -> dict:
    images = data.x_test[:n]
    plain, conv = rollout_entropy(vit, images, data), rollout_entropy(conv_vit, images, data)
    difference = conv - plain  # (n,), paired: the same digits
    half = 1.96 * difference.std().item() / math.sqrt(n)
    print(f"rollout entropy (1 = uniform) on {n} test digits: ViT {plain.mean():.3f}, conv-stem ViT {conv.mean():.3f};"
          f" conv-stem minus ViT, per digit: {nb.mean_with_interval(difference)}")
    return {"test_digits": n, "vit_mean": plain.mean().item(), "conv_stem_mean": conv.mean().item(),
            "difference_mean": difference.mean().item(), "difference_low": difference.mean().item() - half,
            "difference_high": difference.mean().item() + half}


def picked_digits(vit_test: dict) -> list[int]:
    """The six test digits of the notebook's attention section: the first three the ViT reads right, its first three
    mistakes."""
    correct = vit_test["correct"]
    return torch.nonzero(correct).flatten()[:3].tolist() + torch.nonzero(~correct).flatten()[:3].tolist()


def attention_side_by_side(vit, conv_vit, tests: dict, picked: list[int], data) -> list[dict]:
    images = data.x_test[picked]  # (6, 1, 28, 28)
    views = {f"ViT {title}": values
             for title, values in nb.attention_views(vit, images, nb.attention_maps(vit, images, data), data).items()}
    views |= {f"conv-stem {title}": values for title, values in
              nb.attention_views(conv_vit, images, nb.attention_maps(conv_vit, images, data), data).items()}
    labels, vit_pred, conv_pred = (tests["ViT"]["labels"], tests["ViT"]["pred"], tests["conv-stem ViT"]["pred"])
    nb.plot_attention_views(images, [f"label {labels[i]}: ViT {vit_pred[i]}, conv {conv_pred[i]}" for i in picked],
                            ["black"] * len(picked), views,
                            "Plain ViT (left three views) against the conv-stem ViT (right three), same digits",
                            "attention_views_conv_stem")
    return [{"test_index": i, "label": int(labels[i]), "vit": int(vit_pred[i]), "conv_stem_vit": int(conv_pred[i]),
             "cnn": int(tests["CNN"]["pred"][i])} for i in picked]


def main():
    args = common.options(__doc__.splitlines()[0])
    torch.manual_seed(args.seed)
    conv_path, conv_config = conv_stem_checkpoint(args)
    data = test_subset(common.load_data(), 500 if args.quick else None)
    print(f"computing: test predictions of the three models on {len(data.x_test):,} test digits, McNemar between "
          "every pair, the learning curves and the attention views")
    models = {"ViT": common.load_model("ViT"),
              "conv-stem ViT": common.load_model(conv_path.name, conv_path.parent),
              "CNN": common.load_model("CNN")}
    formulas = {"ViT": nb.vit_parameter_formula(nb.ViTConfig(**models["ViT"][2]["config"])),
                "conv-stem ViT": nb.vit_parameter_formula(conv_config, common.conv_stem_parameters),
                "CNN": nb.count_parameters(models["CNN"][0])}  # the CNN's count has no formula: itself
    tests = {name: nb.test_predictions(net, data) for name, (net, _, _) in models.items()}
    rows = {name: accuracy_row(name, net, checkpoint, tests[name], formulas[name])
            for name, (net, _, checkpoint) in models.items()}
    pairs = pairwise_mcnemar(tests)
    common.print_table(
        ["model", "test accuracy (95% interval)", "errors", "parameters", "epochs (kept)", "training time, as logged"],
        [[name, f"{r['accuracy']:.2%} ({r['wilson_low']:.2%}–{r['wilson_high']:.2%})", r["errors"],
          f"{r['parameters']:,}", f"{r['epochs']} ({r['epoch_kept']})",
          f"{r['training_minutes']:.1f} min ({r['training']}, {r['device']})"] for name, r in rows.items()],
        "Training time as logged: the sum of the epoch times in each checkpoint's history, on the device it names.")
    common.print_table(["first", "second", "right only for the first / only for the second", "McNemar p"],
                       [[p["first"], p["second"], f"{p['right_only_first']} / {p['right_only_second']}",
                         f"{p['p']:.4f}"] for p in pairs])
    stem = models["conv-stem ViT"][0].patch_embed
    print(f"the conv stem has {nb.count_parameters(stem):,} parameters where the patch embedding has "
          f"{nb.count_parameters(models['ViT'][0].patch_embed):,}; after one epoch, validation accuracy: "
          + ", ".join(f"{name} {r['val_acc_first_epoch']:.2%}" for name, r in rows.items()))

    nb.plot_history({name: checkpoint["history"] for name, (_, _, checkpoint) in models.items()},
                    "vit_vs_cnn_learning_curves")
    picked = picked_digits(tests["ViT"])
    digits = attention_side_by_side(models["ViT"][0], models["conv-stem ViT"][0], tests, picked, data)
    for d in digits:
        print(f"test digit #{d['test_index']} (label {d['label']}): ViT reads {d['vit']}, conv-stem ViT "
              f"{d['conv_stem_vit']}, CNN {d['cnn']}")
    rollout = sharpness(models["ViT"][0], models["conv-stem ViT"][0], data, 100 if args.quick else SHARPNESS_DIGITS)
    common.write_json(args, "conv_stem", {
        "models": rows, "mcnemar": pairs, "stem_parameters": nb.count_parameters(stem),
        "patch_embedding_parameters": nb.count_parameters(models["ViT"][0].patch_embed),
        "stem_widths": common.conv_stem_widths(conv_config),
        "attention_digits": digits, "rollout_entropy": rollout,
        "figures": ["vit_vs_cnn_learning_curves.png", "attention_views_conv_stem.png"]})


if __name__ == "__main__":
    main()
