"""Every notebook in notebooks/ runs top to bottom in a fresh kernel, offline, and is stored without outputs.

The notebooks hold their own checks (`assert`s on the numbers they show), so a notebook that runs is one whose
claims still hold; one that prints no warning is one whose reader sees only what it means to show. Each runs in a scratch working directory, so nothing it writes lands in the checkout.
"""

import os
import pathlib
import re

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_SECONDS = 600
# What TensorFlow prints as it starts, before its log level applies (tensorflow/tensorflow#100442): on a machine
# without a GPU, that it found no CUDA driver; on some CPUs, which instructions it was not built for.
START_UP_LINES = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called|"
                            r"[IW]\d{4} [\d:. ]+\d+ (cudart_stub|cpu_feature_guard)\.cc:\d+\]|To enable the following "
                            r"instructions")
SHOWN_ON_PURPOSE = {"05_distributed": ("XLA is off: under MirroredStrategy",)}  # the log line its prose points to


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
    # The kernel inherits the environment: the log level the notebook chooses, plots drawn inline, caches in the
    # scratch folder.
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("MPLCONFIGDIR", os.fspath(tmp_path / "matplotlib"))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_SECONDS, kernel_name="python3",
                            resources={"metadata": {"path": os.fspath(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}", pytrace=False)
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    # A reader sees no warning and no log line but TensorFlow's start-up ones: each would be a fault to fix.
    noise = [line for output in outputs if output.output_type == "stream"
             for line in output.text.splitlines() if line.strip() and not START_UP_LINES.match(line)
             and not line.startswith(SHOWN_ON_PURPOSE.get(path.stem, ()))
             and (output.name == "stderr" or line.startswith(("INFO:", "WARNING:")))]
    assert not noise, f"{path.name} printed:\n" + "\n".join(noise)
