"""Where the time goes: the measurements behind issue #19's goals that a CPU does not let tfllm reach.

Each goal of issue #19 compares tfllm with a reference. When tfllm falls short, the question is whether the rest of
the gap is tfllm's to close. This script measures, in one process, on the goals' shapes:

1. Training (the Transformer LM of transformer_training.py, float32 and mixed_bfloat16): the seconds of a step of
   tfllm (plain graph, what `compile()` picks), of KerasHub's GPT-2 twin (plain graph and XLA) and, in float32 when
   PyTorch is installed, of the eager PyTorch twin; in float32 the op time by kind of tfllm's and KerasHub's graph
   steps from TensorFlow's profiler (`op_profile.py`); and the step's matrix products alone (in bfloat16 for
   mixed_bfloat16): every product of the forward and backward passes at the
   model's shapes (for a forward product A @ B, also dC @ B^T and A^T @ dC), nothing else, one after another, with
   TensorFlow's kernels (in the plain graph and under XLA; the faster counts; the logits product in slices of the
   vocabulary, as tfllm computes it, faster than one product on CPUs) and with PyTorch's. No implementation
   of this model with TensorFlow's kernels can take less than the products alone, so the best KerasHub step over
   them bounds what any such implementation can lead KerasHub by, PyTorch's step over them says whether any can
   match PyTorch, and the model FLOPs utilization (MFU) they reach bounds the MFU of `tfllm train`'s step (same
   definition and peak as models.py: `machine.py`). A causal attention kernel may skip the hidden half of the
   attention products, so the bound is also given for the products without attention's. The MFU goal is the default
   `tfllm train` step's (its batch and context, 16 x 128): that step and its products alone are timed too.
2. Transformer generation (transformer_generation.py's model, greedy and top-p, batch 1 and 8): milliseconds per new
   token of tfllm's `generate` (XLA) and KerasHub's (XLA and plain graph, the faster counts), and of three stripped
   greedy decode loops compiled by XLA, each doing more of a step: the weight products alone (per token, each
   block's QKV, output and MLP products and the logits, with the argmax and the embedding lookup that chain one
   token to the next); those products with attention over a key/value cache; and the model's whole math, GPT-2's
   (those, the position embedding, the layer norms, the biases, the tanh GELU and the residual sums, written
   plainly and left to XLA to fuse). Any greedy decoder of this model multiplies every weight for every token:
   KerasHub's time per token over the products-alone loop's bounds tfllm's lead; over the loop with attention, it
   bounds the lead of any decoder that attends over a cache of fixed length (what XLA's static shapes ask for, and
   what both libraries do); over the loop of the whole math, the lead of any XLA decoder of this network that
   fuses no more than XLA does by itself. A top-p decoder does all that and samples too, so KerasHub's top-p time
   over each loop bounds its lead. tfllm's time over the whole math's is what tfllm's own decoding adds.
   tfllm's top-p sampler alone (its draws in one XLA loop, at the same batch and vocabulary) is timed too: its part
   of tfllm's top-p step.
3. RNN generation (generation.py's LSTM and SimpleRNN, batch 8, greedy): the per-token loop (generation.py's
   baseline: one XLA step per call from Python), `generate` under XLA, and the weight products alone (each layer's
   kernel and recurrent kernel, the logits, the argmax and lookup) in one XLA loop. The per-token loop over the
   products alone bounds what any fused decoder can gain on it.

Times are medians of alternating rounds. Results go to benchmarks/results/where_time_goes[_quick].{json,md}.

    python benchmarks/where_time_goes.py             # ~6 minutes on 2 CPU cores
    python benchmarks/where_time_goes.py --quick     # fewer rounds and tokens: a smoke run
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import generation  # noqa: E402
import transformer_generation  # noqa: E402
from gpt2_generation import reference_run, tfllm_model  # noqa: E402
from machine import RoundPeaks, load_now, machine_facts, machine_line  # noqa: E402
from models import seconds_per_step  # noqa: E402
from op_profile import KINDS, by_kind, op_seconds  # noqa: E402
from summary import record, write_results  # noqa: E402
from tfllm.generation import TopPSampler  # noqa: E402
from tfllm.layers.token_embedding import logit_slices  # noqa: E402
from tfllm.training import RunConfig  # noqa: E402
from transformer_training import (  # noqa: E402
    MATMUL_DTYPE, PRECISIONS, TORCH_MISSING, VOCAB, compile_like, keras_hub_lm, model_config, random_batches, tfllm_lm,
    torch_contender)

if TORCH_MISSING is None:
    import torch  # noqa: E402

BATCH, SEQUENCE = 16, 256  # transformer_training.py's shapes (issue #19's)
TRAINING_GOAL, TORCH_GOAL, MFU_GOAL = 1.25, 1.0, 0.70
TRANSFORMER_GENERATION_GOAL, RNN_GENERATION_GOAL = 5.0, 5.0


def median_rounds(runs, rounds, peaks=None):
    """`{name: median seconds}` of `runs` (`{name: run() -> seconds or None}`), warmed up, in alternating rounds; a
    run returning None is timed from outside. The matmul `peaks` (`RoundPeaks`), if given, are measured in every
    round."""
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            measured = run()
            times[name].append(measured if measured is not None else time.perf_counter() - start)
        if peaks is not None:
            peaks.measure()
    return {name: statistics.median(values) for name, values in times.items()}


def result_dropped(run, *arguments):
    """`run(*arguments)` as a callable of no arguments returning None, for `median_rounds` to time from outside."""
    def call():
        run(*arguments)

    return call


# 1. Training


def product_shapes(config, batch, sequence, attention=True):
    """The forward matrix products of a training step of `config`'s Transformer: `(count, m, k, n)` for `count`
    products A (m, k) @ B (k, n); with `attention` False, without the products of the attention scores and mixing
    (the ones a causal attention kernel may halve by skipping hidden keys)."""
    tokens, width, heads = batch * sequence, config.hidden_dim, config.num_heads
    shapes = []
    for _ in range(config.num_layers):
        shapes += [(1, tokens, width, 3 * width), (1, tokens, width, width),  # QKV, attention output
                   (1, tokens, width, config.intermediate_dim), (1, tokens, config.intermediate_dim, width)]  # MLP
        if attention:
            shapes += [(batch * heads, sequence, width // heads, sequence),  # scores Q K^T
                       (batch * heads, sequence, sequence, width // heads)]  # mixing P V
    return shapes + [(1, tokens, width, VOCAB)]  # tied logits


def slice_sizes(m, n):
    """The widths of the slices that `tensorflow_products` computes a product's (m, n) result in: the tied logits in
    slices of the vocabulary as tfllm's `TokenEmbedding` does in a training step (faster on CPUs), any other product
    whole."""
    return logit_slices(n, rows=m) if n == VOCAB else [n]


def product_flops(shapes):
    """Forward and both backward products (dA = dC B^T, dB = A^T dC) of each shape."""
    return sum(3 * 2 * count * m * k * n for count, m, k, n in shapes)


def tensorflow_products(shapes, jit_compile, dtype="float32"):
    """`run()`: every product of `shapes`, forward and both backward, one after another in one `tf.function`, in the
    plain graph or compiled by XLA, on operands of `dtype`."""
    operands = [(*(tf.cast(tf.random.normal(shape), dtype) for shape in ([count, m, k], [count, k, n], [count, m, n])),
                 slice_sizes(m, n)) for count, m, k, n in shapes]

    @tf.function(jit_compile=jit_compile)
    def run():
        # One product after another, each on all cores as the step's own products run (independent products left
        # side by side would fight over the cores); a corner of each result kept, so none is pruned.
        corners, previous = [], []
        for a, b, grad_c, sizes in operands:
            for b_slice, grad_c_slice in zip(tf.split(b, sizes, axis=2), tf.split(grad_c, sizes, axis=2)):
                with tf.control_dependencies(previous):
                    products = [tf.matmul(a, b_slice), tf.matmul(grad_c_slice, b_slice, transpose_b=True),
                                tf.matmul(a, grad_c_slice, transpose_a=True)]
                previous = products
                corners += [product[0, 0, 0] for product in products]
        return tf.add_n(corners)

    return result_dropped(lambda: run().numpy())


def torch_products(shapes):
    """`run() -> seconds`: the products of `tensorflow_products` with PyTorch's kernels (eager, all cores), timed on
    a second pass, as `torch_contender` times only the steps after its first."""
    operands = [(torch.randn(count, m, k), torch.randn(count, k, n), torch.randn(count, m, n))
                for count, m, k, n in shapes]

    def one_pass():
        for a, b, grad_c in operands:
            for product in (a @ b, grad_c @ b.transpose(1, 2), a.transpose(1, 2) @ grad_c):
                product[0, 0, 0].item()  # waits for the product

    def run():
        one_pass()
        start = time.perf_counter()
        one_pass()
        return time.perf_counter() - start

    return run


def training_profile(rounds, steps, precision="float32"):
    """Seconds per step of tfllm (plain graph, what `compile()` picks in both precisions), KerasHub (graph and XLA),
    and the products alone (in the precision's matmul dtype); in float32 also PyTorch eager when installed and the
    op time by kind of tfllm's and KerasHub's graph steps."""
    config = model_config(SEQUENCE)
    keras.config.set_dtype_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        ours = tfllm_lm(config, jit_compile=False)
        theirs = {mode: compile_like(keras_hub_lm(config), ours, jit_compile=mode == "XLA")
                  for mode in ("graph", "XLA")}
    finally:
        keras.config.set_dtype_policy("float32")
    if ours.count_params() != theirs["graph"].count_params():
        raise ValueError(f"tfllm has {ours.count_params():,} parameters, KerasHub {theirs['graph'].count_params():,}")
    batches = tf.data.Dataset.from_tensors(random_batches(BATCH, SEQUENCE)).repeat()
    shapes = {"all": product_shapes(config, BATCH, SEQUENCE),
              "wide": product_shapes(config, BATCH, SEQUENCE, attention=False)}
    runs = {"tfllm, graph": lambda: seconds_per_step(ours, batches, steps),
            **{f"KerasHub, {mode}": (lambda model: lambda: seconds_per_step(model, batches, steps))(model)
               for mode, model in theirs.items()}}
    for products, name in (("all", "products alone"), ("wide", "wide products alone")):
        for jit_compile, mode in ((False, "graph"), (True, "XLA")):
            runs[f"{name}, TensorFlow {mode}"] = tensorflow_products(shapes[products], jit_compile,
                                                                     MATMUL_DTYPE[precision])
    float32 = precision == "float32"
    if float32 and TORCH_MISSING is None:
        pytorch = torch_contender(config, "float32", *random_batches(BATCH, SEQUENCE))
        runs["PyTorch eager"] = lambda: pytorch.seconds(steps)
        runs["products alone, PyTorch"] = torch_products(shapes["all"])
    peaks = RoundPeaks([MATMUL_DTYPE[precision]])
    seconds = median_rounds(runs, rounds, peaks)
    kinds = {name: {kind: value / steps for kind, value in by_kind(op_seconds(
        lambda: model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0))).items()}
        for name, model in (("tfllm", ours), ("KerasHub", theirs["graph"]))} if float32 else None
    return {"precision": precision, "seconds": seconds, "op_seconds": kinds, "parameters": ours.count_params(),
            "matmul_peak": peaks.median()[MATMUL_DTYPE[precision]],
            "flops_per_token": ours.training_flops_per_token(SEQUENCE),
            "product_flops": {name: product_flops(value) for name, value in shapes.items()},
            "torch": (TORCH_MISSING or torch.__version__) if float32 else "not timed in mixed_bfloat16"}


def training_lines(result, peak):
    """The report of `training_profile`'s `result`, and its figures recorded (in mixed_bfloat16 under names that say
    so); `peak` is the matmul peak of the precision's matmul dtype."""
    seconds, kinds, tokens, precision = result["seconds"], result["op_seconds"], BATCH * SEQUENCE, result["precision"]
    model_flops = result["flops_per_token"] * tokens
    lines = [f"Training step, batch {BATCH} x {SEQUENCE} tokens, {result['parameters']:,} parameters, {precision} "
             f"(PyTorch: {result['torch']}):", "", "| implementation | s/step | MFU |", "|---|---:|---:|"]
    lines += [f"| {name} | {value:.3f} | {'' if name.startswith('wide') else f'{model_flops / value / peak:.1%}'} |"
              for name, value in seconds.items()]
    if kinds is not None:
        lines += ["", "Op time per step by kind, s (TensorFlow's profiler; plain graph):", "",
                  "| kind | tfllm | KerasHub |", "|---|---:|---:|"]
        lines += [f"| {kind} | {kinds['tfllm'][kind]:.3f} | {kinds['KerasHub'][kind]:.3f} |" for kind in KINDS]
        lines.append(f"| all | {sum(kinds['tfllm'].values()):.3f} | {sum(kinds['KerasHub'].values()):.3f} |")
    section = "training" if precision == "float32" else f"training {precision}"

    def fastest(prefix):
        return min(value for name, value in seconds.items() if name.startswith(prefix))

    keras_hub, ours = fastest("KerasHub, "), seconds["tfllm, graph"]
    products, wide = fastest("products alone, TensorFlow"), fastest("wide products alone, TensorFlow")
    lead, bound, wide_bound = keras_hub / ours, keras_hub / products, keras_hub / wide
    mfu, mfu_bound = model_flops / ours / peak, model_flops / products / peak
    lines += ["", "(op time sums the ops' durations over the executor's threads: ops running side by side count "
              "twice; products alone: the faster of the plain graph and XLA)" if kinds is not None else
              "(products alone: the faster of the plain graph and XLA)", "",
              f"tfllm / best KerasHub tokens/s = {lead:.2f}x (goal >= {TRAINING_GOAL:g}x); bounds, best KerasHub "
              f"step / TensorFlow's products alone = {bound:.2f}x, / the products but attention's = "
              f"{wide_bound:.2f}x; {TRAINING_GOAL:g}x asks for a step of at most {keras_hub / TRAINING_GOAL:.3f} s, "
              f"{keras_hub / TRAINING_GOAL / products:.2f}x the products alone",
              f"MFU of tfllm's step {mfu:.1%} (goal >= {MFU_GOAL:.0%}); bound, the products alone {mfu_bound:.1%}"]
    record("where_time_goes", f"{section}: tfllm / best KerasHub tokens/s", lead, goal=TRAINING_GOAL)
    record("where_time_goes", f"{section}: bound, best KerasHub step / TensorFlow's products alone", bound)
    record("where_time_goes", f"{section}: bound, best KerasHub step / the products but attention's", wide_bound)
    record("where_time_goes", f"{section}: MFU of tfllm's step", mfu, unit="MFU", goal=MFU_GOAL)
    record("where_time_goes", f"{section}: MFU bound, the matrix products alone", mfu_bound, unit="MFU")
    if "PyTorch eager" in seconds:
        torch_lead = seconds["PyTorch eager"] / ours
        torch_bound = seconds["PyTorch eager"] / products
        kernels = products / seconds["products alone, PyTorch"]
        lines.append(f"tfllm / PyTorch eager tokens/s = {torch_lead:.2f}x (goal >= {TORCH_GOAL:g}x); bound, "
                     f"PyTorch's step / TensorFlow's products alone = {torch_bound:.2f}x; the same products take "
                     f"{kernels:.2f}x as long with TensorFlow's kernels as with PyTorch's")
        record("where_time_goes", "training: tfllm / PyTorch eager tokens/s", torch_lead, goal=TORCH_GOAL)
        record("where_time_goes", "training: bound, PyTorch step / TensorFlow's products alone", torch_bound)
        record("where_time_goes", "training: products alone, TensorFlow's kernels / PyTorch's", kernels)
    return lines


