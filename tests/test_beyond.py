"""Issues 11 and 12: the convolutional stem, the seed-study table, temperature scaling, the corruptions and the
deletion test, each on hand-made inputs with known answers."""

import math
from dataclasses import asdict

import pytest
import torch
import torch.nn as nn


@pytest.mark.parametrize("patch_size, grid", [(7, 4), (4, 7), (14, 2)])
def test_conv_stem_ends_on_the_patch_grid(nb, patch_size, grid):
    config = nb.ViTConfig(patch_size=patch_size, embed_dim=32, depth=1, num_heads=4, stem="conv")
    model = nb.VisionTransformer(config)
    assert model.patch_embed(torch.randn(3, 1, 28, 28)).shape == (3, grid * grid, 32)
    logits, maps = model(torch.randn(3, 1, 28, 28), return_attention=True)
    assert logits.shape == (3, 10) and maps.shape == (1, 3, 4, grid * grid + 1, grid * grid + 1)


def test_conv_stem_default_is_xiao_et_al_and_under_a_million(nb):
    config = nb.ViTConfig(stem="conv")
    convs = [m for m in nb.VisionTransformer(config).patch_embed.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (1, 32, (3, 3), (2, 2)), (32, 64, (3, 3), (2, 2)), (64, 128, (3, 3), (2, 2)), (128, 128, (1, 1), (1, 1))]
    assert nb.vit_parameter_formula(config, nb.conv_stem_parameters) < 1_000_000


@pytest.mark.parametrize("kwargs", [dict(stem="conv"), dict(stem="conv", patch_size=4, embed_dim=64, num_heads=2),
                                    dict(stem="conv", patch_size=14, embed_dim=48, depth=1, num_heads=6)])
def test_conv_stem_parameter_count_matches_formula(nb, kwargs):
    config = nb.ViTConfig(**kwargs)
    assert nb.count_parameters(nb.VisionTransformer(config)) == nb.vit_parameter_formula(config, nb.conv_stem_parameters)


def test_conv_stem_checkpoint_round_trip(nb, tmp_path):
    torch.manual_seed(0)
    config = nb.ViTConfig(embed_dim=32, depth=2, num_heads=4, stem="conv")
    model = nb.VisionTransformer(config)
    model.train()
    model(torch.randn(16, 1, 28, 28))  # move the BatchNorm running statistics away from their initial values
    model.eval()
    path = tmp_path / "conv.pt"
    nb.save_checkpoint(path, {"config": asdict(config), "model": model.state_dict(), "settings": {}})
    reloaded = nb.model_from_checkpoint(nb.load_checkpoint(path), config).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))


def test_unknown_stem_is_refused(nb):
    with pytest.raises(ValueError, match="stem 'resnet' is not one of"):
        nb.VisionTransformer(nb.ViTConfig(stem="resnet"))


def test_result_rows_are_reused_and_only_missing_runs_train(nb, mnist, tmp_path, monkeypatch):
    path, table = tmp_path / "seed_study.csv", []
    settings = {"seed": 1, "epochs": 1, "channels": [4]}
    train_settings = dict(epochs=1, batch_size=500, lr=1e-3, weight_decay=0.0, warmup_epochs=1, label_smoothing=0.0,
                          grad_clip=1.0, augment=False)
    row = nb.train_or_reuse_row("CNN, seed 1", lambda: nb.ConvNet([4]), settings, train_settings, mnist, table, path,
                        nb.SEED_COLUMNS, with_test=True, model="CNN")
    assert row["model"] == "CNN" and row["seed"] == 1 and 0 < row["test_acc"] <= 1
    reread = nb.read_table(path)
    assert nb.cached_result(reread, settings, with_test=True)["val_acc"] == str(row["val_acc"])
    assert nb.cached_result(reread, dict(settings, seed=2)) is None
    monkeypatch.setattr(nb, "train", lambda *args, **kwargs: pytest.fail("a cached run was trained again"))
    again = nb.train_or_reuse_row("CNN, seed 1", lambda: nb.ConvNet([4]), settings, train_settings, mnist, reread, path,
                          nb.SEED_COLUMNS, with_test=True, model="CNN")
    assert again["val_acc"] == str(row["val_acc"])


def test_fit_temperature_recovers_a_known_temperature(nb):
    generator = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(20_000, 10, generator=generator)
    labels = torch.multinomial((logits / 2.5).softmax(1), 1, generator=generator)[:, 0]  # truly calibrated at T = 2.5
    assert nb.fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)
    sharp = torch.multinomial((logits / 0.5).softmax(1), 1, generator=generator)[:, 0]
    assert nb.fit_temperature(logits, sharp) == pytest.approx(0.5, rel=0.05)


def test_a_one_pixel_image_rotated_by_90_degrees_lands_where_it_should(nb):
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 3, 20] = 1.0  # top right
    anticlockwise = nb.affine(x, torch.tensor([math.pi / 2]), torch.ones(1), torch.zeros(1, 2))
    assert anticlockwise[0, 0, 7, 3] == pytest.approx(1.0, abs=1e-5)  # top left: the image turned anticlockwise
    assert anticlockwise.sum() == pytest.approx(1.0, abs=1e-5)
    for seed in range(4):  # rotate() picks the direction at random: one of the two quarter turns
        rotated = nb.rotate(x, 90, torch.Generator().manual_seed(seed))
        assert rotated[0, 0, 7, 3] == pytest.approx(1.0, abs=1e-5) or rotated[0, 0, 20, 24] == pytest.approx(1.0,
                                                                                                              abs=1e-5)
    assert torch.allclose(nb.rotate(x, 0, torch.Generator()), x, atol=1e-6)


@pytest.mark.parametrize("pixels", [0, 1, 3, 6])
def test_translation_moves_mass_by_exactly_k_pixels(nb, pixels):
    x = torch.zeros(8, 1, 28, 28)
    x[:, 0, 10:18, 12:16] = torch.rand(8, 8, 4)
    shifted = nb.translate(x, pixels, torch.Generator().manual_seed(0))
    rows, cols = torch.arange(28.0)[:, None], torch.arange(28.0)[None, :]
    for before, after in zip(x[:, 0], shifted[:, 0]):
        assert after.sum() == pytest.approx(before.sum().item())  # nothing leaves the image at these sizes
        moved = torch.tensor([((after * rows).sum() - (before * rows).sum()) / before.sum(),
                              ((after * cols).sum() - (before * cols).sum()) / before.sum()])
        assert sorted(moved.abs().tolist()) == pytest.approx([0, pixels], abs=1e-4)


def test_noise_and_occlusion_at_zero_severity_are_the_identity(nb, mnist):
    x = mnist.x_test[:16]
    assert torch.equal(nb.add_noise(x, 0.0, torch.Generator().manual_seed(0)), x)
    assert torch.equal(nb.occlude(x, 0, torch.Generator().manual_seed(0)), x)
    noisy = nb.add_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1 and not torch.equal(noisy, x)
    assert torch.equal(noisy, nb.add_noise(x, 0.5, torch.Generator().manual_seed(0)))  # seeded


def test_occlusion_blanks_a_square_on_the_digit(nb):
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 20, 5] = 1.0  # the only ink pixel: the square must be centred on it
    occluded = nb.occlude(torch.ones_like(x) * 0.2 + x * 0.8, 4, torch.Generator().manual_seed(0))
    blanked = torch.nonzero(occluded[0, 0] == 0)
    assert len(blanked) == 16
    assert blanked.min(0).values.tolist() == [18, 3] and blanked.max(0).values.tolist() == [21, 6]


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
