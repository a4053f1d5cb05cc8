"""The lab's studies of the models: studies/conv_stem.py, seeds.py, calibration.py and attention_statistics.py each
run with --quick and write a result file with the expected content (known answers where the quick version has them:
the committed checkpoints' stored temperatures, the parameter counts); and the unit tests of what these studies
define (the convolutional stem, the seed-study table, the calibration bins, the mean attention distance)."""

import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch
import torch.nn as nn
from conftest import ROOT, mnist_data_dir

sys.path.insert(0, str(ROOT / "studies"))
import attention_statistics  # noqa: E402

import calibration  # noqa: E402
import common  # noqa: E402
import conv_stem  # noqa: E402
import seeds  # noqa: E402

QUICK_RESULTS = ROOT / "runs" / "studies-quick" / "results"
QUICK_FIGURES = ROOT / "runs" / "studies-quick" / "figures"


def run_quick(name: str, *options: str) -> dict:
    """Run a study with --quick and return its result file."""
    env = dict(os.environ, MNIST_DATA_DIR=mnist_data_dir(), MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, f"studies/{name}.py", "--quick", *options], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((QUICK_RESULTS / f"{name}.json").read_text())
    assert result["meta"]["quick"] is True
    for figure in result.get("figures", []):
        assert (QUICK_FIGURES / figure).stat().st_size > 10_000, figure
    return result


def test_conv_stem_study_compares_the_three_models_on_the_same_digits():
    committed = common.CONV_STEM_CHECKPOINT.stat().st_mtime_ns
    result = run_quick("conv_stem")
    models = result["models"]
    assert set(models) == {"ViT", "conv-stem ViT", "CNN"}
    for row in models.values():
        assert row["test_digits"] == 500 and row["right"] + row["errors"] == 500
        assert row["wilson_low"] < row["accuracy"] <= row["wilson_high"] and row["accuracy"] > 0.97
        assert row["parameters"] == row["parameter_formula"]
    assert [models[name]["parameters"] for name in models] == [805_130, 908_138, 288_170]  # the committed models
    assert result["stem_parameters"] - result["patch_embedding_parameters"] == 908_138 - 805_130
    assert len(result["mcnemar"]) == 3
    for pair in result["mcnemar"]:
        assert 0 <= pair["p"] <= 1 and pair["disagreements"] == pair["right_only_first"] + pair["right_only_second"]
    picked = result["attention_digits"]
    assert [d["test_index"] for d in picked][:3] == [0, 1, 2] and all(d["vit"] != d["label"] for d in picked[3:])
    rollout = result["rollout_entropy"]
    assert 0 < rollout["conv_stem_mean"] <= 1 and 0 < rollout["vit_mean"] <= 1
    assert rollout["difference_low"] <= rollout["difference_mean"] <= rollout["difference_high"]
    assert common.CONV_STEM_CHECKPOINT.stat().st_mtime_ns == committed  # a study never writes a checkpoint


def test_seed_study_trains_tiny_runs_and_says_which_are_missing():
    result = run_quick("seeds")
    runs = {(r["model"], r["seed"]): r for r in result["runs"]}
    assert set(runs) == {("ViT", 0), ("ViT", 1), ("conv-stem ViT", 0), ("CNN", 0), ("CNN", 1)}
    assert result["missing_runs"] == {"conv-stem ViT": 1}
    assert runs[("ViT", 0)]["source"] == "checkpoint" and runs[("ViT", 1)]["source"] == "trained by this run"
    assert runs[("ViT", 0)]["training"] == "float32, eager"  # as the checkpoint records it
    assert result["test_accuracy"]["ViT"]["runs"] == 2 and result["test_accuracy"]["conv-stem ViT"]["std"] is None
    (welch,) = result["welch"]  # CNN against ViT; the conv-stem ViT has one run
    assert welch["first"] == "CNN" and 0 <= welch["p"] <= 1 and not welch["training_known_and_equal"]
    rows = [row["run"] for row in seeds.nb.read_table(QUICK_RESULTS / "seed_study.csv")]
    assert rows == ["ViT, seed 1", "CNN, seed 1"]