def default_step_profile(rounds, steps):
    """The MFU of `tfllm train`'s default step (the Transformer of `RunConfig.default("transformer")` at its batch
    and sequence length, float32, `compile()`'s defaults) and its bound, the step's products alone at those shapes:
    `{"seconds": {name: s}, "flops_per_token", "product_flops", "matmul_peak", "batch", "sequence"}`."""
    train = RunConfig.default("transformer").train
    batch, sequence = train.batch_size, train.sequence_length
    config = model_config(sequence)
    keras.utils.set_random_seed(0)
    ours = tfllm_lm(config, jit_compile="auto")
    batches = tf.data.Dataset.from_tensors(random_batches(batch, sequence)).repeat()
    shapes = product_shapes(config, batch, sequence)
    runs = {"tfllm, compile() defaults": lambda: seconds_per_step(ours, batches, steps),
            **{f"products alone, TensorFlow {mode}": tensorflow_products(shapes, jit_compile)
               for mode, jit_compile in (("graph", False), ("XLA", True))}}
    peaks = RoundPeaks(["float32"])
    seconds = median_rounds(runs, rounds, peaks)
    return {"seconds": seconds, "flops_per_token": ours.training_flops_per_token(sequence),
            "product_flops": product_flops(shapes), "matmul_peak": peaks.median()["float32"], "batch": batch,
            "sequence": sequence}


