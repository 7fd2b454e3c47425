"""The time `export_saved_model` takes to write a SavedModel: tfllm's writer against Keras's `ExportArchive`.

`tfllm.export.writer.write_signatures` traces each signature once; `keras.export.ExportArchive.write_out`, the
exporter a Keras user reaches for, traces each twice (once to list the variables an endpoint reads, once inside
`tf.saved_model.save`). Both are timed through `export_saved_model` on the same model, the archive swapped in for
the writer (tracked, endpoints added and written as Keras documents it), alternating in one process, the median of
`--rounds` kept. Models: `tfllm train`'s default sizes, untrained (the time is tracing, not weights): the Transformer
with the byte tokenizer under XLA and with a SentencePiece tokenizer (its tables tracked) in the plain graph, and
the LSTM under XLA.

    python benchmarks/export_writing.py              # ~2 minutes on 2 CPU cores
    python benchmarks/export_writing.py --rounds 5
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfllm.data import load_texts  # noqa: E402
from tfllm.export import saved_model  # noqa: E402
from tfllm.export.writer import write_signatures  # noqa: E402
from tfllm.training import RunConfig  # noqa: E402
from tfllm.training.builders import build_model, build_tokenizer  # noqa: E402
from tfllm.tokenizers import ByteTokenizer  # noqa: E402
from summary import record  # noqa: E402


def write_with_export_archive(path, model, functions, resources_of=(), constants=None, verbose=False):
    """`write_signatures`'s job done with `keras.export.ExportArchive`."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for owner in resources_of:
        archive.track(owner)
    for name, (function, input_signature) in functions.items():
        archive.add_endpoint(name, function, input_signature=input_signature)
    for name, value in (constants or {}).items():
        setattr(archive._tf_trackable, name, tf.Variable(value, trainable=False, dtype=tf.int32, name=name))
    archive.write_out(path, verbose=verbose)


WRITERS = {"ExportArchive": write_with_export_archive, "tfllm": write_signatures}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median kept)")
    args = parser.parse_args()

    sentencepiece = build_tokenizer(RunConfig.default().data, load_texts("kjv", split="train"))
    cases = {
        "Transformer, byte tokenizer, XLA": (_model("transformer", ByteTokenizer()), True),
        "Transformer, SentencePiece, plain graph": (_model("transformer", sentencepiece), False),
        "LSTM, byte tokenizer, XLA": (_model("lstm", ByteTokenizer()), True),
    }
    folder = tempfile.mkdtemp()
    seconds = {(case, writer): [] for case in cases for writer in WRITERS}
    for round_index in range(args.rounds):
        order = list(WRITERS) if round_index % 2 == 0 else list(reversed(WRITERS))
        for case, (model, jit_compile) in cases.items():
            for writer in order:
                saved_model.write_signatures = WRITERS[writer]
                path = os.path.join(folder, f"{round_index}-{len(os.listdir(folder))}")
                start = time.perf_counter()
                saved_model.export_saved_model(model, path, jit_compile=jit_compile)
                seconds[(case, writer)].append(time.perf_counter() - start)
    saved_model.write_signatures = write_signatures

    print(f"export_saved_model, seconds (median of {args.rounds} alternating rounds), {os.cpu_count()} CPUs")
    print(f"{'model':<42} {'ExportArchive':>13} {'tfllm':>7} {'ratio':>6}")
    for case in cases:
        archive, tfllm = (statistics.median(seconds[(case, writer)]) for writer in WRITERS)
        print(f"{case:<42} {archive:>13.2f} {tfllm:>7.2f} {archive / tfllm:>5.2f}x")
        record("export_writing", f"{case}: export time, ExportArchive / tfllm", archive / tfllm)


def _model(architecture, tokenizer):
    config = RunConfig.default(architecture)
    model = build_model(config.model, tokenizer)
    model(np.zeros((1, 2), np.int32))
    return model


if __name__ == "__main__":
    main()
