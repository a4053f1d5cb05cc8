"""Cells run the way readers run them: twice, out of order, or only the few that a part needs."""

import json

import nbformat
import papermill as pm
import pytest
from conftest import NOTEBOOK, ROOT

CELLS = nbformat.read(NOTEBOOK, as_version=4).cells


def code(cell) -> bool:
    return cell.cell_type == "code"


def tagged(cell, tag: str) -> bool:
    return tag in cell.metadata.get("tags", [])


def setup_and_parameter_cells() -> list[str]:
    """The code cells before the parameters cell (setup), the parameters cell and its check (the next code cell)."""
    index = next(i for i, c in enumerate(CELLS) if tagged(c, "parameters"))
    check = next(c for c in CELLS[index + 1:] if code(c))
    return [c.source for c in CELLS[:index] if code(c) and "google.colab" not in c.source] + [CELLS[index].source,
                                                                                               check.source]


def run(namespace: dict, source: str) -> None:
    exec(compile(source, "<cell>", "exec"), namespace)


@pytest.mark.parametrize("quick", [False, True])
def test_parameters_and_their_check_run_twice_to_the_same_state(quick):
    *setup, parameters, check = setup_and_parameter_cells()
    namespace: dict = {}
    for source in setup:
        run(namespace, source)
    states = []
    for _ in range(2):
        run(namespace, parameters)
        run(namespace, f"QUICK = {quick}")  # as papermill's injected cell, or a reader's edit, sets it
        run(namespace, check)
        states.append({name: namespace[name] for name in namespace["DEFAULTS"]})
    assert states[0] == states[1]
    assert states[1]["VAL_SIZE"] == (2_000 if quick else 5_000)
    assert namespace["DEFAULTS"]["VAL_SIZE"] == 5_000  # the defaults as the cell writes them, not QUICK's


def test_a_typo_is_caught_after_a_rerun_too():
    *setup, parameters, check = setup_and_parameter_cells()
    namespace: dict = {}
    for source in setup:
        run(namespace, source)
    run(namespace, parameters)
    run(namespace, check)
    run(namespace, parameters)
    run(namespace, "EPOHCS = 5")
    for _ in range(2):  # and again, as long as the typo stands
        with pytest.raises(NameError, match=r"Unknown parameter\(s\) \['EPOHCS'\]"):
            run(namespace, check)
    del namespace["EPOHCS"]
    run(namespace, check)
    run(namespace, "LATER_CONSTANT = 1")  # what a later cell defines
    run(namespace, check)  # run again alone, it does not mistake names of later cells for parameters


def test_your_turn_runs_after_the_setup_the_parameters_and_the_definitions_alone(tmp_path, nb):
    """A reader who only wants the pad runs the setup, the parameters and the definitions, then "Your turn": it loads
    the committed models itself, shows the pad (and the drawn digits where no widget renders) and reads a picture."""
    start = next(i for i, c in enumerate(CELLS) if c.cell_type == "markdown" and "## Your turn" in c.source)
    index = next(i for i, c in enumerate(CELLS) if tagged(c, "parameters"))
    check = next(c for c in CELLS[index + 1:] if code(c))
    keep = [c for c in CELLS[:index + 1] if code(c)] + [check]
    keep += [c for c in CELLS if code(c) and tagged(c, "definitions") and c not in keep]
    keep += [c for c in CELLS[start:] if code(c) and not tagged(c, "definitions")]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    metadata = {"kernelspec": kernel, "language_info": {"name": "python"}}
    notebook = nbformat.v4.new_notebook(cells=keep, metadata=metadata)
    path = tmp_path / "your_turn.ipynb"
    nbformat.write(notebook, path)
    picture = tmp_path / "my_number.png"
    picture.write_bytes(nb.draw_strokes(nb.pad_strokes("741"), seed=7))
    pm.execute_notebook(path, tmp_path / "executed.ipynb", cwd=str(tmp_path), kernel_name="python3",
                        progress_bar=False, parameters=dict(OUTPUT_DIR=str(ROOT), FIGURE_DIR=str(tmp_path / "figures"),
                                                            MY_DIGITS=[str(picture)]))
    executed = json.loads((tmp_path / "executed.ipynb").read_text())
    outputs = [o for c in executed["cells"][-len([c for c in CELLS[start:] if code(c)
                                                  and not tagged(c, "definitions")]):] for o in c["outputs"]]
    text = json.dumps(outputs)
    assert "application/vnd.jupyter.widget-view+json" in text, "the pad"
    assert "The live drawing pad appears here when the notebook runs" in text, "what a reader without widgets sees"
    assert "DrawingPad object at" not in text
    assert "my_number.png: The ViT reads 741." in text
    for figure in ("drawing_pad_number", "my_picture_1"):
        assert (tmp_path / "figures" / f"{figure}.png").exists(), figure
