"""The benchmarks run (a few steps, no timing asserted: speed is measured by running them on their own)."""

import subprocess
import sys

from conftest import ROOT


def test_benchmark_runs_and_prints_the_ratio_to_vit_pytorch():
    command = ["benchmarks/train_step.py", "--warmup", "1", "--rounds", "2", "--loop-steps", "2", "--epochs", "1",
               "--epoch-images", "300"]
    result = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("vit-pytorch ViT") and line.split()[-1] == "1.00" for line in lines)
    for variant in ("notebook ViT, explicit attention", "notebook ViT, fused attention", "notebook ViT, compiled",
                    "notebook ViT, compiled, fused kernel inside", "notebook train_step"):
        assert any(line.startswith(variant) for line in lines), variant
    assert "notebook train() loop" in result.stdout
    assert "train() of the ViT, compiled:" in result.stdout or "does not compile" in result.stdout


def test_pad_latency_benchmark_runs():
    result = subprocess.run([sys.executable, "benchmarks/pad_latency.py", "--strokes", "2"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for name in ("ViT", "conv-stem ViT", "CNN"):
        assert f"{name}: wall median" in result.stdout, name
