"""Unit tests of the notebook's building blocks, run against the notebook's own code."""

from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT


@pytest.fixture
def config(nb):
    return nb.ViTConfig(patch_size=7, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2)


def test_attention_rows_sum_to_one(nb, config):
    torch.manual_seed(0)
    attention = nb.MultiHeadSelfAttention(config)
    _, attn = attention(torch.randn(3, 17, 32), return_attention=True)
    assert attn.shape == (3, 4, 17, 17)
    assert torch.all(attn >= 0)
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 4, 17), atol=1e-6, rtol=0)


def test_explicit_attention_equals_fused_sdpa(nb, config):
    torch.manual_seed(0)
    attention = nb.MultiHeadSelfAttention(config).eval()
    x = torch.randn(4, 17, 32) * 3
    explicit, attn = attention(x, return_attention=True)
    attention.fused = True  # PyTorch's fused kernel, which a CPU does not take by default
    fused, no_maps = attention(x)
    assert attn is not None and no_maps is None
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=0)
    # and the explicit path really is softmax(QK^T / sqrt(d)) V, written independently here
    q, k, v = attention.qkv(x).reshape(4, 17, 3, 4, 8).permute(2, 0, 3, 1, 4)
    reference = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1) @ v
    reference = attention.proj(reference.transpose(1, 2).reshape(4, 17, 32))
    torch.testing.assert_close(explicit, reference, atol=1e-5, rtol=0)


def force_attention_path(nb, model, fused):
    attentions = [m for m in model.modules() if isinstance(m, nb.MultiHeadSelfAttention)]
    assert attentions
    for module in attentions:
        module.fused = fused


def test_whole_model_explicit_equals_fused(nb, config):
    torch.manual_seed(0)
    model = nb.VisionTransformer(config).eval()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        logits, maps = model(x, return_attention=True)
        force_attention_path(nb, model, True)
        torch.testing.assert_close(model(x), logits, atol=1e-5, rtol=0)
    assert maps.shape == (config.depth, 5, config.num_heads, 17, 17)


def test_attention_path_follows_the_device_unless_forced(nb, config, monkeypatch):
    calls = []

    def fused_kernel(q, k, v, **kwargs):
        calls.append(q.device.type)
        return torch.zeros_like(q)

    monkeypatch.setattr(nb.F, "scaled_dot_product_attention", fused_kernel)
    attention = nb.MultiHeadSelfAttention(config).eval()
    assert attention.fused is None
    attention(torch.randn(2, 17, 32))
    assert calls == []  # by default a CPU takes the explicit path
    attention.fused = True
    attention(torch.randn(2, 17, 32))
    assert calls == ["cpu"]  # forced fused (as the benchmark compares them)
    _, attn = attention(torch.randn(2, 17, 32), return_attention=True)
    assert calls == ["cpu"] and attn.shape == (2, 4, 17, 17)  # the weights: the explicit path, whatever is forced
    with torch.device("meta"):  # a device other than the CPU (shapes only): the fused kernel by default
        on_meta = nb.MultiHeadSelfAttention(config)
        on_meta(torch.randn(2, 17, 32))
        assert calls == ["cpu", "meta"]
        on_meta.fused = False
        on_meta(torch.randn(2, 17, 32))
        assert calls == ["cpu", "meta"]  # forced explicit


def test_a_cpu_model_never_calls_the_fused_kernel_by_default(nb, config, monkeypatch):
    def fused_kernel(*args, **kwargs):
        raise AssertionError("the fused kernel was called on a CPU by default")

    monkeypatch.setattr(nb.F, "scaled_dot_product_attention", fused_kernel)
    model = nb.VisionTransformer(config).train()
    model(torch.randn(3, 1, 28, 28)).sum().backward()  # a training step's forward and backward
    model.eval()
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_patch_embedding_equals_explicit_patchify(nb):
    torch.manual_seed(0)
    for patch_size, channels in [(7, 1), (4, 1), (4, 3)]:
        config = nb.ViTConfig(patch_size=patch_size, in_channels=channels, embed_dim=16, num_heads=4)
        embed = nb.PatchEmbedding(config)
        images = torch.randn(2, channels, 28, 28)
        weight = embed.proj.weight.permute(0, 2, 3, 1).reshape(16, -1)  # (D, P*P*C), rows in patchify's order
        explicit = nb.patchify(images, patch_size) @ weight.T + embed.proj.bias
        torch.testing.assert_close(embed(images), explicit, atol=1e-5, rtol=0)


