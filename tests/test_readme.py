"""The README works as written, as a newcomer meets it: every shell command of its fenced `bash` blocks runs verbatim
in a fresh clone of the repository (no `runs/`, no caches) and leaves every tracked file as it was; its snippet for
reading your own picture runs as a script of its own in a fresh clone, on pictures that are not MNIST-shaped."""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, mnist_data_dir
from PIL import Image
from test_notebook import FIGURES, stdout_of

README = (ROOT / "README.md").read_text()
TEST_COMMAND = "python -m pytest -q"


def readme_commands() -> list[str]:
    """Every command line of the README's fenced bash blocks, the test command aside (it is what runs this)."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    return [line for line in lines if TEST_COMMAND not in line]


def readme_snippet() -> str:
    match = re.search(r"<!-- predict-snippet -->\s*```python\n(.*?)```", README, re.S)
    assert match, "README.md lost its prediction snippet"
    return match.group(1)


def fresh_clone(destination):
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(destination)], check=True)
    return destination


def git_status(clone) -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True,
                          check=True).stdout


def newcomer_environment() -> dict:
    """This environment (the virtual environment that runs the tests), with only MNIST_DATA_DIR added."""
    return dict(os.environ, MNIST_DATA_DIR=mnist_data_dir())


def test_readme_has_the_commands_a_newcomer_needs():
    commands = readme_commands()
    assert any("QUICK True" in c for c in commands), "the quick look"
    assert any("papermill vit_mnist.ipynb runs/vit_mnist.ipynb" in c for c in commands), "the full run"
    assert f"```bash\npip install -r requirements-dev.txt && {TEST_COMMAND}\n```" in README, "the test command"


@pytest.fixture(scope="module")
def commands_run(tmp_path_factory):
    """Each README command, verbatim, one after the other in one fresh clone: (clone, [(command, result)])."""
    clone = fresh_clone(tmp_path_factory.mktemp("newcomer") / "repo")
    assert not (clone / "runs").exists()
    results, seconds = [], {}
    for command in readme_commands():
        start = time.perf_counter()
        result = subprocess.run(command, shell=True, cwd=clone, env=newcomer_environment(), capture_output=True,
                                text=True, timeout=1800)
        seconds[command] = round(time.perf_counter() - start, 1)
        results.append((command, result, git_status(clone)))
    (clone.parent / "seconds.json").write_text(json.dumps(seconds, indent=1))  # how long each took, for the README
    return clone, results


def test_every_readme_command_exits_0_and_changes_no_tracked_file(commands_run):
    _, results = commands_run
    for command, result, status in results:
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert status == "", f"{command} left the clone changed:\n{status}"


def executed(clone, name: str) -> dict:
    notebook = json.loads((clone / "runs" / name).read_text())
    errors = [o for c in notebook["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, errors
    return notebook


def test_quick_look_trains_everything_from_an_empty_folder_and_tells_the_story(commands_run):
    """From an empty output folder, as Colab sees it (the notebook and the data, nothing else): every model trained,
    every figure drawn, and a ViT that reads digits."""
    clone, _ = commands_run
    out = stdout_of(executed(clone, "quick.ipynb"))
    for name in ("vit_mnist.pt", "cnn_mnist.pt", "sweep.csv"):
        assert (clone / "runs" / "quick" / "checkpoints" / name).exists(), name
    for name in FIGURES:
        assert (clone / "runs" / "quick" / "figures" / f"{name}.png").stat().st_size > 1000, name
    accuracy = float(re.search(r"ViT test accuracy ([\d.]+)%", out).group(1))
    assert accuracy >= 93.0, f"the quick look's ViT reads only {accuracy}% of the test digits"


def test_full_run_loads_the_committed_checkpoints_and_writes_nothing_of_them(commands_run):
    clone, _ = commands_run
    out = stdout_of(executed(clone, "vit_mnist.ipynb"))
    assert "Loaded vit_mnist.pt" in out and "Loaded cnn_mnist.pt" in out
    assert "training a" not in out and "read from the checkpoint" in out
    assert (clone / "runs" / "figures" / "attention_views.png").exists()


def photo_of(digit: np.ndarray, dark_ink: bool, rng: np.random.Generator) -> Image.Image:
    """A 28x28 MNIST digit in [0, 1], scaled to 120 pixels and put at an offset in a 320x240 noisy frame."""
    ink = np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize((120, 120), Image.Resampling.BICUBIC))
    frame = np.zeros((240, 320))
    frame[70:190, 150:270] = ink / 255
    paper, pen = (215, 30) if dark_ink else (25, 230)
    picture = paper + (pen - paper) * frame + rng.normal(0, 6, frame.shape)
    return Image.fromarray(picture.clip(0, 255).astype(np.uint8))


@pytest.mark.parametrize("dark_ink", [True, False])
def test_readme_snippet_runs_as_a_script_and_reads_digits_in_a_larger_frame(mnist, tmp_path, dark_ink):
    clone = fresh_clone(tmp_path / "repo")
    (clone / "predict.py").write_text(readme_snippet())
    rng = np.random.default_rng(0)
    for index in range(3):
        photo_of(mnist.x_test[index, 0].numpy(), dark_ink, rng).save(clone / "my_digit.png")
        result = subprocess.run([sys.executable, "predict.py"], cwd=clone, env=newcomer_environment(),
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert f"predicted {int(mnist.y_test[index])} with probability" in result.stdout
        assert result.stdout.splitlines()[-1] == str(int(mnist.y_test[index])), "read_number reads the digit"