def default_step_lines(result):
    """The report of `default_step_profile`'s `result`, its MFU and bound recorded."""
    seconds, peak = result["seconds"], result["matmul_peak"]
    model_flops = result["flops_per_token"] * result["batch"] * result["sequence"]
    ours = seconds["tfllm, compile() defaults"]
    products = min(value for name, value in seconds.items() if name.startswith("products alone"))
    mfu, mfu_bound = model_flops / ours / peak, model_flops / products / peak
    lines = [f"`tfllm train`'s default step, batch {result['batch']} x {result['sequence']} tokens, float32, matmul "
             f"peak (median of its rounds) {peak / 1e9:.0f} GFLOP/s:", "", "| implementation | s/step | MFU |",
             "|---|---:|---:|"]
    lines += [f"| {name} | {value:.3f} | {model_flops / value / peak:.1%} |" for name, value in seconds.items()]
    lines += ["", f"MFU of the default step {mfu:.1%} (goal >= {MFU_GOAL:.0%}); bound, its products alone (the "
              f"faster of the plain graph and XLA) {mfu_bound:.1%}"]
    record("where_time_goes", "default tfllm train step: MFU", mfu, unit="MFU", goal=MFU_GOAL)
    record("where_time_goes", "default tfllm train step: MFU bound, the matrix products alone", mfu_bound, unit="MFU")
    return lines


