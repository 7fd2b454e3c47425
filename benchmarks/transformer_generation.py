"""Generation speed of tfllm's default Transformer LM against KerasHub's `GPT2CausalLM.generate`, on the same
weights, greedy and top-p, at batch 1 and batch 8.

The model has the sizes of `tfllm train`'s default Transformer (`RunConfig.default("transformer")`: 4 layers, hidden
256, 4 heads, MLP 1,024, vocabulary 4,096) with a context of 256, float32, random weights (speed does not depend on
them). A KerasHub `GPT2Backbone` of that shape (dropout 0) is saved as a preset and loaded by
`TransformerLM.from_pretrained` (as benchmarks/gpt2_generation.py does), so both sides hold the same weights and
the same GPT-2 network (tanh GELU). Prompts of 32 random token ids are continued by 224 new tokens, with no stop
token, by:

- tfllm: `model.generate(ids, max_new_tokens=224, stop_token_ids=[], ...)`, greedy and `sampler="top_p",
  top_p=0.9, seed=0`, under XLA (`jit_compile=True`) and in the plain graph (`jit_compile=False`);
- KerasHub at its best: `GPT2CausalLM(backbone, preprocessor=None)` compiled with `sampler="greedy"` or
  `keras_hub.samplers.TopPSampler(p=0.9, seed=0)`, under XLA (`jit_compile=True`, its default) and in the plain
  graph, given ids and a padding mask exactly prompt + new tokens long, `stop_token_ids=None`.

Every implementation is warmed up (traced and compiled) first; the timings alternate between all of them in one
process and the median of `--rounds` is kept, so a busy machine slows all alike. It prints new tokens per second,
the ratio to the faster KerasHub mode of the same sampler (the issue's goal: tfllm >= 5x KerasHub) and, for greedy,
the share of new tokens equal to KerasHub's under XLA (the same weights: 100% but for float rounding flipping a near
tie, after which a row differs; sampled rows differ, each library draws its own random numbers). Results go to
benchmarks/results/transformer_generation[_quick].{json,md}.

    python benchmarks/transformer_generation.py                # 8 minutes on 2 CPU cores at a load average of 10
    python benchmarks/transformer_generation.py --rounds 3 --batch-sizes 8 --samplers greedy
    python benchmarks/transformer_generation.py --quick        # 8 + 24 tokens, 2 rounds: a smoke run
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from gpt2_generation import reference_run, tfllm_model, time_alternating  # noqa: E402
from machine import load_now, machine_facts, machine_line  # noqa: E402
from summary import record, write_results  # noqa: E402
from tfllm.training import DEFAULTS, RunConfig  # noqa: E402

CONTEXT = 256  # issue #19's context (`tfllm train` defaults to 128)
TOP_P, SEED = 0.9, 0
SAMPLERS = ("greedy", "top_p")
GOAL = 5.0


def backbone_shape():
    """The `GPT2Backbone` arguments of `tfllm train`'s default Transformer with a context of `CONTEXT`."""
    config = RunConfig.default("transformer").model
    return {"vocabulary_size": DEFAULTS["vocab_size"][DEFAULTS["data"]["tokenizer"]],
            "num_layers": config.num_layers, "num_heads": config.num_heads, "hidden_dim": config.hidden_dim,
            "intermediate_dim": config.intermediate_dim, "max_sequence_length": CONTEXT}


def tfllm_run(model, new_tokens, sampler, jit_compile):
    settings = {"sampler": "top_p", "top_p": TOP_P, "seed": SEED} if sampler == "top_p" else {"sampler": "greedy"}

    def run(prompts):
        outputs = model.generate(prompts, max_new_tokens=new_tokens, stop_token_ids=[], strip_prompt=True,
                                 jit_compile=jit_compile, **settings)
        return np.asarray(outputs)  # (B, new_tokens)

    return run


def keras_hub_reference(backbone, sampler, jit_compile):
    """KerasHub's `GPT2CausalLM` on `backbone` with `sampler`, ids in and out (no preprocessor)."""
    reference = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    chosen = keras_hub.samplers.TopPSampler(p=TOP_P, seed=SEED) if sampler == "top_p" else "greedy"
    reference.compile(sampler=chosen, jit_compile=jit_compile)
    return reference


def implementations(model, backbone, new_tokens, samplers):
    """`{(sampler, implementation name): run(prompts (B, T)) -> new ids (B, new_tokens)}`."""
    runs = {}
    for sampler in samplers:
        for mode, jit_compile in (("XLA", True), ("graph", False)):
            runs[sampler, f"tfllm generate, {mode}"] = tfllm_run(model, new_tokens, sampler, jit_compile)
        for mode, jit_compile in (("XLA", True), ("graph", False)):
            reference = keras_hub_reference(backbone, sampler, jit_compile)
            runs[sampler, f"KerasHub generate, {mode}"] = reference_run(reference, new_tokens)
    return runs


