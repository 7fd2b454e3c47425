"""Generation at GPT-2-small shapes: tfllm's `TransformerLM.generate` against KerasHub's `GPT2CausalLM.generate`,
on the same weights.

The model is GPT-2 small (12 layers, 768 wide, 12 heads, MLP 3,072, vocabulary 50,257, context 1,024, float32,
random weights: speed does not depend on them). A KerasHub `GPT2Backbone` is built and saved as a preset with
`save_to_preset` (with a stand-in byte-level BPE of 50,257 ids, since a preset holds a tokenizer), and tfllm's model
is `TransformerLM.from_pretrained(preset)`. Prompts of 32 random tokens are continued by 128 new tokens, greedily,
at batch 1 and batch 8, by:

- tfllm: `model.generate(ids, max_new_tokens=128, stop_token_ids=[])`: a prefill call, then the compiled decode loop
  on the key/value caches, under XLA (`jit_compile=True`, what "auto" picks for greedy decoding) and in the plain
  graph (`jit_compile=False`);
- KerasHub at its best: `GPT2CausalLM(backbone, preprocessor=None)` compiled with the greedy sampler, under XLA
  (`jit_compile=True`, its default) and in the plain graph, given ids and a padding mask exactly prompt + new tokens
  long (so its cache and loop are no longer than needed) and `stop_token_ids=None` (random weights may emit
  `<|endoftext|>`; neither side stops, both make exactly 128 tokens).

Every implementation is warmed up (traced and compiled) first; the timings alternate between them and the median of
`--rounds` is kept, so a busy machine slows all alike. New tokens per second are printed, with the ratio to the
faster KerasHub mode (the issue's goal: tfllm >= 3x KerasHub) and the share of new tokens equal to KerasHub's (greedy
on the same weights: 100% but for float rounding flipping a near tie, after which a row differs).

At batch 1 every new token reads every weight once (~0.5 GB in float32), so speed is bounded by memory bandwidth:
the read bandwidth is measured (a summed 1 GiB tensor, all cores) and each speed is shown as a share of that bound
(at batch 8 the same reads serve 8 tokens). Last, tfllm's decode step is timed alone and in parts, each part
compiled on its own: the blocks' six projections, attention over the caches (here the cache write copies the
cache, which the decode loop does in place: an upper bound), the logits, the greedy choice.

    python benchmarks/gpt2_generation.py                 # ~12 minutes on 2 busy CPU cores
    python benchmarks/gpt2_generation.py --rounds 5 --batch-sizes 1
    python benchmarks/gpt2_generation.py --quick         # tiny shapes, a smoke run (~1 minute)
"""

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfllm.models import TransformerLM  # noqa: E402
from machine import machine_line, read_bandwidth  # noqa: E402
from summary import record  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
GPT2_SMALL = {"vocabulary_size": 50257, "num_layers": 12, "num_heads": 12, "hidden_dim": 768,
              "intermediate_dim": 3072, "max_sequence_length": 1024}
TINY = {"vocabulary_size": 1000, "num_layers": 2, "num_heads": 2, "hidden_dim": 64, "intermediate_dim": 256,
        "max_sequence_length": 128}
GOAL = 3.0


def reference_on(backbone, jit_compile):
    """KerasHub's `GPT2CausalLM` on `backbone`, greedy, ids in and out (no preprocessor)."""
    reference = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    reference.compile(sampler="greedy", jit_compile=jit_compile)
    return reference


def tfllm_model(backbone, directory):
    """`TransformerLM.from_pretrained` on a KerasHub preset of `backbone` saved in `directory` (with a stand-in
    byte-level BPE of the backbone's vocabulary size: the preset format needs one, the benchmark feeds ids)."""
    vocabulary, merges = stand_in_bpe(backbone.vocabulary_size)
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=merges)
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer)
    keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor).save_to_preset(directory)
    return TransformerLM.from_pretrained(directory)