# 2. Transformer generation


def compiled_loop(step, state, steps, jit_compile=True):
    """`run()`: `steps` calls of `step(state, index) -> state` in one while loop, compiled by XLA or (`jit_compile`
    False) in the plain graph."""
    @tf.function(jit_compile=jit_compile)
    def loop(state):
        return tf.while_loop(lambda index, _: index < steps, lambda index, state: (index + 1, step(state, index)),
                             (tf.constant(0), state))[1]

    return result_dropped(lambda: tf.nest.map_structure(lambda tensor: tensor.numpy(), loop(state)))


PRODUCTS_ALONE_XLA, PRODUCTS_ALONE_GRAPH = "weight products alone, XLA", "weight products alone, graph"
WITH_ATTENTION = "products + attention over the cache, XLA"
WHOLE_MODEL = "the model's whole math, XLA"


def transformer_decoders(shape, batch, steps, prompt):
    """The stripped decode loops of `shape` (`GPT2Backbone` arguments): `{name: run()}` of `steps` tokens each.

    Three loops, each doing more of a decode step: the weight products alone; with attention over a key/value cache;
    and the model's whole math, GPT-2's: the products and attention with the position embedding, the layer norms,
    the biases, the tanh GELU and the residual sums, written as plainly as the model reads (`_gpt2_block`)."""
    width, inner = shape["hidden_dim"], shape["intermediate_dim"]
    length = prompt + steps
    table = tf.random.normal([shape["vocabulary_size"], width])
    positions = tf.random.normal([length, width])
    blocks = [{"qkv": tf.random.normal([width, 3 * width]), "output": tf.random.normal([width, width]),
               "inner": tf.random.normal([width, inner]), "outer": tf.random.normal([inner, width]),
               "qkv_bias": tf.random.normal([3 * width]), "output_bias": tf.random.normal([width]),
               "inner_bias": tf.random.normal([inner]), "outer_bias": tf.random.normal([width]),
               "norms": [(tf.random.normal([width]), tf.random.normal([width])) for _ in range(2)]}
              for _ in range(shape["num_layers"])]
    final_norm = (tf.random.normal([width]), tf.random.normal([width]))
    attention = _cached_attention(batch, shape["num_heads"], width, prompt, length)

    def step(parts):
        def one_token(state, index):
            token, caches = state
            hidden = tf.gather(table, token)  # (B, D)
            if parts == "whole":
                hidden += positions[prompt + index]
            new_caches = []
            for block, cache in zip(blocks, caches):
                if parts == "whole":
                    hidden, cache = _gpt2_block(hidden, block, cache, index, attention)
                else:
                    query_key_value = hidden @ block["qkv"]  # (B, 3D)
                    mixed = query_key_value[:, :width]
                    if parts == "attention":
                        mixed, cache = attention(query_key_value, cache, index)
                    hidden = hidden + mixed @ block["output"]
                    hidden = hidden + (hidden @ block["inner"]) @ block["outer"]  # (B, D)
                new_caches.append(cache)
            if parts == "whole":
                hidden = _layer_norm(hidden, *final_norm)
            logits = tf.matmul(hidden, table, transpose_b=True)  # (B, V)
            return tf.argmax(logits, axis=-1, output_type=tf.int32), new_caches

        return one_token

    depth = width // shape["num_heads"]
    caches = [(tf.zeros([batch * shape["num_heads"], length, depth]),) * 2 for _ in blocks]
    start = (tf.zeros([batch], tf.int32), caches)
    return {PRODUCTS_ALONE_XLA: compiled_loop(step("products"), start, steps),
            PRODUCTS_ALONE_GRAPH: compiled_loop(step("products"), start, steps, jit_compile=False),
            WITH_ATTENTION: compiled_loop(step("attention"), start, steps),
            WHOLE_MODEL: compiled_loop(step("whole"), start, steps)}


