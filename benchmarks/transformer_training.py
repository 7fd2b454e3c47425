"""Training throughput of tfllm's default Transformer LM against the references a user would pick instead:
KerasHub's GPT-2 (`GPT2Backbone` with tied logits) and a nanoGPT-style GPT in eager PyTorch.

The model is `tfllm train`'s default Transformer (`RunConfig.default("transformer")`: 4 layers, hidden 256, 4 heads,
MLP 1,024, learned positions, dropout 0, vocabulary 4,096 of the default SentencePiece tokenizer, tied embeddings)
with a context of 256, trained on batches of 16 x 256 random tokens (the sizes of issue #19). Per precision
(float32 and mixed_bfloat16) it times:

- tfllm: `build_model` (what `tfllm train` builds), compiled with `CausalLM.compile()`'s defaults (AdamW, as tfllm's
  `FusedAdamW`, with a warmup-cosine schedule, weight decay 0.1 but on biases and norms, beta_2 0.95, global clipnorm
  1.0; sparse cross-entropy from logits that ignores pad targets; the `Perplexity` metric), in the plain graph
  (`jit_compile=False`) and under XLA (`jit_compile=True`). "auto", the default, picks one of the two in each precision:
  the table says which.
- KerasHub: `GPT2Backbone` of the same vocabulary, layers, heads, widths and context, dropout 0, with tied logits
  (`backbone.token_embedding(hidden, reverse=True)`, as `GPT2CausalLM` computes them) in a small `keras.Model`,
  compiled with Keras's AdamW of the same settings (the config of tfllm's) and the same loss, no metric
  (its fastest), in the graph and under XLA; the faster of the two is the reference.
- PyTorch (when installed: benchmarks/requirements.txt): `torch_gpt.TorchGPT` of the same shape in eager mode, fused
  `torch.optim.AdamW` with the same settings (constant learning rate), global-norm clipping, the same loss; under
  mixed_bfloat16, the forward pass runs under `torch.autocast("cpu", torch.bfloat16)`. Skipped, with the reason
  printed, when PyTorch cannot be imported.

The parameter counts are printed and must be equal (a mismatch stops the run). Every contender is warmed up first
(traced, XLA-compiled), then rounds alternate between all of them in one process (A, B, C, ..., A, B, C, ...) and
the median round is kept, so a busy machine slows all alike. A round's figure is the median time of its steps, each
timed from the start of its batch to its end, the first step of each round left out (for Keras it also pays for
`fit`'s set-up). MFU = `training_flops_per_token(T)` x tokens/s / the matmul peak of the dtype the matmuls run in
(`machine.matmul_peak`, measured in every round: the median is kept, `machine.RoundPeaks`). Results go to
benchmarks/results/transformer_training[_quick].{json,md}.

    python benchmarks/transformer_training.py            # 20 minutes on 2 CPU cores at a load average of 8-13
    python benchmarks/transformer_training.py --rounds 2 --precisions float32    # for a quick look at real sizes
    python benchmarks/transformer_training.py --quick    # tiny batch and context: a smoke run (~1 minute)
"""

import argparse
import dataclasses
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from machine import RoundPeaks, load_now, machine_facts, machine_line  # noqa: E402
from models import seconds_per_step  # noqa: E402
from summary import record, write_results  # noqa: E402
from tfllm.training import DEFAULTS, RunConfig  # noqa: E402
from tfllm.training.builders import build_model  # noqa: E402

try:
    import torch  # noqa: E402

    import torch_gpt  # noqa: E402

    TORCH_MISSING = None
except ImportError as error:  # PyTorch is a benchmark-only dependency
    TORCH_MISSING = f"PyTorch is not installed ({error}); see benchmarks/requirements.txt"

