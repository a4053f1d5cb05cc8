"""Tests of the evaluation and attention-analysis helpers (sections 6 and 7)."""

import math

import pytest
import torch


def test_rollout_of_identity_maps_is_identity(nb):
    maps = torch.eye(5).expand(3, 2, 4, 5, 5)  # (layers, B, heads, T, T)
    torch.testing.assert_close(nb.attention_rollout(maps), torch.eye(5).expand(2, 5, 5))


def test_rollout_of_uniform_maps_has_uniform_rows_after_many_layers(nb):
    uniform = torch.full((1, 1, 1, 4, 4), 0.25)
    rollout = nb.attention_rollout(uniform.expand(40, 1, 1, 4, 4))
    torch.testing.assert_close(rollout, torch.full((1, 4, 4), 0.25), atol=1e-6, rtol=0)
    # one layer: half the residual identity, half uniform attention
    one = nb.attention_rollout(uniform)
    torch.testing.assert_close(one[0], 0.5 * torch.eye(4) + 0.125, atol=1e-6, rtol=0)


def test_rollout_rows_sum_to_one(nb):
    torch.manual_seed(0)
    maps = torch.rand(3, 2, 4, 6, 6).softmax(-1)
    # columns of a non-symmetric map do not sum to 1: dividing along the wrong axis would break this test
    rollout = nb.attention_rollout(maps)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 6), atol=1e-5, rtol=0)
    assert not torch.allclose(rollout.sum(-2), torch.ones(2, 6), atol=1e-3)


def test_attention_maps_shape_and_rows(nb, mnist):
    torch.manual_seed(0)
    config = nb.ViTConfig(patch_size=7, embed_dim=32, depth=3, num_heads=4)
    maps = nb.attention_maps(nb.VisionTransformer(config), mnist.x_test[:5], mnist)
    assert maps.shape == (3, 5, 4, 17, 17)
    torch.testing.assert_close(maps.sum(-1), torch.ones(3, 5, 4, 17), atol=1e-5, rtol=0)


def test_mean_attention_distance_of_self_attention_is_zero(nb):
    maps = torch.eye(17).expand(2, 3, 4, 17, 17)
    torch.testing.assert_close(nb.mean_attention_distance(maps, 7), torch.zeros(2, 4))


def test_mean_attention_distance_of_a_neighbour_head(nb):
    # every patch of a 4x4 grid attends only to the patch on its right (or left, at the right edge): 7 pixels away
    maps = torch.zeros(1, 1, 1, 17, 17)
    for q in range(16):
        r, c = divmod(q, 4)
        maps[0, 0, 0, q + 1, 1 + r * 4 + (c + 1 if c < 3 else c - 1)] = 1
    maps[0, 0, 0, 0, 0] = 1
    assert nb.mean_attention_distance(maps, 7).item() == pytest.approx(7.0)


def test_relevance_depends_on_the_class(nb, mnist):
    torch.manual_seed(0)
    model = nb.VisionTransformer(nb.ViTConfig(patch_size=7, embed_dim=32, depth=2, num_heads=4))
    images = mnist.x_test[:2]
    a = nb.relevance_map(model, images, mnist, target=[3, 3])
    b = nb.relevance_map(model, images, mnist, target=[8, 8])
    assert a.shape == (2, 16)
    assert not torch.allclose(a, b)


def test_wilson_interval(nb):
    low, high = nb.wilson_interval(9950, 10_000)
    assert low < 0.995 < high and high < 1
    assert high - low == pytest.approx(2 * 1.96 * math.sqrt(0.995 * 0.005 / 10_000), rel=0.05)
    assert nb.wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_calibration_bins_and_ece(nb):
    confidence = torch.tensor([0.95, 0.95, 0.95, 0.95, 0.55, 0.55])
    correct = torch.tensor([True, True, True, False, True, False])
    _, mean_conf, accuracy, count, ece = nb.calibration_bins(confidence, correct, n_bins=10)
    assert count.sum() == 6 and count[9] == 4 and count[5] == 2
    assert accuracy[9] == pytest.approx(0.75) and mean_conf[9] == pytest.approx(0.95)
    assert ece == pytest.approx(4 / 6 * 0.2 + 2 / 6 * 0.05)


def test_mcnemar_counts_the_disagreements_and_gives_the_exact_p_value(nb):
    a = torch.tensor([True] * 90 + [True] * 8 + [False] * 2)
    b = torch.tensor([True] * 90 + [False] * 8 + [True] * 2)
    right_a_only, right_b_only, p = nb.mcnemar(a, b)
    assert (right_a_only, right_b_only) == (8, 2)
    assert p == pytest.approx(2 * sum(math.comb(10, k) for k in range(3)) / 2**10)  # 0.109
    assert nb.mcnemar(a, a) == (0, 0, 1.0)
    assert nb.mcnemar(torch.tensor([True] * 20), torch.tensor([False] * 20))[2] < 1e-5