def test_patchify_takes_patches_row_by_row(nb):
    image = torch.arange(28 * 28, dtype=torch.float32).reshape(1, 1, 28, 28)
    patches = nb.patchify(image, 7)
    assert patches.shape == (1, 16, 49)
    torch.testing.assert_close(patches[0, 1], image[0, 0, :7, 7:14].reshape(-1))  # second patch: top row, 2nd column
    torch.testing.assert_close(patches[0, 4], image[0, 0, 7:14, :7].reshape(-1))  # fifth patch: second row


def test_output_shapes(nb):
    for patch_size in (4, 7, 14):
        config = nb.ViTConfig(patch_size=patch_size, embed_dim=24, depth=1, num_heads=3)
        model = nb.VisionTransformer(config)
        logits, maps = model(torch.randn(2, 1, 28, 28), return_attention=True)
        n = (28 // patch_size) ** 2 + 1
        assert logits.shape == (2, 10)
        assert maps.shape == (1, 2, 3, n, n)


@pytest.mark.parametrize("kwargs", [{}, dict(patch_size=4, embed_dim=64, depth=3, num_heads=2, mlp_ratio=4),
                                    dict(patch_size=14, embed_dim=48, depth=1, num_heads=6, num_classes=7)])
def test_parameter_count_matches_formula(nb, kwargs):
    config = nb.ViTConfig(**kwargs)
    assert nb.count_parameters(nb.VisionTransformer(config)) == nb.vit_parameter_formula(config)


def test_default_model_is_under_a_million_parameters(nb):
    assert nb.vit_parameter_formula(nb.ViTConfig()) < 1_000_000


def test_wrong_input_size_gives_clear_error(nb, config):
    model = nb.VisionTransformer(config)
    with pytest.raises(ValueError, match=r"shape \(B, 1, 28, 28\), got \(2, 1, 32, 32\)"):
        model(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="Add a batch dimension"):
        model(torch.zeros(1, 28, 28))
    with pytest.raises(ValueError, match="must divide"):
        nb.VisionTransformer(nb.ViTConfig(patch_size=5))


def test_weight_decay_only_on_matrices(nb, config):
    model = nb.VisionTransformer(config)
    decay, no_decay = nb.make_optimizer(model, 1e-3, 0.05).param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"])
    assert any(p is model.pos_embed for p in no_decay["params"])
    assert any(p is model.cls_token for p in no_decay["params"])


def test_warmup_cosine_schedule(nb):
    factor = nb.warmup_cosine(10, 110)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.5) and factor(110) == pytest.approx(0.0)


def test_random_affine_keeps_shape_and_moves_pixels(nb):
    torch.manual_seed(0)
    x = torch.rand(16, 1, 28, 28)
    y = nb.random_affine(x)
    assert y.shape == x.shape
    assert not torch.allclose(x, y)
    assert torch.allclose(nb.random_affine(x, max_degrees=0, scale=(1, 1), max_shift=0), x, atol=1e-5)


def test_ema_starts_at_the_model_and_ramps_its_decay(nb, config):
    model = nb.VisionTransformer(config)
    ema = nb.make_ema(model, 0.9)
    initial = model.head.weight.detach().clone()
    torch.testing.assert_close(ema.module.head.weight, initial)
    with torch.no_grad():
        model.head.weight.add_(1.0)
    ema.update_parameters(model)  # the first step after the start: decay min(0.9, (1 + 1) / (10 + 1))
    torch.testing.assert_close(ema.module.head.weight, 2 / 11 * initial + 9 / 11 * model.head.weight)
    for _ in range(100):  # decay 0.9 from step 80 on: the average converges to the weights it is fed
        ema.update_parameters(model)
    torch.testing.assert_close(ema.module.head.weight, model.head.weight, atol=1e-4, rtol=0)


def test_ema_averages_batchnorm_statistics_and_copies_its_counter(nb):
    model = nb.ConvNet([4])
    ema = nb.make_ema(model, 0.5)
    model.train()
    model(torch.randn(8, 1, 28, 28) + 3)  # moves the running mean, counts one batch
    bn, bn_ema = model.features[1], ema.module.features[1]
    ema.update_parameters(model)  # t = 1: decay min(0.5, 2/11)
    torch.testing.assert_close(bn_ema.running_mean, 9 / 11 * bn.running_mean)  # it started at 0
    assert bn_ema.num_batches_tracked == bn.num_batches_tracked == 1


