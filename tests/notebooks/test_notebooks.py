"""Every notebook in notebooks/ runs top to bottom in a fresh kernel, offline, and is stored without outputs.

The notebooks hold their own checks (`assert`s on the numbers they show), so a notebook that runs is one whose
claims still hold; one that prints no warning is one whose reader sees only what it means to show. A notebook
whose kernel dies (a crash of TensorFlow's runtime) runs once more, as a test whose worker crashes does. Each runs in
a scratch working directory, so nothing it writes lands in the checkout.
"""

import os
import pathlib
import re
import warnings

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError

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
    # The kernel inherits the environment: the log level the notebook chooses, plots drawn inline, caches in the
    # scratch folder.
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("MPLCONFIGDIR", os.fspath(tmp_path / "matplotlib"))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    try:
        notebook = run_notebook(path, tmp_path)
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


def run_notebook(path, folder):
    """The notebook at `path` after running it top to bottom in a fresh kernel, in a new subfolder of `folder`.

    A kernel that dies (once, a segmentation fault in TensorFlow's runtime, in a `fit` of notebook 02) is named in a
    warning, and the notebook runs once more in a new kernel, as a test whose worker crashes does
    (tests/worker_crashes.py): a one-off crash of TensorFlow is not a verdict on the notebook. A second death raises
    `DeadKernelError`; an error in a cell raises `CellExecutionError` at once.
    """
    for attempt in range(2):
        notebook = nbformat.read(path, as_version=4)
        working_directory = pathlib.Path(folder) / f"run-{attempt + 1}"
        working_directory.mkdir(parents=True)
        client = NotebookClient(notebook, timeout=CELL_TIMEOUT_SECONDS, kernel_name="python3",
                                resources={"metadata": {"path": os.fspath(working_directory)}})
        try:
            client.execute()
            return notebook
        except DeadKernelError:
            if attempt:
                raise
            warnings.warn(f"the kernel running {pathlib.Path(path).name} died: running it again in a new kernel")


def _notebook_that_dies(path, times, counter):
    """A notebook whose kernel kills itself the first `times` times it runs (counted in the file `counter`)."""
    source = (f"import os, pathlib, signal\ncounter = pathlib.Path({os.fspath(counter)!r})\n"
              "runs = int(counter.read_text()) if counter.exists() else 0\ncounter.write_text(str(runs + 1))\n"
              f"if runs < {times}:\n    os.kill(os.getpid(), signal.SIGKILL)\nprint('ran', runs + 1)")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def test_a_notebook_whose_kernel_dies_once_runs_again_and_twice_fails(tmp_path):
    once = _notebook_that_dies(tmp_path / "once.ipynb", 1, tmp_path / "once.count")
    with pytest.warns(UserWarning, match="the kernel running once.ipynb died: running it again in a new kernel"):
        notebook = run_notebook(once, tmp_path / "once")
    assert notebook.cells[0].outputs[0].text == "ran 2\n"
    twice = _notebook_that_dies(tmp_path / "twice.ipynb", 2, tmp_path / "twice.count")
    with pytest.warns(UserWarning, match="twice.ipynb died"), pytest.raises(DeadKernelError):
        run_notebook(twice, tmp_path / "twice")
    assert (tmp_path / "twice.count").read_text() == "2"