def _cached_attention(batch, heads, width, prompt, length):
    """`attend(query_key_value, cache, index)`: one token's attention over a key/value cache of `length` slots,
    (B, 3D) -> the mixed heads (B, D) and the cache with the token's key and value written at `prompt + index`."""
    depth = width // heads

    def attend(query_key_value, cache, index):
        # A row per sequence and head, keys and values apart, as tfllm's cache: the layout XLA reads in place
        # (CausalSelfAttention's docstring).
        query, key, value = (tf.reshape(part, [batch * heads, 1, depth])
                             for part in tf.split(query_key_value, 3, axis=-1))
        keys, values = cache
        keys = keras.ops.slice_update(keys, [0, prompt + index, 0], key)  # (B H, S, Dh)
        values = keras.ops.slice_update(values, [0, prompt + index, 0], value)
        scores = tf.einsum("ntk,nsk->nts", query, keys)  # (B H, 1, S)
        visible = tf.range(length) <= prompt + index
        weights = tf.nn.softmax(tf.where(visible, scores, -1e9), axis=-1)
        return tf.reshape(tf.einsum("nts,nsk->ntk", weights, values), [batch, width]), (keys, values)

    return attend


def _layer_norm(x, gamma, beta, epsilon=1e-5):
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)  # (B, 1) each
    return (x - mean) * tf.math.rsqrt(variance + epsilon) * gamma + beta


