"""The committed notebook holds one real top-to-bottom run that GitHub can render."""

import json
import re

import nbformat
from conftest import NOTEBOOK


def code_cells():
    return [c for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]


def test_valid_nbformat_without_widget_state():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert "widgets" not in notebook.metadata


def test_small_enough_for_github():
    assert NOTEBOOK.stat().st_size < 5_000_000


def test_outputs_of_one_run_in_order():
    counts = [c.execution_count for c in code_cells()]
    assert all(isinstance(n, int) for n in counts), "every code cell ran"
    assert counts == sorted(counts) and len(set(counts)) == len(counts)


def test_no_errors_no_stderr_no_local_paths():
    outputs = [o for c in code_cells() for o in c.outputs]
    assert outputs, "the committed notebook should hold the outputs of a run"
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    text = json.dumps(outputs)
    assert not re.search(r"/(work|tmp|root|home|Users)/[A-Za-z0-9_.-]+", text), "an absolute path of this machine"
    assert not re.search(r"(^|[^\w.])\.\.[/\\]", text), "a relative path that leaves the repository (../)"
    assert "\r" not in "".join(o.text for o in outputs if o.output_type == "stream"), "progress bars left behind"


def test_images_are_png():
    images = [o for c in code_cells() for o in c.outputs if o.output_type == "display_data"
              and any(k.startswith("image/") for k in o.data)]
    assert len(images) >= 12  # the lesson's figures; the studies draw theirs in studies/figures/
    assert all("image/png" in o.data and not ({"image/svg+xml", "application/pdf"} & set(o.data)) for o in images)


def test_parameters_cell_is_tagged():
    assert sum("parameters" in c.metadata.get("tags", []) for c in code_cells()) == 1