VOCAB = DEFAULTS["vocab_size"][DEFAULTS["data"]["tokenizer"]]
BATCH = RunConfig.default("transformer").train.batch_size
SEQUENCE = 256  # issue #19's context (`tfllm train` defaults to 128)
QUICK_BATCH, QUICK_SEQUENCE = 4, 64
PRECISIONS = ("float32", "mixed_bfloat16")
MATMUL_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16"}
KERAS_HUB_GOAL, TORCH_GOAL = 1.25, 1.0


@dataclasses.dataclass
class Contender:
    """One model to time: `seconds(steps)` trains `steps` + 1 steps and returns the median of the last `steps`."""

    name: str
    precision: str
    parameters: int
    seconds: Callable[[int], float]


def model_config(sequence):
    return dataclasses.replace(RunConfig.default("transformer").model, max_sequence_length=sequence)


def tfllm_lm(config, jit_compile):
    """`tfllm train`'s Transformer, compiled with `CausalLM.compile()`'s defaults but for `jit_compile`."""
    model = build_model(config, vocab_size=VOCAB)
    model(np.zeros((1, config.max_sequence_length), np.int32))
    model.compile(jit_compile=jit_compile)
    return model


def keras_hub_lm(config):
    """KerasHub's `GPT2Backbone` of `config`'s sizes with tied logits, as `GPT2CausalLM` computes them."""
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCAB, num_layers=config.num_layers, num_heads=config.num_heads,
        hidden_dim=config.hidden_dim, intermediate_dim=config.intermediate_dim, dropout=0.0,
        max_sequence_length=config.max_sequence_length)
    token_ids = keras.Input((None,), dtype="int32")  # (B, T)
    hidden = backbone({"token_ids": token_ids, "padding_mask": keras.ops.ones_like(token_ids)})  # (B, T, D)
    return keras.Model(token_ids, backbone.token_embedding(hidden, reverse=True))  # (B, T, V)


def compile_like(reference, tfllm_model, jit_compile):
    """Compiles `reference` with `tfllm_model`'s optimizer settings and loss, and no metric."""
    optimizer = keras.optimizers.AdamW.from_config(tfllm_model.optimizer.get_config())
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])  # as CausalLM.compile()
    reference.compile(optimizer, tfllm_model.loss, jit_compile=jit_compile)
    return reference


def random_batches(batch, sequence, seed=0):
    tokens = np.random.default_rng(seed).integers(3, VOCAB, size=(batch, sequence + 1), dtype=np.int32)
    return tokens[:, :-1], tokens[:, 1:]  # (B, T) inputs and targets


def keras_contender(name, precision, model, inputs, targets):
    batches = tf.data.Dataset.from_tensors((inputs, targets)).repeat()
    return Contender(name, precision, model.count_params(), lambda steps: seconds_per_step(model, batches, steps))


def torch_contender(config, precision, inputs, targets):
    torch.manual_seed(0)
    model = torch_gpt.TorchGPT(VOCAB, config.num_layers, config.num_heads, config.hidden_dim,
                               config.intermediate_dim, config.max_sequence_length)
    optimizer = torch_gpt.adamw(model, learning_rate=3e-3, weight_decay=0.1)
    inputs, targets = torch.from_numpy(inputs).long(), torch.from_numpy(targets).long()
    autocast = torch.bfloat16 if precision == "mixed_bfloat16" else None

    def seconds(steps):
        times = []
        for _ in range(steps + 1):
            start = time.perf_counter()
            torch_gpt.train_step(model, optimizer, inputs, targets, clip_norm=1.0, autocast_dtype=autocast).item()
            times.append(time.perf_counter() - start)
        return statistics.median(times[1:])

    return Contender("PyTorch eager", precision, model.count_params(), seconds)


