"""End-to-end: the whole notebook, executed by papermill on a tiny configuration."""

import csv
import json
import shutil
import signal
import subprocess
import sys
import time

import papermill as pm
import psutil
import pytest
import torch
from conftest import NOTEBOOK, ROOT, notebook_parameters

# QUICK, the newcomer's switch, with a smaller model and fewer images still: what it leaves at its defaults it sets
TINY = dict(QUICK=True, TRAIN_SUBSET=2000, VAL_SIZE=1000, EPOCHS=2, BATCH_SIZE=256, EMBED_DIM=32, DEPTH=2,
            NUM_HEADS=4, CNN_CHANNELS=[8, 16], CNN_EPOCHS=1, DELETION_IMAGES=200, SWEEP_TRAIN_SUBSET=500,
            SWEEP_GRID={"patch_size": [14], "augment": [True]})
FIGURES = ["samples", "patches", "learning_rate", "vit_learning_curves",  # sections 2-4
           "confusion_matrix", "misclassified", "test_predictions",  # section 5
           "cls_attention", "attention_views", "position_embeddings", "deletion_test",  # section 6
           "vit_vs_cnn_learning_curves", "sweep",  # section 7
           "drawing_pad_number"]  # your turn


def run_notebook(workdir, **parameters):
    """Execute a copy of the notebook in `workdir` (its cwd) and return the executed notebook as JSON."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / NOTEBOOK.name
    if not source.exists():
        shutil.copy(NOTEBOOK, source)
    output = workdir / "executed.ipynb"
    pm.execute_notebook(source, output, parameters=parameters, cwd=str(workdir), kernel_name="python3",
                        progress_bar=False)
    return json.loads(output.read_text())


def stdout_of(notebook) -> str:
    return "".join("".join(o.get("text", "")) for c in notebook["cells"] if c["cell_type"] == "code"
                   for o in c.get("outputs", []) if o.get("name") == "stdout")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, data_dir):
    """One tiny run into a temporary OUTPUT_DIR, shared by the checks below."""
    workdir = tmp_path_factory.mktemp("smoke")
    output_dir = workdir / "out"
    executed = run_notebook(workdir, DATA_DIR=data_dir, OUTPUT_DIR=str(output_dir), **TINY)
    return workdir, output_dir, executed


def test_smoke_run_has_no_error(smoke):
    _, _, executed = smoke
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
    out = stdout_of(executed)
    assert "ViT epoch  2/2" in out and "the same prediction for every test digit: True" in out
    assert ("QUICK: LEARNING_RATE=0.002, WARMUP_EPOCHS=0.2, AUGMENT=False, EMA_DECAY=None, SWEEP_EPOCHS=1, "
            "SWEEP_SEEDS=2") in out


def test_smoke_run_checkpoint_loads_and_history_is_complete(smoke, nb):
    _, output_dir, _ = smoke
    checkpoint = torch.load(output_dir / "checkpoints" / "vit_mnist.pt", weights_only=True)
    assert {"config", "model", "normalization", "metrics", "history", "settings", "device"} == set(checkpoint)
    assert {"val_acc", "val_loss", "temperature", "unsure_below"} == set(checkpoint["metrics"])
    model = nb.VisionTransformer(nb.ViTConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["model"])
    history = json.loads((output_dir / "checkpoints" / "vit_mnist_history.json").read_text())
    for field in nb.HISTORY_FIELDS:
        assert len(history[field]) == TINY["EPOCHS"], field
    assert history == checkpoint["history"]


def test_smoke_run_writes_figures(smoke):
    _, output_dir, _ = smoke
    for name in FIGURES:
        assert (output_dir / "figures" / f"{name}.png").stat().st_size > 1000, name


def test_smoke_run_trains_the_cnn_and_sweeps(smoke):
    _, output_dir, executed = smoke
    out = stdout_of(executed)
    assert "CNN epoch  1/1" in out  # printed by the shared train()
    checkpoint = torch.load(output_dir / "checkpoints" / "cnn_mnist.pt", weights_only=True)
    assert checkpoint["config"] == {"channels": [8, 16]} and "temperature" in checkpoint["metrics"]
    with open(output_dir / "checkpoints" / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["chosen", "patch_size=14", "augment=True", "chosen, seed 1"]
    assert rows[1]["patch_size"] == "14" and rows[2]["augment"] == "True"  # QUICK trains without augmentation
    assert all(0 < float(r["val_acc"]) <= 1 for r in rows)
    assert "test accuracy over 2 seed(s)" in out


def test_smoke_run_reports_calibration_and_deletion(smoke):
    _, _, executed = smoke
    out = stdout_of(executed)
    assert "before temperature scaling: test ECE" in out and "after temperature scaling: test ECE" in out
    markdown = "".join("".join(o["data"].get("text/markdown", "")) for c in executed["cells"]
                       for o in c.get("outputs", []) if o["output_type"] == "display_data")
    assert "| ViT | " in markdown and "| CNN | " in markdown and "(the rule's)" in markdown
    for method in ("last-layer attention", "rollout", "relevance", "random"):
        assert f"| {method} | " in markdown


def test_one_training_loop_serves_both_models():
    code = "\n".join(c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                     for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code")
    assert code.count("def train(") == 1 and code.count("scaler.step(optimizer)") == 1
    assert code.count(".backward(") == 2  # train()'s, and the one-parameter temperature fit's (section 5.1)


def test_second_run_reuses_checkpoints_and_sweep(smoke, data_dir):
    workdir, output_dir, _ = smoke
    files = [output_dir / "checkpoints" / name for name in ("vit_mnist.pt", "cnn_mnist.pt", "sweep.csv")]
    before = [f.stat().st_mtime_ns for f in files]
    executed = run_notebook(workdir, DATA_DIR=data_dir, OUTPUT_DIR=str(output_dir), **TINY)
    out = stdout_of(executed)
    assert "Loaded vit_mnist.pt" in out and "Loaded cnn_mnist.pt" in out
    assert "training a" not in out and "reused from sweep.csv" in out
    assert [f.stat().st_mtime_ns for f in files] == before


def test_other_settings_stop_with_a_clear_error_and_keep_the_checkpoint(smoke, data_dir):
    workdir, output_dir, _ = smoke
    checkpoint = output_dir / "checkpoints" / "vit_mnist.pt"
    saved = checkpoint.read_bytes()
    with pytest.raises(pm.PapermillExecutionError, match="other settings.*depth: 2 in the file, 3 now"):
        run_notebook(workdir, DATA_DIR=data_dir, OUTPUT_DIR=str(output_dir), **{**TINY, "DEPTH": 3})
    assert checkpoint.read_bytes() == saved


def test_unknown_parameter_is_refused(tmp_path, data_dir):
    with pytest.raises(pm.PapermillExecutionError, match=r"Unknown parameter\(s\) \['EPOCH'\]"):
        run_notebook(tmp_path, DATA_DIR=data_dir, OUTPUT_DIR=str(tmp_path), EPOCH=1)


def test_ruff_passes_on_the_notebook():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(NOTEBOOK)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hard_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path, data_dir, nb, monkeypatch):
    """SIGKILL the kernel during the ViT's second epoch, run the same command again: the final weights are those of
    an uninterrupted run with the same settings (trained here, in the test's process, by the notebook's train_new)."""
    params = dict(DATA_DIR=data_dir, TRAIN_SUBSET=4000, VAL_SIZE=1000, EPOCHS=2, WARMUP_EPOCHS=1, BATCH_SIZE=64,
                  EMBED_DIM=32, DEPTH=2, NUM_HEADS=4, CPU_PRECISION="float32", CNN_CHANNELS=[8, 16], CNN_EPOCHS=1,
                  RUN_SWEEP=False, DELETION_IMAGES=100)  # the later sections small: the ViT is the point
    p = {**notebook_parameters(), **params}
    monkeypatch.setattr(nb, "CPU_PRECISION", p["CPU_PRECISION"])
    data = nb.load_mnist(data_dir, val_size=p["VAL_SIZE"], train_subset=p["TRAIN_SUBSET"], seed=p["SEED"])
    config = nb.ViTConfig(patch_size=p["PATCH_SIZE"], embed_dim=p["EMBED_DIM"], depth=p["DEPTH"],
                          num_heads=p["NUM_HEADS"], mlp_ratio=p["MLP_RATIO"])
    train_settings = dict(epochs=p["EPOCHS"], batch_size=p["BATCH_SIZE"], lr=p["LEARNING_RATE"],
                          weight_decay=p["WEIGHT_DECAY"], warmup_epochs=p["WARMUP_EPOCHS"],
                          label_smoothing=p["LABEL_SMOOTHING"], grad_clip=p["GRAD_CLIP"], augment=p["AUGMENT"],
                          ema_decay=p["EMA_DECAY"])
    model, _ = nb.train_new("ViT", lambda: nb.VisionTransformer(config), {"seed": p["SEED"]}, train_settings, data)
    reference = {"model": model.state_dict()}

    workdir, output_dir = tmp_path / "killed", tmp_path / "killed" / "out"
    workdir.mkdir()
    shutil.copy(NOTEBOOK, workdir / NOTEBOOK.name)
    params["OUTPUT_DIR"] = str(output_dir)
    command = [sys.executable, "-m", "papermill", NOTEBOOK.name, "executed.ipynb", "-y", json.dumps(params),
               "--no-progress-bar"]
    papermill = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume_state = output_dir / "checkpoints" / "vit_mnist.resume.pt"  # written after each epoch
    deadline = time.monotonic() + 300
    while not resume_state.exists() and papermill.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    processes = psutil.Process(papermill.pid).children(recursive=True) + [psutil.Process(papermill.pid)]
    for process in processes:  # the kernel first: it runs in a session of its own
        process.send_signal(signal.SIGKILL)
    papermill.wait()
    assert resume_state.exists() and not (output_dir / "checkpoints" / "vit_mnist.pt").exists(), \
        "the kill did not land in the second epoch"
    assert torch.load(resume_state, weights_only=True)["log"]["history"]["epoch"] == [1]

    executed = run_notebook(workdir, **params)  # the same command again
    assert "ViT: resumed from vit_mnist.resume.pt after epoch 1 of 2" in stdout_of(executed)
    resumed = torch.load(output_dir / "checkpoints" / "vit_mnist.pt", weights_only=True)
    assert resumed["model"].keys() == reference["model"].keys()
    for name, weights in reference["model"].items():
        assert torch.equal(resumed["model"][name], weights), name
    assert not resume_state.exists()
