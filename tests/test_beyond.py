"""Issues 11 and 12, as far as they stay in the notebook: the studies' result table, temperature scaling and the
unsure threshold kept in the checkpoint, the affine transform of the augmentation, and the deletion test, each on
hand-made inputs with known answers. (The convolutional stem, the corruptions and the mean attention distance left
for studies/: their tests are in tests/test_studies_*.py.)"""

import math

import pytest
import torch
import torch.nn as nn


def test_result_rows_are_reused_and_only_missing_runs_train(nb, mnist, tmp_path, monkeypatch):
    path, table = tmp_path / "seed_study.csv", []
    columns = ["run", "model", "seed", "epochs", "parameters", "best_epoch", "val_acc", "test_acc", "seconds",
               "training", "settings"]
    settings = {"seed": 1, "epochs": 1, "channels": [4]}
    train_settings = dict(epochs=1, batch_size=500, lr=1e-3, weight_decay=0.0, warmup_epochs=1, label_smoothing=0.0,
                          grad_clip=1.0, augment=False)
    row = nb.train_or_reuse_row("CNN, seed 1", lambda: nb.ConvNet([4]), settings, train_settings, mnist, table, path,
                        columns, with_test=True, model="CNN")
    assert row["model"] == "CNN" and row["seed"] == 1 and 0 < row["test_acc"] <= 1 and row["training"] == "float32"
    reread = nb.read_table(path)
    assert nb.cached_result(reread, settings, with_test=True)["val_acc"] == str(row["val_acc"])
    assert nb.cached_result(reread, dict(settings, seed=2)) is None
    monkeypatch.setattr(nb, "train", lambda *args, **kwargs: pytest.fail("a cached run was trained again"))
    again = nb.train_or_reuse_row("CNN, seed 1", lambda: nb.ConvNet([4]), settings, train_settings, mnist, reread, path,
                          columns, with_test=True, model="CNN")
    assert again["val_acc"] == str(row["val_acc"])


def test_fit_temperature_recovers_a_known_temperature(nb):
    generator = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(20_000, 10, generator=generator)
    labels = torch.multinomial((logits / 2.5).softmax(1), 1, generator=generator)[:, 0]  # truly calibrated at T = 2.5
    assert nb.fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)
    sharp = torch.multinomial((logits / 0.5).softmax(1), 1, generator=generator)[:, 0]
    assert nb.fit_temperature(logits, sharp) == pytest.approx(0.5, rel=0.05)


