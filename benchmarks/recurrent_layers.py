"""Training throughput of tfllm's SimpleRNN and LSTM against Keras's own, as character language models.

Each model is an Embedding(256, 512) -> recurrent layer(512 units) -> Dense(256) trained with Adam on batches of
32 sequences of 128 tokens. The tfllm layer and its Keras twin are trained in the same process, alternating rounds
of a few steps (A, B, A, B, ...), and the median round is kept, so that a busy machine slows both alike.

    python benchmarks/recurrent_layers.py                 # both compile modes, the default settings
    python benchmarks/recurrent_layers.py --rounds 3 --steps 2 --modes graph   # a quick look

`default` is what `model.compile()` picks with `jit_compile="auto"`: XLA where there is an accelerator, the plain
graph on a CPU-only machine (the faster of the two here).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfllm.layers  # noqa: E402
from summary import record  # noqa: E402

VOCAB, WIDTH, SEQUENCE, BATCH = 256, 512, 128, 32
PAIRS = {
    "SimpleRNN": (tfllm.layers.SimpleRNN, keras.layers.SimpleRNN),
    "LSTM": (tfllm.layers.LSTM, keras.layers.LSTM),
}
MODES = {"graph": False, "xla": True}
GOALS = {"SimpleRNN": 1.2, "LSTM": 1.1}  # least acceptable tfllm / Keras training speed, each in the default mode


def char_language_model(recurrent_class, jit_compile, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((SEQUENCE,), batch_size=BATCH, dtype="int32"),
            keras.layers.Embedding(VOCAB, WIDTH),
            recurrent_class(WIDTH, return_sequences=True),
            keras.layers.Dense(VOCAB),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


def training_batches(seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, VOCAB, size=(BATCH, SEQUENCE + 1), dtype=np.int32)
    return tf.data.Dataset.from_tensors((tokens[:, :-1], tokens[:, 1:])).repeat()


def seconds_per_round(model, batches, steps):
    start = time.perf_counter()
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
    return time.perf_counter() - start


def compare(name, mode, rounds, steps):
    """Trains the tfllm layer and its Keras twin alternately; returns (tfllm tokens/s, Keras tokens/s)."""
    batches = training_batches()
    models = [char_language_model(layer_class, MODES[mode]) for layer_class in PAIRS[name]]
    for model in models:  # compile and warm up
        seconds_per_round(model, batches, 2)
    times = [[], []]
    for _ in range(rounds):
        for index, model in enumerate(models):
            times[index].append(seconds_per_round(model, batches, steps))
    tokens = steps * BATCH * SEQUENCE
    return tuple(tokens / statistics.median(t) for t in times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per model (median kept)")
    parser.add_argument("--steps", type=int, default=5, help="training steps per round")
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["graph", "xla"])
    parser.add_argument("--layers", nargs="+", choices=sorted(PAIRS), default=sorted(PAIRS, reverse=True))
    args = parser.parse_args()

    default_mode = "xla" if any(d.device_type != "CPU" for d in tf.config.list_physical_devices()) else "graph"
    print(f"char LM: vocab {VOCAB}, width {WIDTH}, sequence {SEQUENCE}, batch {BATCH}; default mode here: {default_mode}")
    print(f"{'layer':<10} {'mode':<6} {'tfllm tok/s':>12} {'keras tok/s':>12} {'ratio':>7}")
    results = {}
    for name in args.layers:
        for mode in args.modes:
            ours, theirs = compare(name, mode, args.rounds, args.steps)
            results[name, mode] = ours, theirs
            print(f"{name:<10} {mode:<6} {ours:>12.0f} {theirs:>12.0f} {ours / theirs:>6.2f}x", flush=True)
    for name in args.layers:
        if (name, default_mode) in results:
            ours, theirs = results[name, default_mode]
            best_keras = max(results[name, mode][1] for mode in args.modes)
            print(f"{name}: tfllm by default is {ours / theirs:.2f}x Keras by default, {ours / best_keras:.2f}x Keras's best mode")
            record("recurrent_layers", f"{name} training tokens/s: tfllm / Keras ({default_mode})", ours / theirs, goal=GOALS[name])


if __name__ == "__main__":
    main()