def measure(runs, batch_size, vocabulary_size, prompt_length, new_tokens, rounds):
    """Times every run at `batch_size` in alternating rounds; one row per run, as dicts."""
    prompts = np.random.default_rng(batch_size).integers(
        0, vocabulary_size, size=(batch_size, prompt_length), dtype=np.int32)  # (B, T)
    outputs = {key: run(prompts) for key, run in runs.items()}  # trace and compile: the warm-up
    seconds = time_alternating(runs, prompts, rounds)
    rates = {key: batch_size * new_tokens / median for key, median in seconds.items()}
    rows = []
    for (sampler, name), rate in rates.items():
        best_reference = max(other for (kind, implementation), other in rates.items()
                             if kind == sampler and implementation.startswith("KerasHub"))
        same = (float(np.mean(outputs[sampler, name] == outputs[sampler, "KerasHub generate, XLA"]))
                if sampler == "greedy" else None)
        rows.append({"batch": batch_size, "sampler": sampler, "implementation": name,
                     "new_tokens_per_second": rate, "ms_per_new_token": 1000 * seconds[sampler, name] / new_tokens,
                     "ratio_to_best_keras_hub": rate / best_reference, "same_tokens_as_keras_hub_xla": same})
    return rows


def headline(rows):
    """`{(batch, sampler): (best tfllm mode, best tfllm / best KerasHub)}`."""
    figures = {}
    for key in dict.fromkeys((row["batch"], row["sampler"]) for row in rows):
        group = [row for row in rows if (row["batch"], row["sampler"]) == key]
        best = max((row for row in group if row["implementation"].startswith("tfllm")),
                   key=lambda row: row["new_tokens_per_second"])
        figures[key] = (best["implementation"].rsplit(", ", 1)[1], best["ratio_to_best_keras_hub"])
    return figures


def table(rows):
    lines = ["| batch | sampler | implementation | new tokens/s | ms/new token | x best KerasHub | same tokens |",
             "|---:|---|---|---:|---:|---:|---:|"]
    for row in rows:
        same = "-" if row["same_tokens_as_keras_hub_xla"] is None else f"{row['same_tokens_as_keras_hub_xla']:.1%}"
        lines.append(f"| {row['batch']} | {row['sampler']} | {row['implementation']} | "
                     f"{row['new_tokens_per_second']:,.0f} | {row['ms_per_new_token']:.2f} | "
                     f"{row['ratio_to_best_keras_hub']:.2f}x | {same} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per batch size (median kept)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    parser.add_argument("--quick", action="store_true", help="prompt 8, 24 new tokens, 2 rounds: a smoke run")
    args = parser.parse_args()
    prompt_length, new_tokens, rounds = (8, 24, 2) if args.quick else (32, CONTEXT - 32, args.rounds)

    shape = backbone_shape()
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(**shape, dropout=0.0)
    with tempfile.TemporaryDirectory() as preset:
        model = tfllm_model(backbone, preset)
    if model.count_params() != backbone.count_params():
        raise ValueError(f"tfllm's model has {model.count_params():,} parameters, KerasHub's "
                         f"{backbone.count_params():,}: the weights were not carried over")
    runs = implementations(model, backbone, new_tokens, args.samplers)
    load_before = machine_line()
    rows = []
    for batch_size in args.batch_sizes:
        rows += measure(runs, batch_size, shape["vocabulary_size"], prompt_length, new_tokens, rounds)
    figures = headline(rows)

    heading = (f"Transformer LM generation, {shape['num_layers']} layers x {shape['hidden_dim']}, "
               f"{shape['num_heads']} heads, MLP {shape['intermediate_dim']}, vocabulary "
               f"{shape['vocabulary_size']:,}, context {CONTEXT}, {model.count_params():,} parameters, float32, the "
               f"same weights on both sides; prompt {prompt_length} + {new_tokens} new tokens, no stop token; top-p "
               f"p={TOP_P}; median of {rounds} alternating rounds{' (quick)' if args.quick else ''}")
    ratio_lines = [f"batch {batch} {sampler}: best tfllm ({mode}) / best KerasHub = {ratio:.2f}x (goal >= {GOAL:g}x)"
                   for (batch, sampler), (mode, ratio) in figures.items()]
    lines = [heading, "", f"machine: {load_before} before, {load_now()} after", "", *table(rows), "",
             *ratio_lines]
    print("\n".join(lines), flush=True)
    for (batch, sampler), (mode, ratio) in figures.items():
        record("transformer_generation", f"{sampler} batch {batch} new tokens/s: best tfllm / best KerasHub",
               ratio, goal=GOAL)
    facts = {**machine_facts(), "keras_hub": keras_hub.__version__, "parameters": model.count_params(),
             "prompt_tokens": prompt_length, "new_tokens": new_tokens, "rounds": rounds, "top_p": TOP_P}
    command = f"(`python benchmarks/transformer_generation.py{' --quick' if args.quick else ''}`)"
    write_results("transformer_generation", args.quick, {**facts, "rows": rows}, lines + ["", command])


if __name__ == "__main__":
    main()