def stand_in_bpe(vocabulary_size):
    """A GPT-2-style byte-level BPE of `vocabulary_size` ids: the 256 byte symbols, merges of two of them, and
    `<|endoftext|>` last. `(vocabulary dict, merges list)`."""
    symbols = byte_symbols()
    pairs = [(first, second) for first in symbols for second in symbols][: vocabulary_size - len(symbols) - 1]
    tokens = symbols + [first + second for first, second in pairs] + ["<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, [f"{first} {second}" for first, second in pairs]


def byte_symbols():
    """GPT-2's printable stand-in for each byte: printable Latin-1 bytes stand for themselves, the others are
    moved to code points from 256 on."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    moved = [byte for byte in range(256) if byte not in printable]
    code_points = dict(zip(printable, printable)) | {byte: 256 + n for n, byte in enumerate(moved)}
    return [chr(code_points[byte]) for byte in range(256)]


def tfllm_run(model, new_tokens, jit_compile):
    def run(prompts):
        outputs = model.generate(prompts, max_new_tokens=new_tokens, stop_token_ids=[], strip_prompt=True,
                                 jit_compile=jit_compile)
        return np.asarray(outputs)  # (B, new_tokens)

    return run


def reference_run(reference, new_tokens):
    def run(prompts):
        batch_size, prompt_length = prompts.shape
        token_ids = np.zeros((batch_size, prompt_length + new_tokens), np.int32)  # (B, S): exactly what is needed
        token_ids[:, :prompt_length] = prompts
        padding_mask = np.zeros_like(token_ids, dtype=bool)
        padding_mask[:, :prompt_length] = True
        outputs = reference.generate({"token_ids": token_ids, "padding_mask": padding_mask}, stop_token_ids=None)
        return np.asarray(outputs["token_ids"])[:, prompt_length:]  # (B, new_tokens)

    return run


def weight_bytes(model):
    """The bytes one decode step reads at least: every weight once, but of the position table one row."""
    total = sum(int(np.prod(weight.shape)) * np.dtype(weight.dtype).itemsize for weight in model.weights)
    if model.positions is not None:
        table = model.positions.weights[0]
        total -= int(np.prod(table.shape[1:])) * (table.shape[0] - 1) * np.dtype(table.dtype).itemsize
    return total


def step_parts(model, batch_size, length):
    """tfllm's decode step at a cache of `length` slots, and its parts alone, as `{name: (function, arguments)}`:
    the blocks' six projections (no attention, no norms), attention over the caches (scores, softmax, mixing, the
    cache write), the logits, the greedy choice."""
    hidden = tf.random.normal([batch_size, 1, model.hidden_dim])  # (B, 1, D)
    token = tf.zeros([batch_size, 1], tf.int32)
    state = model.initial_state(batch_size, length)
    index = tf.constant(length // 2)

    def projections(x):
        for block in model.blocks:
            attention = block.self_attention
            query, key, value = attention._query_key_value(x)  # 3 x (B, 1, H, Dh), as the layer projects
            x = x + attention._attention_output(query + key + value)
            x = x + block.feedforward_output_dense(block.feedforward_intermediate_dense(x))  # (B, 1, D)
        return x

    def attention_over_cache(x, state):
        query = tf.reshape(x, [batch_size, 1, model.num_heads, -1])  # (B, 1, H, Dh), as the projections give it
        for block, cache in zip(model.blocks, state):
            # The layer's own cache write, scores, softmax and mixing, without the projections around them.
            context, cache = block.self_attention._attention_over_cache(query, query, query, cache, index, None)
            query = query + context  # (B, 1, H, Dh)
        return query

    return {
        "whole step": (lambda token, state: model.decode(token, state, index)[0], (token, state)),
        "projections": (projections, (hidden,)),
        "attention": (attention_over_cache, (hidden, state)),
        "logits": (model.logits, (hidden,)),
        "greedy choice": (lambda logits: tf.argmax(logits[:, -1], axis=-1), (model.logits(hidden),)),
    }


def step_profile(model, batch_size, length, rounds):
    """Milliseconds of tfllm's decode step and of its parts (`step_parts`), each compiled alone, under XLA and in
    the plain graph, timed in alternating rounds (median). The parts run apart, so each pays a call."""
    functions = {}
    for name, (function, arguments) in step_parts(model, batch_size, length).items():
        for mode, jit_compile in (("XLA", True), ("graph", False)):
            compiled = tf.function(function, jit_compile=jit_compile)
            compiled(*arguments)
            functions[(name, mode)] = (compiled, arguments)
    times = {key: [] for key in functions}
    for _ in range(rounds):
        for key, (compiled, arguments) in functions.items():
            start = time.perf_counter()
            keras.ops.convert_to_numpy(compiled(*arguments))
            times[key].append(time.perf_counter() - start)
    return {f"{name}, {mode}": 1000 * statistics.median(values) for (name, mode), values in times.items()}


def time_alternating(runs, prompts, rounds):
    """The median seconds of each of `runs`, timed in alternating rounds."""
    seconds = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run(prompts)
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in seconds.items()}


IMPLEMENTATIONS = ("tfllm generate, XLA", "tfllm generate, graph", "KerasHub generate, XLA",
                   "KerasHub generate, graph")


def implementations(model, backbone, new_tokens):
    """Each implementation's `run(prompts (B, T)) -> new ids (B, new_tokens)`, by the names of IMPLEMENTATIONS."""
    return dict(zip(IMPLEMENTATIONS, (tfllm_run(model, new_tokens, True), tfllm_run(model, new_tokens, False),
                                      reference_run(reference_on(backbone, True), new_tokens),
                                      reference_run(reference_on(backbone, False), new_tokens))))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per batch size (median kept)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 8 + 16 tokens: a smoke run")
    args = parser.parse_args()
    shape, prompt_length, new_tokens = (TINY, 8, 16) if args.quick else (GPT2_SMALL, 32, 128)

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(**shape, dropout=0.0)
    with tempfile.TemporaryDirectory() as preset:
        model = tfllm_model(backbone, preset)
    runs = implementations(model, backbone, new_tokens)
    bandwidth = read_bandwidth(0.125 if args.quick else 1.0)
    step_bytes = weight_bytes(model)
    facts = {"machine": machine_line(), "read_bandwidth_gb_per_s": bandwidth / 1e9, "bytes_per_step": step_bytes,
             "parameters": model.count_params(), "prompt_tokens": prompt_length, "new_tokens": new_tokens,
             "rounds": args.rounds, "tensorflow": tf.__version__, "keras": keras.__version__,
             "keras_hub": keras_hub.__version__}
    print(f"{facts['machine']}; read bandwidth {bandwidth / 1e9:.1f} GB/s (a summed float32 tensor)")
    print(f"GPT-2 {'(quick: tiny)' if args.quick else 'small'}: {model.count_params():,} parameters, float32, "
          f"{step_bytes / 1e6:,.0f} MB of weights read per decode step; tfllm's weights from_pretrained on KerasHub's "
          f"preset; prompt {prompt_length} tokens, {new_tokens} new tokens, greedy, no stop token; median of "
          f"{args.rounds} alternating rounds")
    print(f"{'batch':>5} {'implementation':<26} {'new tokens/s':>12} {'ms/step':>8} {'of bound':>8} "
          f"{'x best KerasHub':>15} {'same tokens':>11}")
    rows, profiles = [], {}
    for batch_size in args.batch_sizes:
        rows += measure(runs, batch_size, shape, prompt_length, new_tokens, bandwidth / step_bytes, args.rounds)
        profiles[batch_size] = step_profile(model, batch_size, prompt_length + new_tokens, 5 if args.quick else 7)
    print(f"bound: {bandwidth / 1e9:.1f} GB/s / {step_bytes / 1e6:,.0f} MB per step = {bandwidth / step_bytes:,.1f} "
          f"steps/s (x batch size new tokens/s); goal: tfllm >= {GOAL:g}x KerasHub")
    print("tfllm's decode step alone and its parts, ms (each compiled on its own):")
    for line in profile_table(profiles):
        print(line)
    write_results(args.quick, facts, rows, profiles)


