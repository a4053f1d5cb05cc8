"""The study of numbers, studies/read_numbers.py: run with --quick, its result file checked for structure and for
floors on the easy conditions; and the known answers of what it defines (the layout of a number, touching ink, a
reading's outcome)."""

import csv
import sys

import numpy as np
import pytest
from conftest import ROOT
from test_studies_pictures import QUICK, check_paired, check_share, run_quick

sys.path.insert(0, str(ROOT / "studies"))
import read_numbers  # noqa: E402

CONDITIONS = [(paper, layout) for paper in read_numbers.PAPERS for layout in read_numbers.LAYOUTS]
QUICK_NUMBERS = 12  # per condition: lengths 1 to 6 twice; a touching pair 2 to 6, 2 to 6, 2 and 3


@pytest.fixture(scope="module")
def result(data_dir):
    return run_quick("read_numbers", data_dir)


def test_every_condition_is_scored_for_both_models(result):
    assert result["meta"]["quick"] and result["numbers_per_condition"] == QUICK_NUMBERS
    assert [(c["paper"], c["layout"]) for c in result["conditions"]] == CONDITIONS
    for c in result["conditions"]:
        touching = c["layout"] == read_numbers.TOUCHING
        assert c["numbers"] == QUICK_NUMBERS
        for name in read_numbers.MODELS:
            m = c["models"][name]
            check_share(m["exact"])
            assert m["exact"]["n"] == QUICK_NUMBERS and m["digits"] == (45 if touching else 42)
            assert m["exact"]["right"] <= m["count_right"] <= QUICK_NUMBERS and m["digits_right"] <= m["digits"]
            assert m["digit_share"] == pytest.approx(m["digits_right"] / m["digits"])
            assert m["noted"] <= m["maybe_two"] + m["cut"] and m["noted"] <= m["warned"] <= QUICK_NUMBERS
            assert m["wrong_without_warning"] <= QUICK_NUMBERS - m["exact"]["right"]
            if touching:
                assert m["cut_right"]["right"] == m["exact"]["right"]
                assert m["cut_right"]["right"] <= m["exact_or_maybe_two"]["right"] <= m["exact_or_warned"]["right"]
                assert m["ink_touching"]["n"] == c["ink_touching"] <= QUICK_NUMBERS
        check_paired(c["paired"], *(c["models"][name]["exact"]["right"] for name in read_numbers.MODELS))
    assert len(result["plain_against_ruled"]) == len(read_numbers.LAYOUTS) * len(read_numbers.MODELS)
    for figure in ("read_numbers", "read_numbers_examples"):
        assert (QUICK / "figures" / f"{figure}.png").stat().st_size > 10_000


def test_digits_apart_on_plain_paper_are_read_exactly(result):
    """Floors that the quick set meets with room to spare, and that a broken read_number (one digit per picture, a
    digit lost or doubled) would not: 36 numbers of 1 to 6 digits, 2 to 8 pixels apart, on plain paper."""
    goals = {(g["paper"], g["model"]): g for g in result["goals"] if "goal" in g}
    for name in read_numbers.MODELS:
        apart = goals["plain", name]
        assert apart["layouts"] == ["8 px", "4 px", "2 px"] and apart["exact"]["n"] == 3 * QUICK_NUMBERS
        assert apart["exact"]["right"] >= 29, apart  # 80%; the full set reads about 98%
        assert apart["met"] == (apart["exact"]["accuracy"] >= 0.95)
        widest = next(c for c in result["conditions"] if (c["paper"], c["layout"]) == ("plain", "8 px"))
        assert widest["models"][name]["count_right"] >= 10 and widest["models"][name]["digit_share"] >= 0.8


