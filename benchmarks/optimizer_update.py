"""One optimizer update of every weight: tfllm's `FusedAdamW` against Keras's `AdamW`, plain graph and XLA.

The update `compile()` gives by default (AdamW, weight decay 0.1 but on biases and norms, beta_2 0.95, global
clipnorm 1.0, a constant learning rate here), applied to a model's variables with fixed random gradients, each
optimizer in a `tf.function`, alternating in one process, the median of `--rounds` kept (each round the mean of
`--updates` updates). Keras's AdamW runs as a Keras train step runs it on a CPU (the plain graph, `jit_compile`
"auto"), and under XLA (`jit_compile=True`), where XLA fuses its element-wise ops as `FusedAdamW` does by hand;
`FusedAdamW` is compared with the faster of the two. Models: `tfllm train`'s default Transformer (4.2M parameters)
and a Transformer of GPT-2 small's sizes (124M parameters).

    python benchmarks/optimizer_update.py              # ~2 minutes on 2 CPU cores
    python benchmarks/optimizer_update.py --rounds 5
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfllm.models import FusedAdamW, TransformerLM  # noqa: E402
from tfllm.training import RunConfig  # noqa: E402
from summary import record  # noqa: E402

SETTINGS = dict(learning_rate=1e-3, weight_decay=0.1, beta_2=0.95, global_clipnorm=1.0)


def _model(name):
    if name == "default":
        config = RunConfig.default("transformer").model
        model = TransformerLM(4096, config.num_layers, config.num_heads, config.hidden_dim, config.intermediate_dim,
                              config.max_sequence_length)
    else:  # GPT-2 small: 12 blocks, 768 wide, 12 heads, 3072 in the feed-forward, 1024 positions, 50257 tokens
        model = TransformerLM(50257, 12, 12, 768, 3072, 1024)
    model(np.zeros((1, 2), np.int32))
    return model


def _updates(model):
    """Each optimizer's update as a compiled function of the gradients, on its own copy of the weights."""
    updates = {}
    for name, optimizer_class, jit_compile in (("Keras AdamW, plain graph", keras.optimizers.AdamW, False),
                                               ("Keras AdamW, XLA", keras.optimizers.AdamW, True),
                                               ("FusedAdamW", FusedAdamW, False)):
        variables = [keras.Variable(np.asarray(variable), name=variable.name) for variable in model.trainable_weights]
        optimizer = optimizer_class(**SETTINGS)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        optimizer.build(variables)
        updates[name] = _compiled_update(optimizer, variables, jit_compile)
    return updates


def _compiled_update(optimizer, variables, jit_compile):
    """`optimizer.apply(grads, variables)` in a `tf.function`, with the variables captured, not passed."""
    return tf.function(lambda grads: optimizer.apply(grads, variables), jit_compile=jit_compile)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median kept)")
    parser.add_argument("--updates", type=int, default=5, help="updates timed in each round")
    args = parser.parse_args()

    print(f"One AdamW update of every weight, ms (median of {args.rounds} alternating rounds of {args.updates}), "
          f"{os.cpu_count()} CPUs")
    print(f"{'model':<14} {'parameters':>11} {'Keras, graph':>13} {'Keras, XLA':>11} {'FusedAdamW':>11} "
          f"{'best Keras / fused':>19}")
    for model_name in ("default", "GPT-2 small"):
        model = _model(model_name)
        rng = np.random.default_rng(0)
        grads = [tf.constant(rng.normal(scale=1e-3, size=variable.shape).astype("float32"))
                 for variable in model.trainable_weights]
        updates = _updates(model)
        for update in updates.values():  # traced and compiled before any timing
            update(grads)
        milliseconds = {name: [] for name in updates}
        for round_index in range(args.rounds):
            order = list(updates) if round_index % 2 == 0 else list(reversed(updates))
            for name in order:
                start = time.perf_counter()
                for _ in range(args.updates):
                    updates[name](grads)
                milliseconds[name].append((time.perf_counter() - start) * 1000 / args.updates)
        graph, xla, fused = (statistics.median(milliseconds[name]) for name in updates)
        ratio = min(graph, xla) / fused
        print(f"{model_name:<14} {model.count_params() / 1e6:>10.1f}M {graph:>13.1f} {xla:>11.1f} {fused:>11.1f} "
              f"{ratio:>18.2f}x")
        record("optimizer_update", f"{model_name} Transformer: one update, best Keras AdamW / FusedAdamW", ratio)
        del model, updates


if __name__ == "__main__":
    main()
