"""The README's snippet for predicting your own image runs, on the committed checkpoint."""

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


def test_readme_snippet_predicts_a_digit(nb, mnist, tmp_path, monkeypatch):
    checkpoint = ROOT / "checkpoints" / "vit_mnist.pt"
    if not checkpoint.exists():
        pytest.skip("no committed checkpoint")
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(checkpoint, tmp_path / "checkpoints" / "vit_mnist.pt")
    index = 0
    digit = (mnist.x_test[index, 0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(digit).resize((56, 56)).save(tmp_path / "my_digit.png")  # any size: the snippet resizes
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(readme_snippet(), dict(vars(nb)))
    assert f"predicted {int(mnist.y_test[index])} with probability" in printed.getvalue()
