"""XLA's CPU code with 512-bit vectors (`XLA_FLAGS=--xla_cpu_prefer_vector_width=512`) against its default, 256.

On a CPU with AVX-512, XLA's CPU compiler still asks LLVM for 256-bit vectors (its kernels' "prefer-vector-width"
attribute, in an `--xla_dump_to` dump of TensorFlow 2.21's) unless the flag says 512. A decode step at batch 1 is
XLA's own code from end to end: its matrix-vector products (XLA emits those below 4,096 rows as loops of its own,
`tfllm.layers.sums_as_products`), the attention over the cache, the layer norms and the sampler's bisection. The
calls timed, in fresh processes with `XLA_FLAGS` unset ("default") or set to the flag ("512-bit"), are
`xla_flag_comparison.py`'s: generation, greedy and top-p at batch 1 and 8, and the default training step.

tfllm leaves `XLA_FLAGS` to the user: the flag is process-wide, and changes the rounding of every XLA computation in
the process, the user's own included.

    python benchmarks/xla_vector_width.py              # 8 to 15 minutes on 2 CPU cores
    python benchmarks/xla_vector_width.py --rounds 3   # a smoke run
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from xla_flag_comparison import main  # noqa: E402

FLAG = "--xla_cpu_prefer_vector_width=512"


def has_avx512():
    """Whether the CPU reports AVX-512 (the flag changes nothing without it); None where /proc/cpuinfo is missing."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and " avx512f" in line for line in cpuinfo)
    except OSError:
        return None


if __name__ == "__main__":
    main(__doc__, __file__, FLAG, "512-bit", "xla_vector_width", "XLA's default vectors / 512-bit",
         f"XLA's CPU vectors: default (256-bit) against {FLAG}; AVX-512: {has_avx512()}")