def test_model_overfits_256_training_images(nb, mnist):
    torch.manual_seed(0)
    x, y = mnist.x_train[:256], mnist.y_train[:256]
    model = nb.VisionTransformer(nb.ViTConfig(patch_size=7, embed_dim=64, depth=2, num_heads=4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    model.train()
    for _ in range(150):
        for i in range(0, 256, 64):
            loss = F.cross_entropy(model(mnist.normalize(x[i:i + 64])), y[i:i + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    _, accuracy = nb.evaluate(model, x, y, mnist)
    assert accuracy == 1.0


def test_train_logs_every_field_and_keeps_best_weights(nb, mnist, config):
    torch.manual_seed(0)
    model = nb.VisionTransformer(config)
    history = nb.train(model, mnist, epochs=2, batch_size=256, lr=1e-3, weight_decay=0.05, warmup_epochs=1,
                       label_smoothing=0.1, grad_clip=1.0, augment=True, ema_decay=0.99, name="test")
    assert set(nb.HISTORY_FIELDS) <= set(history)
    assert all(len(history[f]) == 2 for f in nb.HISTORY_FIELDS)
    best_epoch = history["best_epoch"]
    _, val_acc = nb.evaluate(model, mnist.x_val, mnist.y_val, mnist)
    assert val_acc == pytest.approx(history["val_acc"][best_epoch - 1])


def test_checkpoint_round_trip_gives_identical_logits(nb, config, tmp_path):
    torch.manual_seed(0)
    model = nb.VisionTransformer(config).eval()
    path = tmp_path / "vit.pt"
    settings = dict(asdict(config), epochs=1)
    nb.save_checkpoint(path, {"config": asdict(config), "model": model.state_dict(), "settings": settings})
    assert not list(tmp_path.glob("*.tmp"))
    reloaded = nb.model_from_checkpoint(nb.load_checkpoint(path, settings)).eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))


def test_mismatched_checkpoint_gives_clear_error(nb, config, tmp_path):
    model = nb.VisionTransformer(config)
    path = tmp_path / "vit.pt"
    nb.save_checkpoint(path, {"config": asdict(config), "model": model.state_dict(), "settings": {"depth": 2}})
    with pytest.raises(nb.CheckpointError, match=r"vit.pt was trained with other settings \(depth: 2 in the file, "
                                                 r"3 now\).*RETRAIN = True.*vit.prev.pt"):
        nb.load_checkpoint(path, {"depth": 3})
    with pytest.raises(nb.CheckpointError, match=r"lr: None in the file, 0.001 now"):  # a setting it lacks
        nb.load_checkpoint(path, {"depth": 2, "lr": 1e-3})
    checkpoint = nb.load_checkpoint(path, {"depth": 2})
    checkpoint["config"]["depth"] = 3  # weights of a 2-block model under a 3-block config
    with pytest.raises(nb.CheckpointError, match="do not fit its own config"):
        nb.model_from_checkpoint(checkpoint)


def test_keep_previous_never_loses_a_checkpoint(nb, tmp_path):
    path = tmp_path / "vit_mnist.pt"
    path.write_bytes(b"old")
    nb.keep_previous(path)
    assert (tmp_path / "vit_mnist.prev.pt").read_bytes() == b"old" and not path.exists()


def test_missing_mnist_gives_clear_error(nb, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(nb.torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(FileNotFoundError, match="MNIST_DATA_DIR"):
        nb.load_mnist(tmp_path / "empty")


def test_data_split_is_seeded_and_disjoint(nb, data_dir):
    a = nb.load_mnist(data_dir, val_size=1000, seed=1)
    b = nb.load_mnist(data_dir, val_size=1000, seed=1)
    assert torch.equal(a.x_val, b.x_val) and len(a.x_train) == 59_000 and len(a.x_test) == 10_000
    train_rows = {row.numpy().tobytes() for row in a.x_train[:5000].flatten(1)}
    assert not any(row.numpy().tobytes() in train_rows for row in a.x_val.flatten(1)[:200] if row.sum() > 0)
    assert abs(a.mean - a.x_train.mean().item()) < 1e-6


def test_explicit_equals_fused_attention_on_the_committed_vit(nb, mnist):
    """The two attention paths agree on the trained weights too, not only on random ones."""
    checkpoint = nb.load_checkpoint(ROOT / "checkpoints" / "vit_mnist.pt")
    model = nb.model_from_checkpoint(checkpoint).eval()
    x = (mnist.x_test[:500] - checkpoint["normalization"]["mean"]) / checkpoint["normalization"]["std"]
    with torch.no_grad():
        explicit = model(x)  # on a CPU the explicit path, by default
        force_attention_path(nb, model, True)
        fused = model(x)
    torch.testing.assert_close(fused, explicit, atol=1e-4, rtol=0)
    assert torch.equal(fused.argmax(1), explicit.argmax(1))