def readings(top: list[float], right: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities (N, 10) whose top probabilities are `top` (on digit 0), and labels that make each reading right
    or wrong as `right` says."""
    top = torch.tensor(top)
    probs = ((1 - top) / 9)[:, None].repeat(1, 10)
    probs[:, 0] = top
    return probs, torch.tensor([0 if r else 1 for r in right])


def test_unsure_threshold_is_the_highest_under_which_a_tenth_of_the_readings_are_wrong(nb):
    # 100 right readings at 99.75%, then one wrong at 90% and two right at 80%: under any threshold of 0.998 and up
    # 1 in 103 is wrong; under 0.997 (down to 0.901) 1 in 3
    probs, labels = readings([0.9975] * 100 + [0.9, 0.8, 0.8], [True] * 100 + [False, True, True])
    assert nb.unsure_threshold(probs, labels) == pytest.approx(0.997)
    assert nb.unsure_threshold(probs, labels, wrong_at_least=0.5) == 0.5  # never that wrong: the lowest threshold
    all_right, labels = readings([0.6, 0.7, 0.99], [True] * 3)
    assert nb.unsure_threshold(all_right, labels) == 0.5


def test_calibration_is_fitted_once_and_kept_in_the_checkpoint(nb, tmp_path):
    generator = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(5_000, 10, generator=generator)
    labels = torch.multinomial((logits / 2.0).softmax(1), 1, generator=generator)[:, 0]
    path = tmp_path / "vit.pt"
    nb.save_checkpoint(path, {"settings": {"seed": 0}, "metrics": {"val_acc": 0.9, "val_loss": 0.3}})
    calibration, fitted = nb.stored_calibration(path, lambda: logits, labels)
    assert fitted and calibration["temperature"] == pytest.approx(2.0, rel=0.1)
    expected = nb.unsure_threshold((logits / calibration["temperature"]).softmax(1), labels)
    assert calibration["unsure_below"] == expected
    assert nb.load_checkpoint(path)["metrics"] == {"val_acc": 0.9, "val_loss": 0.3, **calibration}
    again, fitted = nb.stored_calibration(path, lambda: pytest.fail("fitted a second time"), labels)
    assert not fitted and again == calibration
    # a checkpoint with a temperature but no threshold (an older one) keeps its temperature
    nb.save_checkpoint(path, {"settings": {"seed": 0}, "metrics": {"temperature": 1.0}})
    calibration, fitted = nb.stored_calibration(path, lambda: logits, labels)
    assert fitted and calibration == {"temperature": 1.0,
                                      "unsure_below": nb.unsure_threshold(logits.softmax(1), labels)}


def test_a_one_pixel_image_rotated_by_90_degrees_lands_where_it_should(nb):
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 3, 20] = 1.0  # top right
    anticlockwise = nb.affine(x, torch.tensor([math.pi / 2]), torch.ones(1), torch.zeros(1, 2))
    assert anticlockwise[0, 0, 7, 3] == pytest.approx(1.0, abs=1e-5)  # top left: the image turned anticlockwise
    assert anticlockwise.sum() == pytest.approx(1.0, abs=1e-5)
    clockwise = nb.affine(x, torch.tensor([-math.pi / 2]), torch.ones(1), torch.zeros(1, 2))
    assert clockwise[0, 0, 20, 24] == pytest.approx(1.0, abs=1e-5)  # bottom right
    assert torch.allclose(nb.affine(x, torch.zeros(1), torch.ones(1), torch.zeros(1, 2)), x, atol=1e-6)


class OnePatchModel(nn.Module):
    """Answers 1 while patch 5 (second row, second column of 7x7 patches) holds ink, else 0."""

    def forward(self, x):
        ink = x[:, 0, 7:14, 7:14].mean((1, 2)) > 0  # inputs are normalised with mean 0, std 1 below
        return torch.stack([(~ink).float(), ink.float()], 1)


def test_deletion_curve_drops_at_the_first_step_when_the_decisive_patch_is_ranked_first(nb):
    images = torch.rand(10, 1, 28, 28) * 0.5 + 0.5
    labels = torch.ones(10, dtype=torch.long)
    data = nb.MNISTSplits(images, labels, images, labels, images, labels, mean=0.0, std=1.0)
    others = [p for p in range(16) if p != 5]
    first = torch.tensor([5, *others]).expand(10, 16)
    last = torch.tensor([*others, 5]).expand(10, 16)
    right_first = nb.deletion_curve(OnePatchModel(), images, labels, data, first)  # (17, 10)
    assert right_first.shape == (17, 10) and right_first.mean(1).tolist() == [1.0] + [0.0] * 16
    assert nb.deletion_curve(OnePatchModel(), images, labels, data, last).mean(1).tolist() == [1.0] * 16 + [0.0]
    assert nb.area_under(torch.tensor([1.0] + [0.0] * 16)).item() == pytest.approx(0.5 / 16)
    assert nb.area_under(torch.ones(17)).item() == pytest.approx(1.0)
    assert nb.area_under(right_first).tolist() == pytest.approx([0.5 / 16] * 10)  # every image's own area


def test_blank_patches_sets_exactly_the_masked_patches_to_background(nb):
    x = torch.ones(1, 1, 28, 28)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, 1] = True  # first row, second column
    blanked = nb.blank_patches(x, mask)
    assert blanked[0, 0, :7, 7:14].eq(0).all() and blanked.sum() == 28 * 28 - 49