def _gpt2_block(hidden, block, cache, index, attention):
    """One pre-layer-norm GPT-2 block for one token, (B, D) -> (B, D), and its cache."""
    (first_gamma, first_beta), (second_gamma, second_beta) = block["norms"]
    query_key_value = _layer_norm(hidden, first_gamma, first_beta) @ block["qkv"] + block["qkv_bias"]  # (B, 3D)
    mixed, cache = attention(query_key_value, cache, index)
    hidden = hidden + mixed @ block["output"] + block["output_bias"]
    inner = _layer_norm(hidden, second_gamma, second_beta) @ block["inner"] + block["inner_bias"]  # (B, I)
    return hidden + tf.nn.gelu(inner, approximate=True) @ block["outer"] + block["outer_bias"], cache


SAMPLER_ALONE = "tfllm's top-p sampler alone, XLA"


def top_p_sampler_alone(vocabulary_size, batch, steps):
    """`run()`: `steps` draws of tfllm's top-p sampler (p = transformer_generation.TOP_P, as its `generate` row) in
    one XLA-compiled loop, each from logits (batch, vocabulary_size) moved by the token drawn before, so that no draw
    can be hoisted out of the loop: the sampler's part of a top-p decode step."""
    sampler = TopPSampler(transformer_generation.TOP_P)
    logits = tf.random.normal([batch, vocabulary_size], seed=0)  # (B, V)

    def one_token(token, index):
        moved = logits + tf.cast(token, tf.float32)[:, None] * 1e-6  # (B, V)
        return sampler(moved, tf.stack([0, index]))  # (B,)

    return compiled_loop(one_token, tf.zeros([batch], tf.int32), steps)


def transformer_generation_profile(rounds, new_tokens, batch_sizes, prompt=32):
    shape = transformer_generation.backbone_shape()
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(**shape, dropout=0.0)
    with tempfile.TemporaryDirectory() as preset:
        model = tfllm_model(backbone, preset)
    # KerasHub in both modes: its top-p sampler is faster in the plain graph than under XLA.
    references = {(sampler, mode): reference_run(
        transformer_generation.keras_hub_reference(backbone, sampler, mode == "XLA"), new_tokens)
        for sampler in transformer_generation.SAMPLERS for mode in ("XLA", "graph")}
    ours = {sampler: transformer_generation.tfllm_run(model, new_tokens, sampler, True)
            for sampler in transformer_generation.SAMPLERS}
    milliseconds = {}
    for batch in batch_sizes:
        prompts = np.random.default_rng(0).integers(3, shape["vocabulary_size"], (batch, prompt), dtype=np.int32)
        runs = {}
        for sampler in transformer_generation.SAMPLERS:
            runs[f"tfllm generate{generate_suffix(sampler)}, XLA"] = result_dropped(ours[sampler], prompts)
            for mode in ("XLA", "graph"):
                runs[f"KerasHub generate{generate_suffix(sampler)}, {mode}"] = result_dropped(
                    references[sampler, mode], prompts)
        runs.update(transformer_decoders(shape, batch, new_tokens, prompt))
        runs[SAMPLER_ALONE] = top_p_sampler_alone(shape["vocabulary_size"], batch, new_tokens)
        milliseconds[batch] = {name: 1000 * value / new_tokens for name, value in median_rounds(runs, rounds).items()}
    return milliseconds