def measure(runs, batch_size, shape, prompt_length, new_tokens, steps_per_second_bound, rounds):
    """Times every run at `batch_size` and prints a row each; the rows as dicts."""
    prompts = np.random.default_rng(batch_size).integers(
        0, shape["vocabulary_size"], size=(batch_size, prompt_length), dtype=np.int32)  # (B, T)
    outputs = {name: run(prompts) for name, run in runs.items()}  # trace and compile: the warm-up
    seconds = time_alternating(runs, prompts, rounds)
    rates = {name: batch_size * new_tokens / median for name, median in seconds.items()}
    best_reference = max(rate for name, rate in rates.items() if name.startswith("KerasHub"))
    best_tfllm = max(rate for name, rate in rates.items() if name.startswith("tfllm"))
    rows = []
    for name, rate in rates.items():
        row = {"batch": batch_size, "implementation": name, "new_tokens_per_second": rate,
               "ms_per_step": 1000 * seconds[name] / new_tokens,
               "share_of_bandwidth_bound": rate / (steps_per_second_bound * batch_size),
               "ratio_to_best_keras_hub": rate / best_reference,
               "same_tokens_as_keras_hub_xla": float(np.mean(outputs[name] == outputs["KerasHub generate, XLA"]))}
        rows.append(row)
        print(f"{batch_size:>5} {name:<26} {rate:>12,.1f} {row['ms_per_step']:>8.1f} "
              f"{row['share_of_bandwidth_bound']:>8.0%} {row['ratio_to_best_keras_hub']:>14.2f}x "
              f"{row['same_tokens_as_keras_hub_xla']:>11.1%}", flush=True)
    record("gpt2_generation", f"GPT-2 small batch {batch_size}: best tfllm / best KerasHub",
           best_tfllm / best_reference, goal=GOAL)
    return rows


