"""`SampleCallback`: what the model writes, every N steps and at the end of training."""

import os
import re

import tensorflow as tf

from tfllm.training.atomic import atomic_write_text
from tfllm.training.callbacks.step_callback import StepCallback
from tfllm.training.callbacks.summaries import write_text


class SampleCallback(StepCallback):
    """Continues `prompts` with `model.generate` every `every` steps and when training ends.

    Each sampling appends a block headed by the step to `path` (rewritten atomically), writes the texts as the
    TensorBoard text summary `samples` in `log_dir/samples` (one row per prompt), and adds one dict per prompt,
    `{"step": ..., "prompt": ..., "text": ...}`, to `samples`.

    Args:
        prompts: the prompts (strings; the model needs a tokenizer).
        every: steps between samples; None samples only at the end.
        max_new_tokens: tokens generated per prompt.
        path: a text file to append the samples to, or None.
        seed: the generation seed (the same step and weights give the same text).
        at_train_end: also sample in `on_train_end` (once per step: not again if the last step was sampled).
        initial_step: the step the run starts from.
        log_dir: the TensorBoard folder of the run (the texts go to its `samples` folder), or None. It may be set
            after the callback is made, before it samples.
        **generate_kwargs: more arguments of `model.generate` (`sampler`, `temperature`, `top_k`, `top_p`).

    In training: `model.fit(..., callbacks=[SampleCallback(prompts, every=500, path=...)])`. `sample` also works on
    its own, once the callback has a model:

    Example:

    >>> import os, tempfile
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> path = os.path.join(tempfile.mkdtemp(), "samples.txt")
    >>> samples = SampleCallback(["In the beginning"], max_new_tokens=4, path=path)
    >>> samples.set_model(LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer()))  # `fit` does this
    >>> sample = samples.sample(step=100)[0]
    >>> sample["step"], sample["prompt"], sample["text"].startswith("In the beginning")
    (100, 'In the beginning', True)
    >>> open(path).read().splitlines()[:2]
    ['=== step 100 ===', "--- prompt: 'In the beginning'"]
    >>> samples.log_dir = os.path.dirname(path)  # from now on, TensorBoard's Text tab shows them too
    >>> _ = samples.sample(step=200)
    >>> os.listdir(os.path.join(samples.log_dir, "samples"))[0].startswith("events.out.tfevents")
    True

    A run resumed from step 150 samples step 200 again: its block replaces the first one (and any later ones).

    >>> resumed = SampleCallback(["In the beginning"], max_new_tokens=4, path=path, initial_step=150)
    >>> resumed.set_model(samples.model)
    >>> _ = resumed.sample(step=200)
    >>> [line for line in open(path).read().splitlines() if line.startswith("===")]
    ['=== step 100 ===', '=== step 200 ===']
    """

    def __init__(self, prompts, every=None, max_new_tokens=64, path=None, seed=0, at_train_end=True,
                 initial_step=0, log_dir=None, **generate_kwargs):
        super().__init__(initial_step)
        self.prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        self.every = every
        self.max_new_tokens = max_new_tokens
        self.path = None if path is None else os.fspath(path)
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.seed = seed
        self.at_train_end = at_train_end
        self.generate_kwargs = generate_kwargs
        self.samples = []
        self._sampled_step = None
        self._writer = None

    def on_step_end(self, step, logs):
        if self.every and step % self.every == 0:
            self.sample(step)

    def on_train_end(self, logs=None):
        if self.at_train_end:
            self.sample(self.step)

    def sample(self, step=None):
        """Generates now, as step `step` (default: the current step); returns this step's sample dicts."""
        step = self.step if step is None else step
        if step == self._sampled_step:
            return [sample for sample in self.samples if sample["step"] == step]
        texts = self.model.generate(self.prompts, max_new_tokens=self.max_new_tokens, seed=self.seed,
                                    **self.generate_kwargs)
        new = [{"step": step, "prompt": prompt, "text": text} for prompt, text in zip(self.prompts, texts)]
        self.samples.extend(new)
        self._sampled_step = step
        if self.path is not None:
            _append(self.path, format_samples(new), step)
        if self.log_dir is not None:
            self._write_summary(new)
        return new

    def _write_summary(self, samples):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "samples"))
        # Markdown: an indented block keeps the text's line breaks and shows it as written.
        rows = ["\n".join("    " + line for line in sample["text"].splitlines() or [""]) for sample in samples]
        with self._writer.as_default():
            write_text("samples", rows, step=samples[0]["step"])
        self._writer.flush()


def format_samples(samples):
    """The text block of samples of one step, as `samples.txt` holds it."""
    lines = [f"=== step {samples[0]['step']} ==="]
    for sample in samples:
        lines.append(f"--- prompt: {sample['prompt']!r}")
        lines.append(sample["text"])
    return "\n".join(lines) + "\n\n"


def _append(path, text, step):
    """Appends the block of samples of `step`, after dropping the blocks of this step and later ones: a run resumed
    from an earlier checkpoint samples those steps again (the same texts), and they were written twice."""
    previous = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            previous = file.read()
        later = [match.start() for match in _BLOCK_HEADER.finditer(previous) if int(match.group(1)) >= step]
        previous = previous[: later[0]] if later else previous
    atomic_write_text(path, previous + text)


_BLOCK_HEADER = re.compile(r"^=== step (\d+) ===$", re.MULTILINE)