def generate_suffix(sampler):
    """How a `generate` row's name says its sampler: nothing for greedy (the rows of earlier runs), " top_p"."""
    return "" if sampler == "greedy" else f" {sampler}"


def transformer_generation_lines(milliseconds, new_tokens):
    names = list(next(iter(milliseconds.values())))
    lines = [f"Transformer generation (transformer_generation.py's model), greedy and top-p "
             f"(p = {transformer_generation.TOP_P}), {new_tokens} new tokens, ms per new token (whole runs, prefill "
             "included, for generate):", "",
             "| implementation | " + " | ".join(f"batch {batch}" for batch in milliseconds) + " |",
             "|---|" + "---:|" * len(milliseconds)]
    lines += [f"| {name} | " + " | ".join(f"{values[name]:.3f}" for values in milliseconds.values()) + " |"
              for name in names]
    lines.append("")
    # A top-p decoder does all that a greedy one does and samples as well: the stripped greedy loops bound it too.
    for batch, values in milliseconds.items():
        for sampler in transformer_generation.SAMPLERS:
            keras_hub = min(values[f"KerasHub generate{generate_suffix(sampler)}, {mode}"] for mode in ("XLA", "graph"))
            ours = values[f"tfllm generate{generate_suffix(sampler)}, XLA"]
            lead = keras_hub / ours
            bound = keras_hub / products_alone(values)
            with_attention, whole = keras_hub / values[WITH_ATTENTION], keras_hub / values[WHOLE_MODEL]
            lines.append(f"batch {batch}, {sampler}: tfllm / best KerasHub = {lead:.2f}x (goal >= "
                         f"{TRANSFORMER_GENERATION_GOAL:g}x); bounds, best KerasHub / the weight products alone = "
                         f"{bound:.2f}x, / the products and attention over the cache = {with_attention:.2f}x, / the "
                         f"model's whole math = {whole:.2f}x; tfllm takes {ours / values[WHOLE_MODEL]:.2f}x as long "
                         "as the model's whole math")
            name = f"transformer {sampler} batch {batch}"
            record("where_time_goes", f"{name}: tfllm / KerasHub", lead, goal=TRANSFORMER_GENERATION_GOAL)
            record("where_time_goes", f"{name}: bound, KerasHub / weight products alone", bound)
            record("where_time_goes", f"{name}: bound, KerasHub / products and attention", with_attention)
            record("where_time_goes", f"{name}: bound, KerasHub / the model's whole math", whole)
        # The sampler's part of tfllm's top-p step: alone, and as the top-p generate's time over the greedy one's.
        alone, top_p = values[SAMPLER_ALONE], values["tfllm generate top_p, XLA"]
        lines.append(f"batch {batch}, tfllm's top-p sampler alone: {alone:.3f} ms per new token, {alone / top_p:.0%} "
                     f"of tfllm's top-p generate, which takes {top_p - values['tfllm generate, XLA']:.3f} ms per new "
                     "token more than its greedy one")
        record("where_time_goes", f"transformer top_p batch {batch}: tfllm's sampler alone, us per new token",
               1000 * alone, unit="us")
    return lines


def products_alone(milliseconds):
    """The faster of the two products-alone loops, the floor of a decode step."""
    return min(milliseconds[PRODUCTS_ALONE_XLA], milliseconds[PRODUCTS_ALONE_GRAPH])


# 3. RNN generation