def profile_table(profiles):
    """`step_profile`'s figures of every batch size as text rows: one row per part, a column per batch and mode."""
    columns = [(batch_size, mode) for batch_size in profiles for mode in ("XLA", "graph")]
    parts = dict.fromkeys(name.rsplit(", ", 1)[0] for name in next(iter(profiles.values())))
    lines = [f"{'part':<14} " + " ".join(f"{f'B={batch_size} {mode}':>11}" for batch_size, mode in columns)]
    for part in parts:
        lines.append(f"{part:<14} " + " ".join(f"{profiles[batch_size][f'{part}, {mode}']:>11.1f}"
                                               for batch_size, mode in columns))
    return lines


def write_results(quick, facts, rows, profiles):
    """Writes the run's figures to benchmarks/results/gpt2_generation[_quick].{json,md}."""
    os.makedirs(RESULTS, exist_ok=True)
    stem = os.path.join(RESULTS, "gpt2_generation" + ("_quick" if quick else ""))
    with open(stem + ".json", "w", encoding="utf-8") as file:
        json.dump({**facts, "rows": rows, "step_profile_ms": profiles}, file, indent=2)
    lines = [f"GPT-2 small, greedy, prompt {facts['prompt_tokens']} + {facts['new_tokens']} new tokens, float32; "
             f"{facts['machine']}; read bandwidth {facts['read_bandwidth_gb_per_s']:.1f} GB/s; median of "
             f"{facts['rounds']} rounds (`python benchmarks/gpt2_generation.py{' --quick' if quick else ''}`)", "",
             "| batch | implementation | new tokens/s | ms/step | of bandwidth bound | x best KerasHub | same tokens |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['batch']} | {row['implementation']} | {row['new_tokens_per_second']:,.1f} | "
                     f"{row['ms_per_step']:.1f} | {row['share_of_bandwidth_bound']:.0%} | "
                     f"{row['ratio_to_best_keras_hub']:.2f}x | {row['same_tokens_as_keras_hub_xla']:.1%} |")
    steps_per_second = facts["read_bandwidth_gb_per_s"] * 1e9 / facts["bytes_per_step"]
    lines += ["", f"Bandwidth bound: {facts['read_bandwidth_gb_per_s']:.1f} GB/s / {facts['bytes_per_step'] / 1e6:,.0f} MB "
              f"of weights per decode step = {steps_per_second:,.1f} steps/s (x batch size new tokens/s).",
              "", "tfllm's decode step and its parts alone, ms:", "", "```", *profile_table(profiles), "```"]
    with open(stem + ".md", "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
