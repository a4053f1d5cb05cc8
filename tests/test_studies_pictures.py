"""The studies of pictures off the test set: studies/corruptions.py and studies/handwriting.py, each run with --quick
and its result file checked; and the known answers of what they define: the four corruptions, the photo simulator
with its pens, the stroke width and the ECE."""

import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT

sys.path.insert(0, str(ROOT / "studies"))
import corruptions  # noqa: E402
import handwriting  # noqa: E402

QUICK = ROOT / "runs" / "studies-quick"
MODELS = ["ViT", "conv-stem ViT", "CNN"]


def run_quick(name: str, data_dir: str) -> dict:
    """Run a study with --quick from the repository root and return its result file."""
    result_file = QUICK / "results" / f"{name}.json"
    result_file.unlink(missing_ok=True)  # never read a stale result
    # one thread: the quick runs read small batches, where a thread pool on shared CI cores costs more than it gives
    env = dict(os.environ, MNIST_DATA_DIR=data_dir, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, f"studies/{name}.py", "--quick"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(result_file.read_text())


def check_share(entry: dict) -> None:
    """A score of score(): counts, the share and its Wilson interval agree."""
    assert isinstance(entry["right"], int) and 0 <= entry["right"] <= entry["n"]
    assert entry["accuracy"] == pytest.approx(entry["right"] / entry["n"])
    low, high = entry["interval"]
    assert 0 <= low <= entry["accuracy"] <= high + 1e-12 and high <= 1  # a bound of 100% may round below it


def check_paired(test: dict, right_first: int, right_second: int) -> None:
    """McNemar's counts are the disagreements: their difference is the difference of the two counts right."""
    assert test["right_only_first"] - test["right_only_second"] == right_first - right_second
    assert 0 <= test["p"] <= 1


# ---------------------------------------------------------------------------------------------------------------------
# The studies, with --quick


@pytest.fixture(scope="module")
def corruption_result(data_dir):
    return run_quick("corruptions", data_dir)


@pytest.fixture(scope="module")
def handwriting_result(data_dir):
    return run_quick("handwriting", data_dir)


def test_corruption_study_scores_every_model_at_every_severity(corruption_result):
    result = corruption_result
    assert result["meta"]["quick"] and result["images"] == 100 and result["models"] == MODELS
    assert list(result["corruptions"]) == list(corruptions.CORRUPTIONS)
    for name, curve in result["corruptions"].items():
        assert curve["severities"] == corruptions.CORRUPTIONS[name][1]
        for model in MODELS:
            for right, accuracy, (low, high) in zip(curve["right"][model], curve["accuracy"][model],
                                                    curve["interval"][model], strict=True):
                assert accuracy == pytest.approx(right / result["images"])
                assert low - 1e-12 <= accuracy <= high + 1e-12  # a Wilson bound of 100% may round below it
            # severity 0 changes nothing: every corruption starts from the same clean accuracy, 95% or more
            assert curve["right"][model][0] == result["corruptions"]["rotation"]["right"][model][0] >= 95
    for figure in ("corruptions", "corruption_examples"):
        assert (QUICK / "figures" / f"{figure}.png").stat().st_size > 10_000


def test_corruption_study_pairs_every_two_models_and_finds_the_known_orders(corruption_result):
    curves, paired = corruption_result["corruptions"], corruption_result["paired"]
    assert len(paired) == len(corruptions.CORRUPTIONS) * 2 * 3  # moderate and most severe, three pairs
    for test in paired:
        curve = curves[test["corruption"]]
        k = curve["severities"].index(test["severity"])
        check_paired(test, curve["right"][test["first"]][k], curve["right"][test["second"]][k])
    most_severe = {(t["corruption"], t["first"], t["second"]): t for t in paired if t["level"] == "most severe"}
    noise, shift = most_severe["Gaussian noise", "ViT", "CNN"], most_severe["translation", "ViT", "CNN"]
    assert noise["right_only_first"] > noise["right_only_second"] and noise["p"] < 0.01  # the ViT under noise
    assert shift["right_only_first"] < shift["right_only_second"] and shift["p"] < 0.01  # the CNN under a shift


def test_handwriting_study_on_other_writers_matches_the_notebook(handwriting_result):
    other = handwriting_result["other_writers"]
    assert other["digits"] == 1797  # all of them, even with --quick
    # the notebook's 94.05%, 94.44% and 97.94% of the 1,797 digits, with the temperatures of the checkpoints
    assert {m: other["models"][m]["right"] for m in MODELS} == {"ViT": 1690, "conv-stem ViT": 1697, "CNN": 1760}
    assert other["models"]["ViT"]["ece_mnist_temperature"] == pytest.approx(0.0369, abs=5e-5)
    assert other["models"]["CNN"]["ece_mnist_temperature"] == pytest.approx(0.0078, abs=5e-5)
    for entry in other["models"].values():
        check_share(entry)
        assert entry["difference_points"] == pytest.approx(100 * (entry["accuracy"] - entry["mnist_test_accuracy"]))
    for test in other["paired"]:
        check_paired(test, other["models"][test["first"]]["right"], other["models"][test["second"]]["right"])
    vit_cnn = next(t for t in other["paired"] if (t["first"], t["second"]) == ("ViT", "CNN"))
    assert vit_cnn["p"] < 0.001


def test_handwriting_study_photos_calibration_ablation_and_pens(handwriting_result):
    result = handwriting_result
    photos = result["photos"]
    assert photos["per_paper"] == 20 and len(set(photos["digits"])) == 20
    for model in MODELS:
        scores = photos["accuracy"][model]
        assert list(scores) == ["naive resize, plain", "plain", "ruled", "squared"]
        for entry in scores.values():
            check_share(entry)
        assert scores["plain"]["accuracy"] > scores["naive resize, plain"]["accuracy"] + 0.5
    comparisons = {(t.get("model", t.get("paper")), t["first"], t["second"]) for t in photos["paired"]}
    assert {(m, paper, "clean") for m in MODELS for paper in handwriting.PAPERS} <= comparisons
    assert len(photos["paired"]) == 3 * (1 + 2 + 3) + 3 * 2

    conditions = result["calibration_off_mnist"]
    assert len(conditions) == 3 * 4
    for row in conditions:
        check_share(row)
        assert row["sure"]["n"] + row["unsure"]["n"] == row["n"] and 0 <= row["ece"] <= 1
        assert row["unsure_share"] == pytest.approx(row["unsure"]["n"] / row["n"])

    ablation = result["ablation"]
    assert ablation["photos_per_paper"] == 5 and len(ablation["rows"]) == 8 * 3 * 3
    for row in ablation["rows"]:
        assert (row["p"] is None) == (row["left_out"] is None)
    for test in ablation["pooled"]:
        check_paired(test, test["full"]["right"], test["without"]["right"])
        if test["left_out"] == "paper":  # grey paper read as grey ink: the digit is lost
            assert test["without"]["accuracy"] < 0.5 and test["p"] < 0.01
    with open(QUICK / "results" / "handwriting_ablation.csv") as f:
        assert len(list(csv.DictReader(f))) == len(ablation["rows"])

    widths = [row["stroke_width"] for row in result["pens"]["rows"]]
    assert [row["pen_width"] for row in result["pens"]["rows"]] == list(handwriting.PEN_WIDTHS)
    assert widths[0] < widths[2] < widths[-1]  # a thinner pen, as written, a thicker pen
    # the pad's brushes and MNIST's validation digits are measured in full even with --quick: the notebook's values
    assert result["brushes"]["mnist_stroke_width"] == pytest.approx(2.42, abs=0.005)
    assert [row["stroke_width"] for row in result["brushes"]["rows"]] == pytest.approx(
        [1.71, 1.94, 2.29, 2.48, 2.65, 2.99], abs=0.005)
    for figure in ("preparation_steps", "own_handwriting_predictions", "other_writers_confusion",
                   "handwriting_accuracy"):
        assert (QUICK / "figures" / f"{figure}.png").stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------------------------------
# The corruptions, on hand-made inputs with known answers


def test_a_one_pixel_image_rotated_by_90_degrees_lands_where_it_should(nb):
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 3, 20] = 1.0  # top right
    anticlockwise = nb.affine(x, torch.tensor([math.pi / 2]), torch.ones(1), torch.zeros(1, 2))
    assert anticlockwise[0, 0, 7, 3] == pytest.approx(1.0, abs=1e-5)  # top left: the image turned anticlockwise
    assert anticlockwise.sum() == pytest.approx(1.0, abs=1e-5)
    for seed in range(4):  # rotate() picks the direction at random: one of the two quarter turns
        rotated = corruptions.rotate(x, 90, torch.Generator().manual_seed(seed))
        assert (rotated[0, 0, 7, 3] == pytest.approx(1.0, abs=1e-5)
                or rotated[0, 0, 20, 24] == pytest.approx(1.0, abs=1e-5))
    assert torch.allclose(corruptions.rotate(x, 0, torch.Generator()), x, atol=1e-6)


