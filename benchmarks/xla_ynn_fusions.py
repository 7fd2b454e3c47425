"""XLA's CPU reductions without YNNPACK (`XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=`) against its default.

TensorFlow 2.21's XLA hands CPU reductions (softmax, argmax, cross-entropy, sums) to YNNPACK as "__ynn_fusion"s. Its
fusion thunk builds one YNNPACK executable for each concurrent run of a computation, and those builds share one
vector of constants: when two threads first run the same computation at once, the process can die of a segmentation
fault in `xla::cpu::EmitYnnSubgraph`. The flag, with an empty list of fusion types, turns YNNPACK's fusions off, and
XLA emits those reductions itself; the `tfllm` command and tfllm's test run set it (tfllm/xla_flags.py). This
measures what the flag costs: the calls of `xla_flag_comparison.py` (generation, greedy and top-p at batch 1 and 8,
and the default training step), in fresh processes with `XLA_FLAGS` unset ("default") or set to the flag ("no YNN").
A ratio below 1 is the flag's cost.

tfllm imported into a user's program does not set the flag, for it holds for every XLA computation in the process,
the user's own included (README, "A crash in TensorFlow 2.21's XLA"). The processes timed here are this script's
own, not the `tfllm` command's, so "default" is TensorFlow's default.

    python benchmarks/xla_ynn_fusions.py              # 8 to 15 minutes on 2 CPU cores
    python benchmarks/xla_ynn_fusions.py --rounds 3   # a smoke run
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from xla_flag_comparison import main  # noqa: E402

from tfllm.xla_flags import YNNPACK_FUSIONS  # noqa: E402  (loads no TensorFlow)

FLAG = f"{YNNPACK_FUSIONS}="

if __name__ == "__main__":
    main(__doc__, __file__, FLAG, "no YNN", "xla_ynn_fusions", "XLA's default (YNNPACK) / no YNN",
         f"XLA's CPU reductions: default (YNNPACK) against {FLAG}")