def make_contenders(config, batch, precisions):
    """Every contender of every precision, and what `compile()`'s "auto" resolves to in each precision."""
    inputs, targets = random_batches(batch, config.max_sequence_length)
    contenders, auto_modes = [], {}
    for precision in precisions:
        keras.config.set_dtype_policy(precision)
        auto = build_model(config, vocab_size=VOCAB)
        auto.compile()
        auto_modes[precision] = "XLA" if auto.jit_compile else "graph"
        for jit_compile, mode in ((False, "graph"), (True, "XLA")):
            keras.utils.set_random_seed(0)
            ours = tfllm_lm(config, jit_compile)
            contenders.append(keras_contender(f"tfllm, {mode}", precision, ours, inputs, targets))
            theirs = compile_like(keras_hub_lm(config), ours, jit_compile)
            contenders.append(keras_contender(f"KerasHub, {mode}", precision, theirs, inputs, targets))
        keras.config.set_dtype_policy("float32")
        if TORCH_MISSING is None:
            contenders.append(torch_contender(config, precision, inputs, targets))
    return contenders, auto_modes


def check_sizes(contenders):
    counts = {contender.name: contender.parameters for contender in contenders}
    if len(set(counts.values())) != 1:
        raise ValueError(f"the contenders differ in size: parameter counts {counts}")


def time_rounds(contenders, rounds, steps, peaks):
    """The median over `rounds` alternating rounds of each contender's seconds per step; the matmul `peaks`
    (`RoundPeaks`) are measured in every round."""
    for contender in contenders:  # trace, compile and warm up
        contender.seconds(1)
    times = [[] for _ in contenders]
    for _ in range(rounds):
        for contender, seconds in zip(contenders, times):
            seconds.append(contender.seconds(steps))
        peaks.measure()
    return [statistics.median(seconds) for seconds in times]


def rows_of(contenders, seconds, tokens_per_step, flops_per_token, peaks):
    """One dict per contender, with its ratio to the faster KerasHub mode of its precision."""
    rates = [tokens_per_step / median for median in seconds]
    best_keras_hub = {}
    for contender, rate in zip(contenders, rates):
        if contender.name.startswith("KerasHub"):
            best_keras_hub[contender.precision] = max(rate, best_keras_hub.get(contender.precision, 0.0))
    return [{"precision": contender.precision, "implementation": contender.name, "parameters": contender.parameters,
             "tokens_per_second": rate, "seconds_per_step": median,
             "mfu": flops_per_token * rate / peaks[MATMUL_DTYPE[contender.precision]],
             "ratio_to_best_keras_hub": rate / best_keras_hub[contender.precision]}
            for contender, rate, median in zip(contenders, rates, seconds)]


def table(rows):
    lines = ["| precision | implementation | parameters | tokens/s | s/step | MFU | x best KerasHub |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['precision']} | {row['implementation']} | {row['parameters']:,} | "
                     f"{row['tokens_per_second']:,.0f} | {row['seconds_per_step']:.2f} | {row['mfu']:.1%} | "
                     f"{row['ratio_to_best_keras_hub']:.2f}x |")
    return lines


def ratios(rows, auto_modes):
    """The headline ratios per precision: `{precision: {name: value}}`, and their printed lines."""
    figures, lines = {}, []
    for precision in dict.fromkeys(row["precision"] for row in rows):
        auto_mode = auto_modes[precision]
        rate = {row["implementation"]: row["tokens_per_second"] for row in rows if row["precision"] == precision}
        ours, best_ours = rate[f"tfllm, {auto_mode}"], max(rate["tfllm, graph"], rate["tfllm, XLA"])
        reference = max(rate["KerasHub, graph"], rate["KerasHub, XLA"])
        figures[precision] = {"tfllm auto / best KerasHub": ours / reference,
                              "best tfllm / best KerasHub": best_ours / reference}
        lines.append(f"{precision}: tfllm ({auto_mode}, what compile()'s 'auto' picks) / best KerasHub = "
                     f"{ours / reference:.2f}x (goal >= {KERAS_HUB_GOAL:g}x); best tfllm / best KerasHub = "
                     f"{best_ours / reference:.2f}x")
        if "PyTorch eager" in rate:
            figures[precision]["tfllm auto / PyTorch eager"] = ours / rate["PyTorch eager"]
            lines.append(f"{precision}: tfllm ({auto_mode}) / PyTorch eager = {ours / rate['PyTorch eager']:.2f}x "
                         f"(goal >= {TORCH_GOAL:g}x)")
    return figures, lines