@pytest.mark.parametrize("pixels", [0, 1, 3, 6])
def test_translation_moves_mass_by_exactly_k_pixels(pixels):
    x = torch.zeros(8, 1, 28, 28)
    x[:, 0, 10:18, 12:16] = torch.rand(8, 8, 4)
    shifted = corruptions.translate(x, pixels, torch.Generator().manual_seed(0))
    rows, cols = torch.arange(28.0)[:, None], torch.arange(28.0)[None, :]
    for before, after in zip(x[:, 0], shifted[:, 0]):
        assert after.sum() == pytest.approx(before.sum().item())  # nothing leaves the image at these sizes
        moved = torch.tensor([((after * rows).sum() - (before * rows).sum()) / before.sum(),
                              ((after * cols).sum() - (before * cols).sum()) / before.sum()])
        assert sorted(moved.abs().tolist()) == pytest.approx([0, pixels], abs=1e-4)


def test_noise_and_occlusion_at_zero_severity_are_the_identity(mnist):
    x = mnist.x_test[:16]
    assert torch.equal(corruptions.add_noise(x, 0.0, torch.Generator().manual_seed(0)), x)
    assert torch.equal(corruptions.occlude(x, 0, torch.Generator().manual_seed(0)), x)
    noisy = corruptions.add_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1 and not torch.equal(noisy, x)
    assert torch.equal(noisy, corruptions.add_noise(x, 0.5, torch.Generator().manual_seed(0)))  # seeded


