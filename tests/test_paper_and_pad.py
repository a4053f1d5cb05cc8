"""Pictures off plain paper, with known answers: printed lines of ruled and squared paper are removed and the digit
stays whole; NaN and transparent margins; pens of any width; readings that say when they are unsure; the drawing pad's
reading of drawn digits (without a browser)."""

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

PAPER, INK, LINE = 235, 30, 150  # the printed lines are fainter than the ink


def notebook_page(paper: str, size=(320, 240), spacing=28, tilt=0.0, margin=None) -> Image.Image:
    """A grey page of plain, ruled or squared paper of size (W, H): lines 2 pixels wide, `tilt` pixels of slope across
    the page, and a margin line at x = `margin` if given, perpendicular to them; drawn at 4x and scaled down, as a
    scan's anti-aliased lines."""
    W, H = 4 * size[0], 4 * size[1]
    page = Image.new("L", (W, H), PAPER)
    draw = ImageDraw.Draw(page)
    slope = 4 * tilt
    if paper in ("ruled", "squared"):
        for y in range(2 * spacing, H + 4 * spacing, 4 * spacing):
            draw.line([(0, y), (W, y + slope)], fill=LINE, width=8)
    if paper == "squared":
        for x in range(2 * spacing, W + 4 * spacing, 4 * spacing):
            draw.line([(x, 0), (x - slope * H / W, H)], fill=LINE, width=8)  # the same tilt
    if margin is not None:
        draw.line([(4 * margin, 0), (4 * margin - slope * H / W, H)], fill=LINE, width=12)
    return page.resize(size, Image.Resampling.BOX)


def with_digit(page: Image.Image, digit: str) -> np.ndarray:
    """A "0" (one closed stroke) or a "7" (one open stroke), about 130 pixels tall, strokes 9 pixels wide, written on
    the page; with a scanner's noise (2 grey levels)."""
    page = page.copy()
    draw = ImageDraw.Draw(page)
    if digit == "0":
        draw.ellipse([120, 50, 200, 180], outline=INK, width=9)
    else:
        draw.line([(120, 55), (200, 55), (150, 185)], fill=INK, width=9, joint="curve")
    noise = np.random.default_rng(0).normal(0, 2, (page.height, page.width))
    return (np.asarray(page) + noise).clip(0, 255).round().astype(np.uint8)


def components(ink: np.ndarray) -> int:
    """Connected blobs of ink, not counting specks of under 50 pixels."""
    blobs, count = ndimage.label(ink > 0)
    return int((np.bincount(blobs.ravel())[1:] >= 50).sum())


@pytest.mark.parametrize("paper, tilt, margin, digit", [
    ("ruled", 0, None, "0"), ("ruled", 0, None, "7"), ("ruled", 8, 40, "7"), ("squared", 0, None, "7"),
    ("squared", -10, None, "0"), ("squared", -10, None, "7")])
def test_printed_lines_are_removed_and_the_digit_stays_whole(nb, paper, tilt, margin, digit):
    picture = with_digit(notebook_page(paper, tilt=tilt, margin=margin), digit)
    plain = with_digit(notebook_page("plain"), digit)
    steps = nb.preparation_steps(picture)
    assert (steps["polarity fixed, paper 0"] > 0).sum() > 2 * (steps["lines removed"] > 0).sum()  # lines were ink
    assert components(steps["cropped"]) == 1  # the digit alone (no line left but specks), in one piece
    cropped, plain_cropped = steps["cropped"].shape, nb.preparation_steps(plain)["cropped"].shape
    assert abs(cropped[0] - plain_cropped[0]) <= 6 and abs(cropped[1] - plain_cropped[1]) <= 6  # the digit's box
    difference = (nb.prepare_digit(picture) - nb.prepare_digit(plain)).abs().mean()
    assert difference < 0.08  # the same prepared digit, a little dimmer where it crossed the lines


def test_leaving_the_lines_step_out_keeps_the_lines(nb):
    picture = with_digit(notebook_page("squared"), "7")
    cropped = nb.preparation_steps(picture, leave_out=("lines",))["cropped"]
    assert cropped.shape[0] > 200 and cropped.shape[1] > 280  # the grid spans the page, and so does the crop


def test_plain_paper_is_left_as_it_is(nb):
    picture = with_digit(notebook_page("plain"), "7")
    steps = nb.preparation_steps(picture)
    assert np.array_equal(steps["lines removed"], steps["polarity fixed, paper 0"])


