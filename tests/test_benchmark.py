"""The benchmarks run (a few steps, no timing asserted: speed is measured by running them on their own)."""

import subprocess
import sys

from conftest import ROOT


def test_benchmark_runs_and_prints_like_for_like_ratios(tmp_path):
    out = tmp_path / "train_step.txt"
    command = ["benchmarks/train_step.py", "--warmup", "1", "--rounds", "2", "--loop-steps", "2", "--epochs", "1",
               "--epoch-images", "300", "--out", str(out)]
    result = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [line.split(maxsplit=1)[1] for line in result.stdout.splitlines() if line[:2].strip().isdigit()]
    for model in ("vit-pytorch ViT", "notebook ViT"):
        for mode in ("eager", "compiled"):
            for precision in ("float32", "bfloat16"):
                assert any(row.startswith(model) and f" {mode} " in row and f" {precision} " in row
                           for row in rows), (model, mode, precision)
    assert any(" fused " in row for row in rows) and any(" default " in row for row in rows)  # the two AdamW kinds
    assert any(row.startswith("notebook ViT    train_step + EMA eager    explicit") for row in rows)
    # on a CPU the notebook's default (fused = None) takes the explicit path; the column marks those rows only
    marked = [row for row in rows if row.endswith(" yes")]
    assert marked and all(" explicit " in row and row.startswith("notebook ViT") for row in marked)
    assert "a full training run here: " in result.stdout and ", eager (the notebook's train() does not compile" in (
        result.stdout)
    assert "attention: with fused = None, the notebook's default, its modules take the explicit path" in result.stdout
    for ratio in ("notebook/vit-pytorch, eager, float32 (notebook: fused kernel)",
                  "notebook/vit-pytorch, compiled, float32 (notebook: explicit)",
                  "notebook/vit-pytorch, eager, bfloat16 (notebook: explicit)",
                  "notebook/vit-pytorch, compiled, bfloat16 (notebook: explicit)",
                  "fused kernel/explicit attention, notebook eager, bfloat16", "compiled/eager, notebook, float32",
                  "fused/default AdamW, notebook eager, float32",
                  "train_step + clipping + EMA/bare step, notebook eager"):
        assert ratio in result.stdout, ratio
    for line in ("GFLOP/s", "nb.bfloat16_speedup()", "loop/bare step", "loop/train_step + EMA",
                 "ms per step  share  part", "loss and accuracy sums (log.count)"):
        assert line in result.stdout, line
    for kind in ("float32 eager", "bfloat16 eager", "float32 compiled", "bfloat16 compiled"):
        assert f"train() of the ViT, {kind}: " in result.stdout, kind
    written = out.read_text()
    assert written.startswith("command: python benchmarks/train_step.py --warmup 1")
    assert "machine: " in written and "flags: " in written and "train() of the ViT, float32 eager:" in written


def test_pad_latency_benchmark_runs_and_writes_its_result(tmp_path):
    out = tmp_path / "pad_latency.txt"
    result = subprocess.run([sys.executable, "benchmarks/pad_latency.py", "--strokes", "2", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    written = out.read_text()
    assert written.startswith("command: python benchmarks/pad_latency.py --strokes 2 --out ")
    assert "\ndate: " in written and "machine: " in written and "flags: " in written
    for name in ("ViT", "CNN"):  # the models the pad offers (the notebook's CHECKPOINT_FILES)
        for threads in (1, 2):
            line = next(line for line in written.splitlines() if line.split()[:2] == [name, str(threads)])
            assert min(float(v) for v in line.split()[2:]) >= 0, line
        assert f"  {name}: 2 threads / 1 thread: " in written, name


def test_model_costs_benchmark_reports_three_models_in_both_precisions(tmp_path):
    out = tmp_path / "model_costs.txt"
    result = subprocess.run([sys.executable, "benchmarks/model_costs.py", "--quick", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    written = out.read_text()
    assert written.startswith("command: python benchmarks/model_costs.py --quick --out ")
    assert "machine: " in written and "flags: " in written and " threads" in written
    rows = {}
    for line in written.splitlines():
        for model in ("conv-stem ViT", "ViT", "CNN"):  # conv-stem first: its name ends in "ViT"
            if line.startswith(model + " "):
                rows.setdefault(model, []).append(line[len(model):].split())
                break
    for model in ("ViT", "conv-stem ViT", "CNN"):
        training = {row[0]: row for row in rows[model] if row[0] in ("float32", "bfloat16")}
        assert set(training) == {"float32", "bfloat16"}, model
        for precision, (_, params, median_ms, _, per_epoch, _) in training.items():
            assert int(params.replace(",", "")) > 0 and float(median_ms) > 0 and float(per_epoch) > 0, (model,
                                                                                                       precision)
        inference = {row[0]: float(row[2].replace(",", "")) for row in rows[model] if row[0] in ("1", "1000")}
        assert set(inference) == {"1", "1000"} and min(inference.values()) > 0, model
    for ratio in ("CNN / ViT epoch, float32:", "conv-stem ViT / ViT epoch, float32:", "CNN / ViT epoch, bfloat16:",
                  "conv-stem ViT / ViT epoch, bfloat16:", "ViT / CNN images/s, batch 1:",
                  "ViT / CNN images/s, batch 1000:"):
        line = next(line for line in written.splitlines() if ratio in line)
        assert float(line.split(ratio)[1].split()[0]) > 0, ratio


def test_read_number_benchmark_runs_and_writes_its_result(tmp_path):
    out = tmp_path / "read_number.txt"
    result = subprocess.run([sys.executable, "benchmarks/read_number.py", "--rounds", "2", "--warmup", "1", "--out",
                             str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    written = out.read_text()
    assert written.startswith("command: python benchmarks/read_number.py --rounds 2 --warmup 1 --out ")
    assert "\ndate: " in written and "machine: " in written and "flags: " in written and "; torch " in written
    assert "load average (1 min) at the start: " in written and "load average (1 min) at the end: " in written
    lines = written.splitlines()
    for kind in ("drawn", "plain", "ruled"):  # the pad's canvas, and MNIST digits on plain and ruled paper
        for name in ("ViT", "CNN"):  # the models the pad offers (the notebook's CHECKPOINT_FILES)
            for threads in (1, 2):
                line = next(line for line in lines if line.split()[:3] == [kind, name, str(threads)])
                wall_median, wall_p90, cpu_median, exactly = line.split()[3:]
                assert 0 < float(wall_median) <= float(wall_p90) and float(cpu_median) >= 0, line
                assert exactly.endswith("/2"), line
            assert f"  {kind}, {name}: 2 threads / 1 thread: " in written, (kind, name)
    for threads in (2, 1):
        assert f"Where the time goes with {threads} thread" in written, threads
    for step in ("preparation (page_ink), all", "cutting into pieces (ink_pieces)",
                 "the model (calibrated_probabilities)", "the rest of read_number", "the model batch (digits)"):
        assert sum(line.startswith(step) for line in lines) == 2, step