def test_calibration_study_reads_the_stored_temperatures():
    result = run_quick("calibration")
    stored = {name: common.load_model(name)[1] for name in ("ViT", "conv-stem ViT", "CNN")}
    assert result["resamples"] == 100 and result["bins"] == 15
    for name, row in result["models"].items():
        assert row["temperature"] == stored[name]["temperature"]  # read, not fitted again
        assert row["unsure_below"] == stored[name]["unsure_below"]
        before, after = row["before"], row["after"]
        assert before["temperature"] == 1.0 and after["temperature"] == row["temperature"] < 1
        assert after["mean_confidence"] > before["mean_confidence"] and after["nll"] < before["nll"]
        for scores in (before, after):
            assert scores["ece_low"] <= scores["ece_high"] and 0 <= scores["brier"] <= 2
    assert [(p["first"], p["second"]) for p in result["paired_after_scaling"]] == [
        ("ViT", "conv-stem ViT"), ("ViT", "CNN"), ("conv-stem ViT", "CNN")]


def test_attention_statistics_measure_distances_filters_and_centroids():
    result = run_quick("attention_statistics")
    distance = result["attention_distance"]
    assert len(distance["per_layer_and_head"]) == 6 and len(distance["per_layer_and_head"][0]) == 4
    assert 0 < distance["min"] <= distance["max"] and distance["uniform"] == pytest.approx(14.1, abs=0.05)
    explained = result["patch_filters"]["explained_variance"]
    assert len(explained) == 49 and sum(explained) == pytest.approx(1.0, abs=1e-5)
    features = result["cls_features"]
    assert features["test_digits"] == 500 and sum(map(sum, features["confusion_matrix"])) == 500
    pairs = features["pairs_by_confusions"]
    assert len(pairs) == 45 and sorted(p["rank_distance_full"] for p in pairs) == list(range(1, 46))
    assert sum(p["confusions"] for p in pairs) == features["errors"]
    assert set(features["spearman_confusions_vs_measure"]) == {"distance_2d", "distance_full", "separation_full"}


# The convolutional stem (common.ConvStem, registered as ViTConfig(stem="conv")).

@pytest.mark.parametrize("patch_size, grid", [(7, 4), (4, 7), (14, 2)])
def test_conv_stem_ends_on_the_patch_grid(patch_size, grid):
    config = common.nb.ViTConfig(patch_size=patch_size, embed_dim=32, depth=1, num_heads=4, stem="conv")
    model = common.nb.VisionTransformer(config)
    assert model.patch_embed(torch.randn(3, 1, 28, 28)).shape == (3, grid * grid, 32)
    logits, maps = model(torch.randn(3, 1, 28, 28), return_attention=True)
    assert logits.shape == (3, 10) and maps.shape == (1, 3, 4, grid * grid + 1, grid * grid + 1)


def test_conv_stem_default_is_xiao_et_al_and_under_a_million():
    config = common.nb.ViTConfig(stem="conv")
    convs = [m for m in common.nb.VisionTransformer(config).patch_embed.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 32, (3, 3), (2, 2)), (32, 64, (3, 3), (2, 2)), (64, 128, (3, 3), (2, 2)), (128, 128, (1, 1), (1, 1))]
    assert common.nb.vit_parameter_formula(config, common.conv_stem_parameters) < 1_000_000


@pytest.mark.parametrize("kwargs", [dict(stem="conv"), dict(stem="conv", patch_size=4, embed_dim=64, num_heads=2),
                                    dict(stem="conv", patch_size=14, embed_dim=48, depth=1, num_heads=6)])
def test_conv_stem_parameter_count_matches_formula(kwargs):
    config = common.nb.ViTConfig(**kwargs)
    assert (common.nb.count_parameters(common.nb.VisionTransformer(config))
            == common.nb.vit_parameter_formula(config, common.conv_stem_parameters))


def test_conv_stem_checkpoint_round_trip(tmp_path):
    nb = common.nb
    torch.manual_seed(0)
    config = nb.ViTConfig(embed_dim=32, depth=2, num_heads=4, stem="conv")
    model = nb.VisionTransformer(config)
    model.train()
    model(torch.randn(16, 1, 28, 28))  # move the BatchNorm running statistics away from their initial values
    model.eval()
    path = tmp_path / "conv.pt"
    nb.save_checkpoint(path, {"config": asdict(config), "model": model.state_dict(), "settings": {}})
    reloaded = nb.model_from_checkpoint(nb.load_checkpoint(path)).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))


