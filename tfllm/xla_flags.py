"""XLA's flags for the processes tfllm owns: the `tfllm` command turns YNNPACK's fusions off.

TensorFlow 2.21's XLA hands a CPU computation's reductions (softmax, cross-entropy, sums) to YNNPACK. Its fusion
thunk builds one YNNPACK executable for each concurrent run of a computation, and those builds share one vector of
constants: when two threads first run the same compiled computation at once, the process can die of a segmentation
fault in `xla::cpu::EmitYnnSubgraph`. A training step in TensorFlow's plain graph runs tfllm's XLA-compiled kernels
(GELU, layer norms, cross-entropy) on two threads at once, and the crash ended notebook kernels and benchmark
processes on this project's machines (README, "A crash in TensorFlow 2.21's XLA").

With the fusions off, XLA emits those reductions itself. `benchmarks/xla_ynn_fusions.py` measures what that costs:
nothing measurable in the training step, and some speed in generation at batch 8. The `tfllm` command, whose process
runs only tfllm's computations, turns them off (`turn_off_ynnpack_fusions`), and so does the test run; the library,
imported into someone's program, does not, since the flag holds for every XLA computation in the process.

This module imports nothing of tfllm or TensorFlow, so that the flag is set before XLA reads its flags, which it
does once, when it compiles its first computation.
"""

import os

YNNPACK_FUSIONS = "--xla_cpu_experimental_ynn_fusion_type"


def without_ynnpack_fusions(flags):
    """An XLA_FLAGS value: `flags` with YNNPACK's fusions turned off (the flag with an empty list), or `flags`
    unchanged when they already set the flag, whatever its value.

    >>> without_ynnpack_fusions("")
    '--xla_cpu_experimental_ynn_fusion_type='
    >>> without_ynnpack_fusions("--xla_cpu_prefer_vector_width=512")
    '--xla_cpu_prefer_vector_width=512 --xla_cpu_experimental_ynn_fusion_type='
    >>> without_ynnpack_fusions("--xla_cpu_experimental_ynn_fusion_type=reduce")  # the user's choice stays
    '--xla_cpu_experimental_ynn_fusion_type=reduce'
    """
    if any(flag.partition("=")[0] == YNNPACK_FUSIONS for flag in flags.split()):
        return flags
    return f"{flags} {YNNPACK_FUSIONS}=".strip()


def turn_off_ynnpack_fusions():
    """Sets XLA_FLAGS of this process, and of the processes it starts, to `without_ynnpack_fusions` of its value.
    It takes effect if no XLA computation has been compiled in this process yet."""
    os.environ["XLA_FLAGS"] = without_ynnpack_fusions(os.environ.get("XLA_FLAGS", ""))