def test_occlusion_blanks_a_square_on_the_digit():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 20, 5] = 1.0  # the only ink pixel: the square must be centred on it
    occluded = corruptions.occlude(torch.ones_like(x) * 0.2 + x * 0.8, 4, torch.Generator().manual_seed(0))
    blanked = torch.nonzero(occluded[0, 0] == 0)
    assert len(blanked) == 16
    assert blanked.min(0).values.tolist() == [18, 3] and blanked.max(0).values.tolist() == [21, 6]


# ---------------------------------------------------------------------------------------------------------------------
# The photo simulator, the pens, the stroke width and the ECE


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_stroke_width_of_simulated_pens(nb, factor):
    digit = np.zeros((8, 8))
    digit[1:7, 3:5] = 16  # a thick "1"
    written = handwriting.simulated_photo(digit, np.random.default_rng(0), pen_width=1.0)
    changed = handwriting.simulated_photo(digit, np.random.default_rng(0), pen_width=factor)
    widths = [handwriting.stroke_width(nb.preparation_steps(p)["cropped"]) for p in (written, changed)]
    assert widths[1] / widths[0] == pytest.approx(factor, rel=0.25)


def test_simulated_photos_are_seeded_and_the_paper_shows(nb):
    digit = np.random.default_rng(1).integers(0, 17, (8, 8))
    for paper in handwriting.PAPERS:  # seeded: the same picture twice
        photos = [handwriting.simulated_photo(digit, np.random.default_rng(3), paper=paper) for _ in range(2)]
        assert np.array_equal(*photos)
    plain = handwriting.simulated_photo(digit, np.random.default_rng(3))
    assert not np.array_equal(plain, handwriting.simulated_photo(digit, np.random.default_rng(3), paper="ruled"))
    assert plain.dtype == np.uint8 and 256 <= plain.shape[0] <= 300 and 256 <= plain.shape[1] <= 400
    with pytest.raises(ValueError, match="paper='lined'"):
        handwriting.simulated_photo(digit, np.random.default_rng(3), paper="lined")


def test_stroke_width_is_measured_in_pixels():
    bar = np.zeros((100, 100))
    bar[10:90, 40:49] = 1  # 9 pixels wide
    assert handwriting.stroke_width(bar) == pytest.approx(9, abs=0.6)
    assert handwriting.disk(1.0).sum() == 5  # the centre and its four neighbours


def test_uci_digit_keeps_the_ink_of_its_blocks():
    full, empty = np.full((8, 8), 16), np.zeros((8, 8))
    assert np.allclose(handwriting.uci_digit(full, 32), 1) and np.allclose(handwriting.uci_digit(empty, 32), 0)
    half = np.zeros((8, 8))
    half[:, :4] = 16  # the left half inked
    assert handwriting.uci_digit(half, 64).mean() == pytest.approx(0.5, abs=0.02)


def test_naive_resize_inverts_light_paper_and_a_blank_picture_is_read_as_a_black_field():
    picture = np.full((120, 90), 230, np.uint8)
    picture[30:90, 40:50] = 20  # a dark "1" on light paper
    x = handwriting.naive_resize(picture)
    assert x.shape == (1, 28, 28) and x[0, 0, 0] == pytest.approx(1 - 230 / 255, abs=0.01) and x.max() > 0.6
    assert torch.equal(handwriting.prepare_or_blank(np.full((60, 60), 0.7)), torch.zeros(1, 28, 28))


def test_expected_calibration_error_of_known_bins():
    confidence = torch.tensor([0.95, 0.95, 0.95, 0.95, 0.55, 0.55])
    correct = torch.tensor([True, True, True, False, True, False])
    assert handwriting.expected_calibration_error(confidence, correct, n_bins=10) == pytest.approx(
        4 / 6 * 0.2 + 2 / 6 * 0.05)
    assert handwriting.expected_calibration_error(torch.ones(4), torch.ones(4, dtype=torch.bool)) == 0
