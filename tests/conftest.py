"""Shared fixtures: the notebook's own definitions, loaded without running its heavy cells."""

import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from definitions import NOTEBOOK, ROOT, load_definitions, mnist_data_dir, notebook_parameters  # noqa: E402, F401


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
