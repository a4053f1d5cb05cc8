"""Shared fixtures: the notebook's own definitions, loaded without running its heavy cells."""

import os
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "vit_mnist.ipynb"


def mnist_data_dir() -> str:
    """MNIST_DATA_DIR (absolute) when it holds the raw files, as in CI; otherwise the repository's data/ folder, where
    torchvision downloads MNIST on first use (tests run the notebook in other folders, so the path is absolute)."""
    data_dir = os.environ.get("MNIST_DATA_DIR")
    if data_dir and (Path(data_dir) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        return str(Path(data_dir).resolve())
    return str(ROOT / "data")


def load_definitions(notebook_path: Path = NOTEBOOK) -> types.ModuleType:
    """Execute the notebook's cells tagged `definitions` (imports, functions, classes) as a module and return it:
    nothing else of the notebook runs (no data, no training, no plots)."""
    notebook = nbformat.read(notebook_path, as_version=4)
    cells = [c.source for c in notebook.cells if c.cell_type == "code" and "definitions" in c.metadata.get("tags", [])]
    assert len(cells) >= 5, "the notebook lost its `definitions` cells"
    module = types.ModuleType("vit_mnist_notebook")
    sys.modules[module.__name__] = module  # dataclasses and pickling look classes up by module
    for i, source in enumerate(cells):
        exec(compile(source, f"<{notebook_path.name}: definitions cell {i}>", "exec"), module.__dict__)
    return module


def notebook_parameters() -> dict:
    """The defaults of the notebook's `parameters` cell."""
    cell = next(c for c in nbformat.read(NOTEBOOK, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    namespace = {"os": os}
    exec(cell.source, namespace)
    return namespace["DEFAULTS"]


@pytest.fixture(scope="session")
def nb(tmp_path_factory) -> types.ModuleType:
    module = load_definitions()
    module.FIGURE_DIR = tmp_path_factory.mktemp("figures")
    module.CPU_PRECISION = "float32"  # a parameter of the notebook: tests train in float32 unless they say otherwise
    return module


@pytest.fixture(scope="session")
def data_dir(nb) -> str:
    path = mnist_data_dir()
    nb.load_mnist(path, val_size=1000)  # downloads MNIST there if it is missing, or says clearly what to do
    return path


@pytest.fixture(scope="session")
def mnist(nb, data_dir):
    return nb.load_mnist(data_dir, val_size=1000, train_subset=2000, seed=0)
