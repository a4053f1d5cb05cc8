"""The notebook's definitions as a module: the one loader that tests, benchmarks and studies share.

`load_definitions()` executes the cells of `vit_mnist.ipynb` tagged `definitions` (imports, functions, classes) and
nothing else of it: no data, no training, no plots.
"""

import os
import sys
import types
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent
NOTEBOOK = ROOT / "vit_mnist.ipynb"


def load_definitions(notebook_path: Path = NOTEBOOK) -> types.ModuleType:
    """Execute the notebook's cells tagged `definitions` as a module and return it."""
    notebook = nbformat.read(notebook_path, as_version=4)
    cells = [c.source for c in notebook.cells if c.cell_type == "code" and "definitions" in c.metadata.get("tags", [])]
    if len(cells) < 5:
        raise RuntimeError(f"{notebook_path} has {len(cells)} cells tagged `definitions`: it lost them")
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


def mnist_data_dir() -> str:
    """MNIST_DATA_DIR (absolute) when it holds the raw files, as in CI; otherwise the repository's data/ folder, where
    torchvision downloads MNIST on first use."""
    data_dir = os.environ.get("MNIST_DATA_DIR")
    if data_dir and (Path(data_dir) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        return str(Path(data_dir).resolve())
    return str(ROOT / "data")
