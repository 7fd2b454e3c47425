"""Every notebook in notebooks/ runs top to bottom in a fresh kernel, offline, and is stored without outputs.

The notebooks hold their own checks (`assert`s on the numbers they show), so a notebook that runs is one whose
claims still hold. Each runs in a scratch working directory, so nothing it writes lands in the checkout.
"""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_SECONDS = 600


def test_the_five_notebooks_are_there():
    assert [path.name for path in NOTEBOOKS] == [
        "01_rnn_from_scratch.ipynb",
        "02_pretraining.ipynb",
        "03_finetuning.ipynb",
        "04_generation_and_export.ipynb",
        "05_distributed.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"cell {index} of {path.name} has outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    # The kernel inherits the environment: no GPU search noise, plots drawn inline, caches in the scratch folder.
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("MPLCONFIGDIR", os.fspath(tmp_path / "matplotlib"))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_SECONDS, kernel_name="python3",
                            resources={"metadata": {"path": os.fspath(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}", pytrace=False)
    errors = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
              if output.output_type == "error"]
    assert not errors
