"""Issue 15: prepare_digit on hand-made pictures with known answers, and classify() on them."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw


def drawn_seven(canvas=(300, 220), offset=(40, 60), ink=0, paper=255) -> np.ndarray:
    """A "7", 100 pixels tall with strokes 9 pixels wide, drawn at `offset` on a (W, H) canvas: uint8 (H, W)."""
    image = Image.new("L", canvas, paper)
    x, y = offset
    ImageDraw.Draw(image).line([(x, y), (x + 60, y), (x + 25, y + 100)], fill=ink, width=9, joint="curve")
    return np.asarray(image)


def ink_extent(x: torch.Tensor) -> tuple[int, int]:
    """Rows and columns that hold ink in a prepared (1, 28, 28) digit."""
    return int(x[0].any(1).sum()), int(x[0].any(0).sum())


def centre_of_mass(x: torch.Tensor) -> tuple[float, float]:
    rows = torch.arange(28.0)
    return ((x[0].sum(1) * rows).sum() / x.sum()).item(), ((x[0].sum(0) * rows).sum() / x.sum()).item()


def test_dark_digit_on_large_light_canvas_comes_back_like_mnist(nb):
    seven = drawn_seven(ink=40, paper=200).astype(float)
    rows, cols = np.indices(seven.shape)
    photo = seven * (0.9 + 0.2 * cols / cols.max()) + np.random.default_rng(0).normal(0, 4, seven.shape)  # uneven light
    x = nb.prepare_digit(photo.clip(0, 255).astype(np.uint8))
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert x.median() == 0 and x.max() == 1  # light ink on a black field: the grey, noisy paper became 0
    height, width = ink_extent(x)
    assert height == 20 and 10 <= width < 20  # the longer side fills 20 pixels; the 7 is narrower than tall
    cy, cx = centre_of_mass(x)
    assert abs(cy - nb.MNIST_CENTRE) <= 0.5 and abs(cx - nb.MNIST_CENTRE) <= 0.5
    clean = nb.prepare_digit(drawn_seven())  # bilevel strokes ...
    assert ((clean > 0.05) & (clean < 0.95)).sum() >= 10  # ... come back with anti-aliased edges


def test_light_digit_on_dark_gives_the_same_tensor(nb):
    dark_on_light = nb.prepare_digit(drawn_seven(ink=0, paper=255))
    light_on_dark = nb.prepare_digit(drawn_seven(ink=255, paper=0))
    assert torch.allclose(dark_on_light, light_on_dark, atol=1e-6)


def test_rgba_with_transparent_background(nb):
    grey = drawn_seven()
    rgba = np.zeros((*grey.shape, 4), np.uint8)  # black strokes; the paper is fully transparent black
    rgba[..., 3] = 255 - grey
    assert torch.allclose(nb.prepare_digit(Image.fromarray(rgba, "RGBA")), nb.prepare_digit(grey), atol=1e-6)


def test_thin_vertical_stroke_keeps_its_aspect_ratio(nb):
    canvas = np.full((200, 240), 255, np.uint8)
    canvas[40:160, 100:112] = 0  # 12 x 120 pixels: 2 x 20 once the longer side is 20
    height, width = ink_extent(nb.prepare_digit(canvas))
    assert height == 20 and width <= 3


def test_a_few_specks_do_not_change_the_crop(nb):
    clean = drawn_seven()
    specked = clean.copy()
    for y, x in [(20, 20), (25, 250), (190, 30), (200, 270), (120, 200)]:  # all outside the 7's box
        specked[y:y + 3, x:x + 3] = 0
    assert torch.equal(nb.prepare_digit(specked), nb.prepare_digit(clean))


@pytest.mark.parametrize("blank", [np.full((50, 60), 0.7), Image.new("RGB", (64, 48), "white"), torch.zeros(28, 28)])
def test_blank_image_has_no_ink(nb, blank):
    with pytest.raises(ValueError, match="no ink found"):
        nb.prepare_digit(blank)


def test_non_image_file_is_named(nb, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with pytest.raises(ValueError, match=r"notes\.png is not an image"):
        nb.prepare_digit(path)


def test_wrong_rank_is_named(nb):
    with pytest.raises(ValueError, match=r"shape \(2, 1, 28, 28\)"):
        nb.prepare_digit(torch.rand(2, 1, 28, 28))


def test_classify_gives_the_top_three_calibrated_probabilities(nb):
    torch.manual_seed(0)
    model = nb.VisionTransformer(nb.ViTConfig(embed_dim=32, depth=1, num_heads=4))
    calibration = dict(mean=0.13, std=0.31, temperature=0.5, unsure_below=0.99)
    top3 = nb.classify(model, drawn_seven(), calibration)
    probs = nb.calibrated_probabilities(model, nb.prepare_digit(drawn_seven())[None], calibration)[0]
    assert [digit for digit, _ in top3] == probs.topk(3).indices.tolist()
    assert [p for _, p in top3] == pytest.approx(probs.topk(3).values.tolist())
    assert top3[0][1] >= top3[1][1] >= top3[2][1] and probs.sum().item() == pytest.approx(1.0)
