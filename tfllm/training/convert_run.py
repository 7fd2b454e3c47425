"""`convert_run`: a GPT-2 checkpoint (KerasHub preset or Hugging Face directory) into a tfllm run directory.

The run directory of kind "convert" holds `run.json`, `convert.json` (a `ConvertConfig`: the source, its format and
its config), `model.keras` (the `TransformerLM`, its `BytePairTokenizer` inside) and `metrics.json` (what was
converted), written in that order; `metrics.json` last marks it complete. `tfllm generate`, `evaluate --corpus`,
`finetune` and `export` then read it like any run.
"""

import dataclasses
import os

from tfllm.checkpoints import checkpoint_format
from tfllm.checkpoints.formats import read_config
from tfllm.models import TransformerLM
from tfllm.training.convert_config import ConvertConfig
from tfllm.training.run_directory import METRICS, RunDirectory, RunDirectoryError


@dataclasses.dataclass(frozen=True)
class ConvertResult:
    """What `convert_run` made: the run directory, its config, the model, and `metrics.json`'s summary."""

    run_dir: str
    config: ConvertConfig
    model: TransformerLM
    metrics: dict


def convert_run(source, run_dir, overwrite=False):
    """Converts the GPT-2 checkpoint in the local directory `source` into the new run directory `run_dir`.

    Args:
        source: a KerasHub GPT-2 preset or a Hugging Face GPT-2 model directory.
        run_dir: the run directory to write (it must not hold a run, unless `overwrite`).
        overwrite: replace a run already in `run_dir`.

    Returns:
        A `ConvertResult`; its `metrics` (also `metrics.json`) name the format, the layers, width, heads, vocabulary,
        context and parameter count.

    Raises:
        RunDirectoryError: `run_dir` holds a run (and not `overwrite`), or is a folder of other files.
        tfllm.checkpoints.CheckpointError: `source` cannot be converted (neither format, another architecture, a
            missing file or tensor, a wrong shape); both are `ValueError`s, raised before anything is written.

    Example:

    >>> import tempfile
    >>> convert_run(tempfile.mkdtemp(), tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.checkpoints.formats.CheckpointError: ... has no config.json: expected a KerasHub preset (config.json, ...
    """
    source = os.path.abspath(os.path.expanduser(os.fspath(source)))
    run = RunDirectory(run_dir, "convert")
    if os.path.abspath(run.path) == source:
        raise RunDirectoryError(f"{run.path} is the checkpoint: the converted run needs a directory of its own")
    format = checkpoint_format(source)  # the quick checks first: the format, then the run directory
    plan = run.plan(None, overwrite)  # a "convert" run never resumes, so there is no config to compare
    model = TransformerLM.from_pretrained(source)
    config = ConvertConfig.for_checkpoint(source, format, read_config(source), model.max_sequence_length)
    run.start(config, plan)
    run.save_model(model)
    metrics = conversion_summary(model, format)
    run.write_json(METRICS, metrics)
    return ConvertResult(run.path, config, model, metrics)


def conversion_summary(model, format):
    """What was converted, as `metrics.json` records it."""
    return {"format": format, "num_layers": model.num_layers, "hidden_dim": model.hidden_dim,
            "num_heads": model.num_heads, "intermediate_dim": model.intermediate_dim, "vocab_size": model.vocab_size,
            "context": model.max_sequence_length, "parameters": int(model.count_params())}