def test_the_readings_file_has_every_number_with_the_same_digits_under_every_layout(result):
    with open(QUICK / "results" / "read_numbers.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(CONDITIONS) * QUICK_NUMBERS
    truths = {(r["paper"], r["layout"], int(r["number"])): r["truth"].split() for r in rows}
    for j in range(QUICK_NUMBERS):
        n = read_numbers.LENGTHS[j % 6]
        assert len(truths["plain", "8 px", j]) == n
        assert all(truths[paper, layout, j] == truths["plain", "8 px", j] for paper, layout in CONDITIONS
                   if layout != read_numbers.TOUCHING)
        touching = truths["plain", read_numbers.TOUCHING, j]
        assert len(touching) == 2 + j % 5 and touching[:n] == truths["plain", "8 px", j][:len(touching)]
    assert sum(r["ViT exact"] == "True" for r in rows) == sum(c["models"]["ViT"]["exact"]["right"]
                                                               for c in result["conditions"])


# ---------------------------------------------------------------------------------------------------------------------
# Known answers


def bar(left: int, width: int = 1) -> np.ndarray:
    """A (28, 28) "digit": a vertical bar `width` columns wide from column `left`."""
    digit = np.zeros((28, 28))
    digit[4:24, left:left + width] = 1.0
    return digit


def test_compose_sets_the_digits_the_given_gaps_apart():
    ink, own = read_numbers.compose([bar(10), bar(3, 2), bar(20)], [3, 0])
    m = read_numbers.MARGIN
    assert ink.shape == (28 + 2 * m, 1 + 2 + 1 + 3 + 0 + 2 * m)
    assert list(np.flatnonzero(ink.any(0))) == [m, m + 4, m + 5, m + 6]  # 1 column, 3 apart, 2 columns, abutting
    assert len(own) == 3 and np.array_equal(np.max(own, axis=0), ink)
    assert not read_numbers.inks_touch(own[0], own[1]) and read_numbers.inks_touch(own[1], own[2])
    overlapping, (first, second) = read_numbers.compose([bar(0, 4), bar(0, 4)], [-2])
    assert overlapping.shape[1] == 6 + 2 * m and read_numbers.inks_touch(first, second)


def test_a_touching_pair_is_one_pair_of_two_to_six_digits_and_pictures_are_seeded():
    for j in range(10):
        which, gaps = read_numbers.number_layout(read_numbers.TOUCHING, j, 10_000, seed=0)
        assert len(which) == 2 + j % 5 and sorted(gaps)[0] == -read_numbers.OVERLAP
        assert gaps.count(read_numbers.GAP_BESIDE) == len(gaps) - 1
    images, labels = np.stack([bar(5 + k, 3) for k in range(10)]), np.arange(10)
    pictures = [read_numbers.number_picture(images, labels, "ruled", "2 px", 3, seed=0) for _ in range(2)]
    assert np.array_equal(pictures[0]["picture"], pictures[1]["picture"]) and pictures[0]["picture"].dtype == np.uint8
    assert pictures[0]["picture"].shape[0] == (28 + 2 * read_numbers.MARGIN) * read_numbers.SCALE
    assert len(pictures[0]["truth"]) == 4 and pictures[0]["touching_ink"] is None


def test_outcomes_count_digits_only_when_the_count_is_right():
    reading = lambda said, notes=None, unsure=(): {"said": said, "notes": notes or [""] * len(said),  # noqa: E731
                                                   "unsure": list(unsure)}
    assert read_numbers.outcome("123", reading("123"))["exact"]
    wrong_digit = read_numbers.outcome("123", reading("129", unsure=[2]))
    assert wrong_digit["digits_right"] == 2 and wrong_digit["count_right"] and wrong_digit["warned"]
    assert not wrong_digit["noted"]
    lost = read_numbers.outcome("123", reading("13", ["maybe two", ""]))
    assert lost["digits_right"] == 0 and not lost["count_right"] and lost["maybe_two"] and lost["warned"]
    assert read_numbers.read(None, {"unsure_below": 0.5}, np.full((60, 90), 200, np.uint8))["said"] == ""  # no ink