def test_a_stroke_across_the_whole_picture_is_kept(nb):
    """A "1" cropped tightly runs from edge to edge like a printed line, but it is the strongest ink there is."""
    picture = np.full((150, 60), PAPER, np.uint8)
    picture[12:138, 26:34] = INK  # 84% of the picture's height: as long as a printed line
    x = nb.prepare_digit(picture)
    assert x.max() == 1 and int((x[0] > 0).any(1).sum()) == 20  # still there, 20 pixels tall


def test_nan_and_infinite_values_are_named(nb):
    picture = np.full((40, 40), 0.8)
    picture[10, 10], picture[20, 20], picture[30, 30] = np.nan, np.inf, -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy warnings on the way
        with pytest.raises(ValueError, match="1 NaN and 2 infinite values"):
            nb.prepare_digit(picture)
        with pytest.raises(ValueError, match="NaN"):
            nb.prepare_digit(torch.full((28, 28), float("nan")))


def test_rgba_page_cut_out_of_its_background_keeps_its_polarity(nb):
    page = with_digit(notebook_page("plain", size=(320, 240)), "7")
    rgba = np.zeros((400, 480, 4), np.uint8)  # transparent black margins around the page
    rgba[80:320, 80:400, :3] = page[..., None]
    rgba[80:320, 80:400, 3] = 255
    x = nb.prepare_digit(Image.fromarray(rgba, "RGBA"))
    assert (x - nb.prepare_digit(page)).abs().mean() < 0.01  # the light page is paper, the 7 is the ink


@pytest.mark.parametrize("top, sentence", [
    ([(7, 0.995), (1, 0.004), (2, 0.001)], "the ViT reads a 7 (99.5%)"),
    ([(0, 0.98), (6, 0.01), (2, 0.005)], "the ViT is unsure: a 0 (98.0%) or a 6 (1.0%)"),
    ([(4, 0.55), (9, 0.40), (7, 0.03)], "the ViT is unsure: a 4 (55.0%) or a 9 (40.0%)"),
    ([(3, 0.50), (5, 0.30), (8, 0.15)], "the ViT is unsure: a 3 (50.0%) or a 5 (30.0%) or an 8 (15.0%)"),
])
def test_reading_says_plainly_when_it_is_unsure(nb, top, sentence):
    assert nb.reading(top, 0.99, reader="the ViT") == sentence


def test_pad_view_reads_drawn_digits_and_numbers_and_a_blank_canvas(nb):
    """The drawing pad's reading without a browser: the notebook's drawn digits and a number, read by the committed
    ViT with each digit's rollout and by the CNN without, and a blank canvas, which shows nothing."""
    from conftest import ROOT

    models = nb.pad_models(ROOT / "checkpoints")
    for number in list(nb.PAD_STROKES) + ["1734"]:
        picture = Image.open(io.BytesIO(nb.draw_strokes(nb.pad_strokes(number), seed=len(number))))
        vit, cnn = (nb.pad_view(picture, name, *models[name]) for name in ("ViT", "CNN"))
        for name, view in (("ViT", vit), ("CNN", cnn)):
            assert [d.top3[0][0] for d in view["digits"]] == [int(c) for c in number], name
            assert view["sentence"] == f"The {name} reads {number}."
            assert all(d.image.shape == (28, 28) for d in view["digits"])
        assert len(vit["rollouts"]) == len(number) and not cnn["rollouts"]
        for shares in vit["rollouts"]:
            assert shares.shape == (16,) and float(shares.sum()) == pytest.approx(1.0, abs=1e-5)
    assert nb.render_pad_view(vit)[:8] == b"\x89PNG\r\n\x1a\n"
    assert nb.describe_view(vit) == ("The ViT reads 1734. Shown: each digit as the model sees it, with its top three "
                                     "and its attention rollout.")
    assert nb.pad_view(Image.new("L", (700, 280), 255), "ViT", *models["ViT"]) == {}
    marks = np.full((280, 700), 255, np.uint8)
    for k in range(12):
        marks[120:160, 20 + 55 * k:34 + 55 * k] = 0
    view = nb.pad_view(marks, "ViT", *models["ViT"])
    assert view["sentence"].startswith("12 separate marks found: more than a number") and not view["digits"]
    assert nb.render_pad_view(view)[:8] == b"\x89PNG\r\n\x1a\n"
