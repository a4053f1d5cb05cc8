"""Issue 10's guarantees: precision per device, resumable training, and faults that say what happened."""

import os
from dataclasses import asdict

import numpy as np
import pytest
import torch

TIMING_FIELDS = {"seconds"}  # wall-clock measurements differ from run to run


def resume_path(path):
    return path.with_name(path.stem + ".resume.pt")  # vit.pt -> vit.resume.pt, as train_or_load names it


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                                                  ((9, 0), torch.bfloat16)])
def test_precision_per_gpu(nb, monkeypatch, capability, expected):
    monkeypatch.setattr(nb.torch.cuda, "get_device_capability", lambda device=None: capability)
    assert nb.precision_for(torch.device("cuda")) == expected


def test_precision_on_cpu_and_mps_is_float32(nb, monkeypatch):
    monkeypatch.setattr(nb, "CPU_PRECISION", "float32")
    assert nb.precision_for(torch.device("cpu")) == torch.float32
    assert nb.precision_for(torch.device("mps")) == torch.float32
    assert isinstance(nb.autocast_for(torch.device("cpu")), nb.nullcontext)


@pytest.mark.filterwarnings("ignore:CUDA is not available")  # the context is only built here, never entered
def test_t4_training_uses_float16_autocast_and_a_loss_scaler(nb, monkeypatch):
    monkeypatch.setattr(nb.torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    context = nb.autocast_for(torch.device("cuda"))
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.float16
    assert nb.precision_name(torch.device("cuda")).startswith("float16 autocast with loss scaling")


def test_device_parameter(nb, monkeypatch):
    assert nb.pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(nb.torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"DEVICE='cuda' is not available.*DEVICE = 'auto'"):
        nb.pick_device("cuda")
    with pytest.raises(ValueError, match=r"DEVICE='gpu' is not one of"):
        nb.pick_device("gpu")


@pytest.fixture
def tiny_run(nb, mnist):
    """Everything train_or_load needs for a 3-epoch run of a small ViT on 2,000 images."""
    config = nb.ViTConfig(patch_size=7, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2)
    train_settings = dict(epochs=3, batch_size=256, lr=1e-3, weight_decay=0.05, warmup_epochs=1, label_smoothing=0.1,
                          grad_clip=1.0, augment=True, ema_decay=0.99)
    settings = dict(asdict(config), **train_settings, seed=0)

    def run(path, retrain=False):
        return nb.train_or_load("ViT", path, lambda: nb.VisionTransformer(config), asdict(config), settings,
                                train_settings, mnist, retrain)

    return run, settings


def resume_settings(nb, settings):
    """What a resume state of these settings holds: they and the precision it was trained in."""
    return dict(settings, precision=nb.precision_name(torch.device("cpu")))


def interrupt_after(nb, monkeypatch, calls: int):
    """Make the augmentation raise on its `calls`-th call: an interruption from inside the training loop."""
    original, count = nb.random_affine, [0]

    def flaky(x, *args, **kwargs):
        count[0] += 1
        if count[0] == calls:
            raise KeyboardInterrupt("simulated interruption")
        return original(x, *args, **kwargs)

    monkeypatch.setattr(nb, "random_affine", flaky)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("interrupted_epoch", [2, 3])
def test_interrupted_run_resumes_to_bit_identical_weights_and_history(nb, tiny_run, tmp_path, monkeypatch, capsys,
                                                                      interrupted_epoch, precision):
    run, settings = tiny_run
    monkeypatch.setattr(nb, "CPU_PRECISION", precision)  # CPU training in either precision
    (tmp_path / "uninterrupted").mkdir()
    reference, reference_history = run(tmp_path / "uninterrupted" / "vit.pt")

    path = tmp_path / "interrupted" / "vit.pt"
    path.parent.mkdir()
    steps_per_epoch = 8  # 2,000 images in batches of 256
    with monkeypatch.context() as patch:
        interrupt_after(nb, patch, (interrupted_epoch - 1) * steps_per_epoch + 3)
        with pytest.raises(KeyboardInterrupt):
            run(path)
    state = torch.load(resume_path(path), weights_only=True)
    assert state["log"]["history"]["epoch"] == list(range(1, interrupted_epoch))
    assert state["settings"] == resume_settings(nb, settings)
    assert state["settings"]["precision"] == {"float32": "float32", "bfloat16": "bfloat16 autocast"}[precision]

    capsys.readouterr()
    resumed, resumed_history = run(path)
    out = capsys.readouterr().out
    assert f"ViT: resumed from vit.resume.pt after epoch {interrupted_epoch - 1} of 3" in out
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    for field in set(reference_history) - TIMING_FIELDS:
        assert resumed_history[field] == reference_history[field], field


def test_a_finished_run_saves_its_checkpoint_deletes_its_resume_state_and_is_loaded_next_time(nb, tiny_run, tmp_path,
                                                                                                  capsys):
    run, settings = tiny_run
    path = tmp_path / "vit.pt"
    model, history = run(path)
    assert path.exists() and not resume_path(path).exists()
    checkpoint = nb.load_checkpoint(path, settings)
    assert set(checkpoint) == {"config", "model", "normalization", "metrics", "history", "settings", "device"}
    assert checkpoint["history"]["best_epoch"] == history["best_epoch"] and checkpoint["settings"]["seed"] == 0
    assert checkpoint["history"]["training"] == "float32" and set(checkpoint["metrics"]) == {"val_acc", "val_loss"}
    capsys.readouterr()
    again, _ = run(path)
    assert "Loaded vit.pt" in capsys.readouterr().out
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_resume_state_from_other_settings_stops_and_is_kept(nb, tiny_run, tmp_path):
    run, settings = tiny_run
    path = tmp_path / "vit.pt"
    nb.save_checkpoint(resume_path(path), {"settings": dict(resume_settings(nb, settings), depth=3)})
    saved = resume_path(path).read_bytes()
    with pytest.raises(nb.CheckpointError, match=r"vit.resume.pt was trained with other settings \(depth: 3 in the "
                                                 r"file, 2 now\)\. Set RETRAIN = True"):
        run(path)
    assert resume_path(path).read_bytes() == saved


@pytest.fixture
def bfloat16_resume_state(nb, tiny_run, tmp_path, monkeypatch):
    """The resume state of a bfloat16 run interrupted in its second epoch; the float32 run's checkpoint path."""
    run, _ = tiny_run
    path = tmp_path / "vit.pt"
    with monkeypatch.context() as patch:
        patch.setattr(nb, "CPU_PRECISION", "bfloat16")
        interrupt_after(nb, patch, 8 + 3)
        with pytest.raises(KeyboardInterrupt):
            run(path)
    state = torch.load(resume_path(path), weights_only=True)
    assert state["settings"]["precision"] == "bfloat16 autocast" and state["log"]["history"]["epoch"] == [1]
    return path


def test_a_float32_run_does_not_resume_a_bfloat16_runs_state(nb, tiny_run, bfloat16_resume_state):
    run, _ = tiny_run
    path = bfloat16_resume_state
    saved = resume_path(path).read_bytes()
    assert nb.CPU_PRECISION == "float32"
    with pytest.raises(nb.CheckpointError, match=r"vit.resume.pt was trained with other settings \(precision: "
                                                 r"'bfloat16 autocast' in the file, 'float32' now\)\. Set RETRAIN = "
                                                 r"True to train anew \(the old file is kept as vit.resume.prev.pt\)"):
        run(path)
    assert resume_path(path).read_bytes() == saved and not path.exists()


def test_retrain_sets_a_bfloat16_runs_state_aside_and_trains_in_float32_from_the_start(nb, tiny_run,
                                                                                        bfloat16_resume_state, capsys):
    run, settings = tiny_run
    path = bfloat16_resume_state
    saved = resume_path(path).read_bytes()
    capsys.readouterr()
    _, history = run(path, retrain=True)
    out = capsys.readouterr().out
    assert "kept the previous vit.resume.pt as vit.resume.prev.pt" in out and "resumed" not in out
    assert (path.parent / "vit.resume.prev.pt").read_bytes() == saved
    assert history["epoch"] == [1, 2, 3] and history["training"] == "float32"
    assert not resume_path(path).exists() and nb.load_checkpoint(path, settings)["history"]["training"] == "float32"


class RunsCodeWhenUnpickled:
    """An object whose unpickling would run a command: what a malicious or foreign file can hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def bad_bytes(kind: str, tmp_path, settings) -> bytes:
    if kind == "cut short":
        good = tmp_path / "good.pt"
        torch.save({"settings": settings, "model": {"w": torch.zeros(1000)}}, good)
        return good.read_bytes()[:-200]
    if kind == "random bytes":
        return np.random.default_rng(0).bytes(5000)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"settings": settings, "model": RunsCodeWhenUnpickled(tmp_path / "code_ran")}, unsafe)
    return unsafe.read_bytes()


@pytest.mark.parametrize("kind", ["cut short", "random bytes", "code when unpickled"])
@pytest.mark.parametrize("which", ["checkpoint", "resume state"])
def test_unreadable_file_stops_with_its_name_and_a_safe_fix_and_is_kept(nb, tiny_run, tmp_path, which, kind):
    run, settings = tiny_run
    path = tmp_path / "vit.pt"
    damaged = path if which == "checkpoint" else resume_path(path)
    content = bad_bytes(kind, tmp_path, settings)
    damaged.write_bytes(content)
    with pytest.raises(nb.CheckpointError) as caught:
        run(path)
    message = str(caught.value)
    assert str(damaged) in message and "RETRAIN = True" in message and f"{damaged.stem}.prev.pt" in message
    fetch = f"fetch it again (git checkout -- {damaged})"
    assert (fetch in message) == (which == "checkpoint")  # a resume state was never committed: nothing to fetch
    assert "weights_only" not in message and "\x1b" not in message  # no unsafe advice, no terminal colour codes
    assert not (tmp_path / "code_ran").exists(), "loading the file ran the code it holds"
    assert damaged.read_bytes() == content


def test_retrain_keeps_a_damaged_resume_state_and_starts_over(nb, tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    path = tmp_path / "vit.pt"
    resume_path(path).write_bytes(b"not a checkpoint")
    _, history = run(path, retrain=True)
    assert (tmp_path / "vit.resume.prev.pt").read_bytes() == b"not a checkpoint"
    assert history["epoch"] == [1, 2, 3] and "resumed" not in capsys.readouterr().out


def test_damaged_mnist_file_is_named_and_kept(nb, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(bytes(999_984))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte is damaged: it has 999,984 bytes, where "
                                         r"train-images-idx3-ubyte has 47,040,016\. Delete it to download it again, "
                                         r"or point MNIST_DATA_DIR"):
        nb.load_mnist(tmp_path)
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 999_984


def test_mnist_file_sizes_match_the_real_files(nb, data_dir):
    from pathlib import Path

    for name, size in nb.MNIST_FILES.items():
        assert (Path(data_dir) / "MNIST" / "raw" / name).stat().st_size == size
