"""Tiny corpora and configs shared by the training tests: runs of a few steps that finish in seconds on a CPU."""

import json
import os

import keras

from tfllm.data import load_texts
from tfllm.training import RunConfig
from tfllm.training.pretrain import build_run, open_run, train_run

TINY_MODELS = {
    "transformer": {"num_layers": 1, "hidden_dim": 16, "num_heads": 2, "intermediate_dim": 32,
                    "max_sequence_length": 32},
    "lstm": {"num_layers": 1, "hidden_dim": 16},
    "rnn": {"num_layers": 1, "hidden_dim": 16},
}
TINY_TRAIN = {
    "steps": 6,
    "batch_size": 4,
    "sequence_length": 16,
    "warmup_steps": 1,
    "eval_every": 3,
    "checkpoint_every": 2,
    "sample_every": None,
    "sample_tokens": 8,
    "validation_steps": 2,
}
PEAK_FLOPS = 1e11  # given, so that tests do not spend time measuring it


def write_kjv_verses(folder, chapters=3):
    """A JSONL corpus of the verses of the first KJV chapters: 80 documents, about 10 KB (70 train, 3 validation)."""
    verses = [line for chapter in load_texts("kjv")[:chapters] for line in chapter.decode("utf-8").splitlines()]
    return _write_jsonl(os.path.join(folder, "verses.jsonl"), verses)


def write_repetitive_corpus(folder, documents=200):
    """A JSONL corpus of one sentence repeated with a counter, which a tiny model learns in a few dozen steps."""
    texts = [f"{index % 7} the cat sat on the mat. the dog sat on the log." for index in range(documents)]
    return _write_jsonl(os.path.join(folder, "repetitive.jsonl"), [f"{text} {index}" for index, text in
                                                                   enumerate(texts)])


def tiny_config(corpus, architecture="transformer", model=None, data=None, **train):
    """A `RunConfig` of a tiny model of `architecture` on `corpus`, with `TINY_TRAIN` updated by `train`."""
    return RunConfig.default(
        architecture,
        model={**TINY_MODELS[architecture], **(model or {})},
        data={"corpus": os.fspath(corpus), "tokenizer": "byte", **(data or {})},
        train={**TINY_TRAIN, **train},
    )


def trained_only(config, run_dir):
    """A run through its training phase only (`open_run`, `build_run`, `train_run`), without the final samples and
    evaluation, for a reference run whose history and weights are all a test compares: the built run, whose
    `state.history` and `model` hold them."""
    opened = open_run(config, run_dir, verbose=0)
    built = build_run(opened)
    train_run(opened, built, peak_flops=PEAK_FLOPS)
    return built


def files_under(folder):
    """Every file under `folder`, as paths relative to it."""
    return sorted(
        os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder) for name in names
    )


def _write_jsonl(path, texts):
    with open(path, "w", encoding="utf-8") as file:
        for text in texts:
            file.write(json.dumps({"text": text}) + "\n")
    return path


class InterruptAfter(keras.callbacks.Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) after `steps` training batches."""

    def __init__(self, steps):
        super().__init__()
        self.steps, self.seen = steps, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.steps:
            raise KeyboardInterrupt