def test_the_committed_conv_stem_checkpoint_holds_the_notebook_recipe():
    _, config, settings, _ = conv_stem.recipes()["conv-stem ViT"]
    checkpoint = common.nb.load_checkpoint(common.CONV_STEM_CHECKPOINT, settings)  # raises if the settings differ
    assert checkpoint["config"] == config and config["stem"] == "conv"


# The seed study's table, the calibration bins and the mean attention distance.

def test_result_rows_are_reused_and_only_missing_runs_train(nb, mnist, tmp_path, monkeypatch):
    path, table = tmp_path / "seed_study.csv", []
    settings = {"seed": 1, "epochs": 1, "channels": [4]}
    train_settings = dict(epochs=1, batch_size=500, lr=1e-3, weight_decay=0.0, warmup_epochs=1, label_smoothing=0.0,
                          grad_clip=1.0, augment=False)
    row = nb.train_or_reuse_row("CNN, seed 1", lambda: nb.ConvNet([4]), settings, train_settings, mnist, table, path,
                                seeds.SEED_COLUMNS, with_test=True, model="CNN")
    assert row["model"] == "CNN" and row["seed"] == 1 and 0 < row["test_acc"] <= 1 and row["training"]
    reread = nb.read_table(path)
    assert nb.cached_result(reread, settings, with_test=True)["val_acc"] == str(row["val_acc"])
    assert nb.cached_result(reread, dict(settings, seed=2)) is None
    monkeypatch.setattr(nb, "train", lambda *args, **kwargs: pytest.fail("a cached run was trained again"))
    again = nb.train_or_reuse_row("CNN, seed 1", lambda: nb.ConvNet([4]), settings, train_settings, mnist, reread,
                                  path, seeds.SEED_COLUMNS, with_test=True, model="CNN")
    assert again["val_acc"] == str(row["val_acc"])


def test_mean_std_range():
    assert seeds.mean_std_range([0.9947]) == "99.47% (one run)"
    assert seeds.mean_std_range([0.99, 0.995, 1.0]) == "99.50% ± 0.50 (99.00–100.00), 3 seeds"


def test_calibration_bins_and_ece():
    confidence = torch.tensor([0.95, 0.95, 0.95, 0.95, 0.55, 0.55])
    correct = torch.tensor([True, True, True, False, True, False])
    _, mean_conf, accuracy, count, ece = calibration.calibration_bins(confidence, correct, n_bins=10)
    assert count.sum() == 6 and count[9] == 4 and count[5] == 2
    assert accuracy[9] == pytest.approx(0.75) and mean_conf[9] == pytest.approx(0.95)
    assert ece == pytest.approx(4 / 6 * 0.2 + 2 / 6 * 0.05)


def test_bootstrap_ece_brackets_the_ece_of_a_calibrated_sample():
    generator = torch.Generator().manual_seed(0)
    confidence = 0.5 + 0.5 * torch.rand(5_000, generator=generator)
    correct = torch.rand(5_000, generator=generator) < confidence  # calibrated by construction
    low, high = calibration.bootstrap_ece(confidence, correct, resamples=200)
    assert 0 <= low < high < 0.05
    assert calibration.bootstrap_ece(confidence, correct, resamples=200) == (low, high)  # seeded


def test_mean_attention_distance_of_self_attention_is_zero():
    maps = torch.eye(17).expand(2, 3, 4, 17, 17)
    torch.testing.assert_close(attention_statistics.mean_attention_distance(maps, 7), torch.zeros(2, 4))


def test_mean_attention_distance_of_a_neighbour_head():
    # every patch of a 4x4 grid attends only to the patch on its right (or left, at the right edge): 7 pixels away
    maps = torch.zeros(1, 1, 1, 17, 17)
    for q in range(16):
        r, c = divmod(q, 4)
        maps[0, 0, 0, q + 1, 1 + r * 4 + (c + 1 if c < 3 else c - 1)] = 1
    maps[0, 0, 0, 0, 0] = 1
    assert attention_statistics.mean_attention_distance(maps, 7).item() == pytest.approx(7.0)


def test_centroid_distances_and_ranks():
    points = torch.tensor([[float(d), 0.0] for d in range(10) for _ in range(3)]).numpy()
    labels = torch.arange(10).repeat_interleave(3).numpy()
    distances, spread = attention_statistics.centroid_distances(points, labels)
    assert distances[2, 5] == pytest.approx(3.0) and spread.max() == pytest.approx(0.0)
    assert attention_statistics.ranks([0.3, 0.1, 0.2]) == [3, 1, 2]
