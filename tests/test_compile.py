"""The compiled training step (torch.compile, used by long CPU training runs) against the eager one."""

import copy
import os
import platform
import shutil
import sysconfig
from pathlib import Path

import pytest
import torch


def can_compile() -> bool:
    return (platform.system() == "Linux" and shutil.which("g++") is not None
            and Path(sysconfig.get_path("include"), "Python.h").is_file())


@pytest.fixture
def compiler():
    """torch.compile's CPU code needs Linux, g++ and Python's headers (without them the notebook trains eagerly): skip
    with the reason; in CI, where .ci/run installs g++, fail instead."""
    if not can_compile():
        reason = (f"torch.compile on a CPU needs Linux, g++ and Python.h ({platform.system()}, g++: "
                  f"{shutil.which('g++')}, headers in {sysconfig.get_path('include')})")
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the compiled tests, but {reason}")
        pytest.skip(reason)


@pytest.fixture
def config(nb):
    return nb.ViTConfig(patch_size=7, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2)


def test_the_rule_compiles_long_cpu_runs_only(nb):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not nb.compiles_training(cpu, nb.COMPILE_MIN_STEPS - 1)
    assert not nb.compiles_training(cuda, 10 * nb.COMPILE_MIN_STEPS)
    assert nb.compiles_training(cpu, nb.COMPILE_MIN_STEPS) == can_compile()


def test_without_a_compiler_or_python_headers_training_is_eager(nb, tmp_path, monkeypatch):
    cpu = torch.device("cpu")
    with monkeypatch.context() as patch:
        patch.setattr(nb.sysconfig, "get_path", lambda name: str(tmp_path))  # a folder without Python.h
        assert not nb.compiles_training(cpu, 10 * nb.COMPILE_MIN_STEPS)
    monkeypatch.setenv("CXX", "no-such-compiler")
    assert not nb.compiles_training(cpu, 10 * nb.COMPILE_MIN_STEPS)


def compiled_graph_targets(model) -> set[str]:
    """The operations in the graphs that torch.compile hands to its backend for a forward pass of `model`."""
    graphs = []

    def record(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    torch._dynamo.reset()
    torch.compile(model, backend=record)(torch.randn(4, 1, 28, 28))
    assert graphs
    return {str(node.target) for graph in graphs for node in graph.graph.nodes}


def test_a_compiled_run_takes_the_explicit_attention(nb, config, mnist, monkeypatch):
    """train() sets the explicit path for the steps of a compiled run (the compiler fuses it), whose graph then holds
    the equation (matrix products and a softmax) and not the fused kernel; the default path is the kernel."""
    model = nb.VisionTransformer(config)
    assert any("scaled_dot_product_attention" in target for target in compiled_graph_targets(model))
    monkeypatch.setattr(nb, "compiles_training", lambda device, steps: True)
    run = nb.TrainingRun(model, mnist, epochs=1, batch_size=128, lr=1e-3, weight_decay=0.05, warmup_epochs=1,
                         ema_decay=0.99, name="vit", resume=None)
    assert not any(block.attn.fused for block in model.blocks)
    assert not any(block.attn.fused for block in run.ema.module.blocks)  # the weight average evaluates the same way
    targets = compiled_graph_targets(model)
    assert not any("scaled_dot_product_attention" in target for target in targets)
    assert any("softmax" in target for target in targets)


@pytest.mark.parametrize("kind", ["ViT", "CNN"])
def test_compiled_training_step_equals_the_eager_one(nb, config, kind, compiler):
    torch.manual_seed(0)
    eager = nb.VisionTransformer(config) if kind == "ViT" else nb.ConvNet([8, 16, 32])
    twin = copy.deepcopy(eager)
    x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
    results = []
    for model, net in ((eager, eager), (twin, torch.compile(twin))):
        optimizer = nb.make_optimizer(model, 1e-3, 0.05)
        logits, loss = nb.train_step(net, x, y, optimizer, nb.make_scaler(x.device), 0.1, 1.0)
        results.append((logits.detach(), loss.detach(), [p.grad for p in model.parameters()],
                        [p.detach() for p in model.parameters()], [b.clone() for b in model.buffers()]))
    (logits, loss, grads, params, buffers), (c_logits, c_loss, c_grads, c_params, c_buffers) = results
    torch.testing.assert_close(c_logits, logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(c_loss, loss, atol=1e-6, rtol=1e-5)
    for a, b in zip(c_grads, grads, strict=True):  # after clipping, as the update sees them
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    for a, b in zip(c_params + c_buffers, params + buffers, strict=True):  # BatchNorm's statistics too
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)  # Adam moves a weight by up to lr = 1e-3: ±1e-3


def test_a_long_cpu_run_trains_compiled_to_the_same_weights(nb, config, mnist, monkeypatch, compiler):
    """train() as a long CPU run takes it (the threshold lowered): compiled full batches, an eager last batch; the
    same seed gives the weights an eager run gives, up to float rounding."""
    settings = dict(epochs=1, batch_size=128, lr=1e-3, weight_decay=0.05, warmup_epochs=1, label_smoothing=0.1,
                    grad_clip=1.0, augment=True, ema_decay=0.99)
    assert len(mnist.x_train) % 128  # the run ends with a smaller batch
    batches_compiled = []
    real_compile = torch.compile

    class Counting(torch.nn.Module):  # the compiled model, counting the batches it is called with
        def __init__(self, model):
            super().__init__()
            self.compiled = real_compile(model)

        def forward(self, x):
            batches_compiled.append(len(x))
            return self.compiled(x)

    monkeypatch.setattr(nb.torch, "compile", Counting)
    runs = []
    for name, threshold in (("eager", nb.COMPILE_MIN_STEPS), ("compiled", 1)):  # a short run, then a "long" one
        monkeypatch.setattr(nb, "COMPILE_MIN_STEPS", threshold)
        nb.seed_everything(0)
        model = nb.VisionTransformer(config)
        runs.append((model, nb.train(model, mnist, **settings, name=name)))
    assert runs[1][1]["training"] == "float32, compiled" and runs[0][1]["training"] == "float32, eager"
    assert batches_compiled == [128] * (len(mnist.x_train) // 128)  # every full batch, and only them
    (eager, eager_history), (compiled, compiled_history) = runs
    assert compiled_history["train_loss"][0] == pytest.approx(eager_history["train_loss"][0], rel=1e-4)
    for a, b in zip(compiled.state_dict().values(), eager.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
