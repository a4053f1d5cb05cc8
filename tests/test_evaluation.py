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


def readings(top: list[float], right: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities (N, 10) whose top probabilities are `top` (on digit 0, the rest shared evenly), and labels that
    make each reading right or wrong as `right` says."""
    top = torch.tensor(top)
    probs = ((1 - top) / 9)[:, None].repeat(1, 10)
    probs[:, 0] = top
    return probs, torch.tensor([0 if r else 1 for r in right])


def test_expected_calibration_error_weighs_each_bins_gap(nb):
    # four readings at 95% of which 3 are right (overconfident by 0.2), two at 55% both right (underconfident by 0.45)
    probs, labels = readings([0.95] * 4 + [0.55] * 2, [True, True, True, False, True, True])
    assert nb.expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(4 / 6 * 0.2 + 2 / 6 * 0.45)
    # in one bin the two gaps cancel but for the difference of the means: |5/6 - (4 * 0.95 + 2 * 0.55) / 6|
    assert nb.expected_calibration_error(probs, labels, n_bins=1) == pytest.approx(abs(5 / 6 - 4.9 / 6))
    assert nb.expected_calibration_error(probs, labels) == pytest.approx(4 / 6 * 0.2 + 2 / 6 * 0.45)  # 15 bins


def test_expected_calibration_error_of_calibrated_and_of_always_wrong_readings(nb):
    probs, labels = readings([0.8] * 5 + [0.3] * 10, [True] * 4 + [False] + [True] * 3 + [False] * 7)
    assert nb.expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-6)
    probs, labels = readings([0.99, 0.7, 0.4], [False] * 3)
    assert nb.expected_calibration_error(probs, labels) == pytest.approx((0.99 + 0.7 + 0.4) / 3)


def test_mcnemar_counts_the_disagreements_and_gives_the_exact_p_value(nb):
    a = torch.tensor([True] * 90 + [True] * 8 + [False] * 2)
    b = torch.tensor([True] * 90 + [False] * 8 + [True] * 2)
    right_a_only, right_b_only, p = nb.mcnemar(a, b)
    assert (right_a_only, right_b_only) == (8, 2)
    assert p == pytest.approx(2 * sum(math.comb(10, k) for k in range(3)) / 2**10)  # 0.109
    assert nb.mcnemar(a, a) == (0, 0, 1.0)
    assert nb.mcnemar(torch.tensor([True] * 20), torch.tensor([False] * 20))[2] < 1e-5
