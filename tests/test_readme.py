"""The README's snippet for predicting your own image runs as written, on the committed checkpoint, on pictures
that are not MNIST-shaped: a digit somewhere in a larger frame, dark ink on light paper and light on dark."""

import contextlib
import io
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT


def readme_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- predict-snippet -->\s*```python\n(.*?)```", readme, re.S)
    assert match, "README.md lost its prediction snippet"
    return match.group(1)


def photo_of(digit: np.ndarray, dark_ink: bool, rng: np.random.Generator) -> Image.Image:
    """A 28x28 MNIST digit in [0, 1], scaled to 120 pixels and put at an offset in a 320x240 noisy frame."""
    ink = np.asarray(Image.fromarray((digit * 255).astype(np.uint8)).resize((120, 120), Image.Resampling.BICUBIC))
    frame = np.zeros((240, 320))
    frame[70:190, 150:270] = ink / 255
    paper, pen = (215, 30) if dark_ink else (25, 230)
    picture = paper + (pen - paper) * frame + rng.normal(0, 6, frame.shape)
    return Image.fromarray(picture.clip(0, 255).astype(np.uint8))


@pytest.mark.parametrize("dark_ink", [True, False])
def test_readme_snippet_reads_a_digit_in_a_larger_frame_in_either_polarity(nb, mnist, tmp_path, monkeypatch, dark_ink):
    checkpoint = ROOT / "checkpoints" / "vit_mnist.pt"
    if not checkpoint.exists():
        pytest.skip("no committed checkpoint")
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(checkpoint, tmp_path / "checkpoints" / "vit_mnist.pt")
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for index in range(3):
        photo_of(mnist.x_test[index, 0].numpy(), dark_ink, rng).save(tmp_path / "my_digit.png")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(readme_snippet(), dict(vars(nb)))
        assert f"predicted {int(mnist.y_test[index])} with probability" in printed.getvalue()