def rnn_products_alone(model, batch, steps):
    """The weight products of `steps` tokens of `model` (an RNN LM with tied logits) in one loop, under XLA and in
    the plain graph: `{name: run()}`."""
    table = model.embedding.embeddings  # (V, E), also the logits' kernel
    cells = [(weights[0], weights[1]) for weights in (layer.weights for layer in model.recurrent_layers)]

    def one_token(state, index):
        token, hiddens = state
        inputs = tf.gather(table, token)  # (B, E)
        new_hiddens = []
        for (kernel, recurrent_kernel), hidden in zip(cells, hiddens):
            gates = inputs @ kernel + hidden @ recurrent_kernel  # (B, 4H) for an LSTM, (B, H) for a SimpleRNN
            inputs = gates[:, : hidden.shape[-1]]
            new_hiddens.append(inputs)
        logits = tf.matmul(inputs, table, transpose_b=True)  # (B, V)
        return tf.argmax(logits, axis=-1, output_type=tf.int32), new_hiddens

    start = (tf.zeros([batch], tf.int32), [tf.zeros([batch, kernel.shape[0]]) for kernel, _ in cells])
    return {PRODUCTS_ALONE_XLA: compiled_loop(one_token, start, steps),
            PRODUCTS_ALONE_GRAPH: compiled_loop(one_token, start, steps, jit_compile=False)}


def rnn_generation_profile(rounds, new_tokens):
    generation.NEW = new_tokens  # generation.py's loops make that many tokens
    milliseconds = {}
    for architecture in ("lstm", "rnn"):
        model, _ = generation.default_model(architecture)
        ids = generation.prompts(model.vocab_size)
        cached = generation.cached(model, {}, True)
        per_token = generation.per_token_calls(model, {}, True)
        runs = {"per-token loop, XLA step": result_dropped(per_token, ids),
                "generate, XLA": result_dropped(cached, ids),
                **rnn_products_alone(model, generation.BATCH, generation.NEW)}
        milliseconds[architecture] = {name: 1000 * value / generation.NEW
                                      for name, value in median_rounds(runs, rounds).items()}
    return milliseconds


def rnn_generation_lines(milliseconds):
    lines = [f"RNN generation (generation.py's models), greedy, batch {generation.BATCH}, {generation.NEW} new tokens, "
             "ms per new token:", "", "| implementation | " + " | ".join(milliseconds) + " |",
             "|---|" + "---:|" * len(milliseconds)]
    for name in next(iter(milliseconds.values())):
        lines.append(f"| {name} | " + " | ".join(f"{values[name]:.3f}" for values in milliseconds.values()) + " |")
    lines.append("")
    for architecture, values in milliseconds.items():
        gain = values["per-token loop, XLA step"] / values["generate, XLA"]
        bound = values["per-token loop, XLA step"] / products_alone(values)
        lines.append(f"{architecture}: generate / per-token loop = {gain:.2f}x (goal >= {RNN_GENERATION_GOAL:g}x); "
                     f"bound, per-token loop / the weight products alone = {bound:.2f}x")
        record("where_time_goes", f"{architecture} greedy: generate / per-token loop", gain, goal=RNN_GENERATION_GOAL)
        record("where_time_goes", f"{architecture} greedy: bound, per-token loop / weight products alone", bound)
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 training step, 32 new tokens")
    args = parser.parse_args()
    rounds, steps, new_tokens = (2, 1, 32) if args.quick else (args.rounds, 2, 224)

    if TORCH_MISSING is not None:
        print(f"PyTorch eager skipped: {TORCH_MISSING}")
    else:
        torch.set_num_threads(os.cpu_count())
    load_before = machine_line()
    training = {precision: training_profile(rounds, steps, precision) for precision in PRECISIONS}
    peaks = {precision: training[precision]["matmul_peak"] for precision in PRECISIONS}
    default_step = default_step_profile(rounds, steps)
    transformer = transformer_generation_profile(rounds, new_tokens, (1, 8))
    rnn = rnn_generation_profile(rounds, new_tokens)
    lines = [f"Where the time goes (`python benchmarks/where_time_goes.py{' --quick' if args.quick else ''}`); "
             f"median of {rounds} alternating rounds", "",
             f"machine: {load_before} before, {load_now()} after; matmul peak (median of the training rounds) "
             + ", ".join(f"{MATMUL_DTYPE[precision]} {peaks[precision] / 1e9:.0f} GFLOP/s" for precision in PRECISIONS),
             "", *(line for precision in PRECISIONS
                   for line in [*training_lines(training[precision], peaks[precision]), ""]),
             *default_step_lines(default_step), "",
             *transformer_generation_lines(transformer, new_tokens), "",
             *rnn_generation_lines(rnn)]
    print("\n".join(lines), flush=True)
    write_results("where_time_goes", args.quick, {**machine_facts(), "training": training["float32"],
                                                  "training_mixed_bfloat16": training["mixed_bfloat16"],
                                                  "default_step": default_step,
                                                  "transformer_generation_ms": transformer,
                                                  "rnn_generation_ms": rnn}, lines)


if __name__ == "__main__":
    main()
