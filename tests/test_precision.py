"""bfloat16 training on CPUs with bfloat16 units: the rule that picks it by measurement, and that it changes nothing
that must stay the same (deterministic, resumable, the committed float32 checkpoints read alike)."""

import pytest
import torch
from conftest import ROOT


@pytest.fixture
def bfloat16(nb, monkeypatch):
    monkeypatch.setattr(nb, "CPU_PRECISION", "bfloat16")


@pytest.mark.parametrize("setting, speedup, expected", [
    ("auto", 3.0, torch.bfloat16),  # a CPU with bfloat16 units
    ("auto", 1.5, torch.bfloat16),  # BFLOAT16_MIN_SPEEDUP itself
    ("auto", 1.2, torch.float32),  # faster, but not by enough
    ("auto", 0.01, torch.float32),  # emulated bfloat16, far slower (a CPU without units)
    ("float32", 3.0, torch.float32),  # forced either way
    ("bfloat16", 0.01, torch.bfloat16)])
def test_the_rule_picks_bfloat16_only_where_it_is_measured_faster(nb, monkeypatch, setting, speedup, expected):
    assert nb.BFLOAT16_MIN_SPEEDUP == 1.5
    monkeypatch.setattr(nb, "CPU_PRECISION", setting)
    monkeypatch.setattr(nb, "bfloat16_speedup", lambda: speedup)
    assert nb.precision_for(torch.device("cpu")) == expected
    assert nb.precision_for(torch.device("cpu"), training=False) == torch.float32  # inference: float32 everywhere


def test_the_measurement_is_a_ratio_of_two_timings(nb):
    state = torch.get_rng_state()
    speedup = nb.bfloat16_speedup(repeats=2)
    assert 0.001 < speedup < 1000
    assert torch.equal(torch.get_rng_state(), state)  # its own random numbers: training's are left as they are


def test_bfloat16_trains_under_autocast_keeps_float32_weights_and_infers_in_float32(nb, bfloat16, monkeypatch):
    cpu = torch.device("cpu")
    assert nb.precision_for(cpu) == torch.bfloat16
    assert nb.precision_for(cpu, training=False) == torch.float32
    assert nb.precision_name(cpu) == "bfloat16 autocast"

    def fused_kernel(*args, **kwargs):
        raise AssertionError("a CPU training step took the fused kernel, the slow one on a CPU")

    monkeypatch.setattr(nb.F, "scaled_dot_product_attention", fused_kernel)  # the explicit path, by the device
    model = nb.VisionTransformer(nb.ViTConfig(embed_dim=32, depth=2, num_heads=4))
    optimizer = nb.make_optimizer(model, 1e-3, 0.05)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    logits, loss = nb.train_step(model, x, y, optimizer, nb.make_scaler(cpu), 0.1, 1.0)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32  # the loss is reduced in float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(s.dtype == torch.float32 for state in optimizer.state.values() for s in state.values()
               if torch.is_tensor(s) and s.is_floating_point())
    assert nb.predict(model, x, nb.Normalization(0.0, 1.0)).dtype == torch.float32


def test_bfloat16_training_is_deterministic(nb, mnist, bfloat16, capsys):
    train_settings = dict(epochs=1, batch_size=256, lr=1e-3, weight_decay=0.05, warmup_epochs=1, label_smoothing=0.1,
                          grad_clip=1.0, augment=True, ema_decay=0.99)
    config = nb.ViTConfig(embed_dim=32, depth=2, num_heads=4)
    runs = [nb.train_new("ViT", lambda: nb.VisionTransformer(config), {"seed": 0}, train_settings, mnist)
            for _ in range(2)]
    assert "bfloat16 autocast" in capsys.readouterr().out  # train_new says how it trains
    assert runs[0][1]["training"] == "bfloat16 autocast"  # and the history keeps it
    for a, b in zip(runs[0][0].state_dict().values(), runs[1][0].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert runs[0][1]["val_acc"] == runs[1][1]["val_acc"]


def test_a_bfloat16_forward_of_the_committed_vit_agrees_with_float32(nb, mnist):
    """The committed ViT (trained in float32) read under bfloat16 autocast: the same digit for at least 99.8% of 2,000
    test digits, probabilities within 0.05 of float32's for at least 99% of them."""
    checkpoint = nb.load_checkpoint(ROOT / "checkpoints" / "vit_mnist.pt")
    model = nb.model_from_checkpoint(checkpoint).eval()
    norm = nb.Normalization(**checkpoint["normalization"])
    x = mnist.x_test[:2000]
    with torch.no_grad():
        reference = model(norm.normalize(x)).softmax(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(norm.normalize(x)).float().softmax(1)
    assert (low.argmax(1) == reference.argmax(1)).float().mean() >= 0.998
    assert ((low - reference).abs().max(1).values <= 0.05).float().mean() >= 0.99