def record_figures(figures, auto_modes):
    for precision, values in figures.items():
        auto_mode = auto_modes[precision]
        record("transformer_training", f"{precision} tokens/s: tfllm ({auto_mode}) / best KerasHub GPT-2",
               values["tfllm auto / best KerasHub"], goal=KERAS_HUB_GOAL)
        if "tfllm auto / PyTorch eager" in values:
            record("transformer_training", f"{precision} tokens/s: tfllm ({auto_mode}) / PyTorch eager",
                   values["tfllm auto / PyTorch eager"], goal=TORCH_GOAL)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per contender (median kept)")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per contender per round")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--quick", action="store_true", help=f"batch {QUICK_BATCH} x {QUICK_SEQUENCE}, 2 rounds of "
                                                             "1 step: a smoke run")
    args = parser.parse_args()
    batch, sequence = (QUICK_BATCH, QUICK_SEQUENCE) if args.quick else (BATCH, SEQUENCE)
    rounds, steps = (2, 1) if args.quick else (args.rounds, args.steps)
    if TORCH_MISSING is not None:
        print(f"PyTorch eager skipped: {TORCH_MISSING}")
    else:
        torch.set_num_threads(os.cpu_count())

    config = model_config(sequence)
    contenders, auto_modes = make_contenders(config, batch, args.precisions)
    check_sizes(contenders)
    load_before = machine_line()
    round_peaks = RoundPeaks(sorted({MATMUL_DTYPE[precision] for precision in args.precisions}))
    seconds = time_rounds(contenders, rounds, steps, round_peaks)
    peaks = round_peaks.median()
    flops = build_model(config, vocab_size=VOCAB).training_flops_per_token(sequence)
    rows = rows_of(contenders, seconds, batch * sequence, flops, peaks)
    figures, ratio_lines = ratios(rows, auto_modes)

    heading = (f"Transformer LM training, {config.num_layers} layers x {config.hidden_dim}, {config.num_heads} heads, "
               f"MLP {config.intermediate_dim}, vocabulary {VOCAB:,}, batch {batch} x {sequence} tokens, tied "
               f"embeddings; median of {rounds} alternating rounds of {steps} step(s)"
               f"{' (quick)' if args.quick else ''}")
    machine_lines = [f"machine: {load_before} before, {load_now()} after; matmul peak (median of the rounds) "
                     + ", ".join(f"{dtype} {peak / 1e9:.0f} GFLOP/s" for dtype, peak in peaks.items()),
                     "tfllm's compile() jit_compile='auto' picks: "
                     + ", ".join(f"{mode} in {precision}" for precision, mode in auto_modes.items()) + "; "
                     f"{TORCH_MISSING or 'PyTorch ' + torch.__version__}"]
    lines = [heading, "", *machine_lines, "", *table(rows), "", *ratio_lines]
    print("\n".join(lines), flush=True)
    record_figures(figures, auto_modes)
    facts = {**machine_facts(), "matmul_peak_gflops": {dtype: peak / 1e9 for dtype, peak in peaks.items()},
             "batch": batch, "sequence": sequence, "rounds": rounds, "steps": steps, "auto_modes": auto_modes,
             "keras_hub": keras_hub.__version__, "torch": None if TORCH_MISSING else torch.__version__,
             "ratios": figures}
    command = f"(`python benchmarks/transformer_training.py{' --quick' if args.quick else ''}`)"
    write_results("transformer_training", args.quick, {**facts, "rows": rows}, lines + ["", command])


if __name__ == "__main__":
    main()
