"""Scale on paper: the memory a TransformerLM needs per device, the largest one that fits, and the all-reduce
traffic of data-parallel training.

Memory of one replica training with AdamW (Keras keeps float32 variables also under mixed precision):

- state: 16 bytes per parameter: the float32 weight (4), its gradient (4), Adam's two moments (8);
- activations kept for the backward pass, per layer: `T * B * D * (34 + 5 * H * T / D)` bytes at 2 bytes per
  value (Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models", 2022, section 4.1),
  twice that in float32; plus the float32 logits and their gradient, `2 * 4 * T * B * V` bytes.

Data parallelism (MirroredStrategy, MultiWorkerMirroredStrategy, TPUStrategy) keeps a full replica per device, so
memory per device does not shrink with more replicas; what grows is the all-reduce of the gradients: a ring
all-reduce sends and receives `2 * (R - 1) / R * 4 * P` bytes per replica per step (float32 gradients), nearly
`8 P` bytes for many replicas, whatever their number. Throughput grows with R as long as that transfer hides
behind the step's compute: with a step of `6 * P * B * T` FLOPs at F FLOP/s and a link of L bytes/s, the
efficiency is about `min(1, compute time / transfer time)` when the two overlap.

    >>> config = transformer_config(num_layers=12, hidden_dim=768)  # GPT-2 small
    >>> transformer_parameters(config, vocab_size=50257, max_sequence_length=1024)
    124439808
    >>> round(training_memory_bytes(config, 50257, sequence_length=1024, batch_size=8) / 2**30, 1)  # GiB
    21.0
    >>> round(allreduce_bytes_per_step(124_000_000, replicas=8) / 1e9, 2)  # GB each replica sends per step
    0.87
"""

import dataclasses

from tfllm.checks import require_choice, require_positive_int
from tfllm.choices import PRECISIONS

STATE_BYTES_PER_PARAMETER = 16  # float32 weight, gradient, and AdamW's two moments
HEAD_DIM = 64


@dataclasses.dataclass(frozen=True)
class TransformerSize:
    """The sizes that decide a TransformerLM's memory: blocks, width, heads, MLP width."""

    num_layers: int
    hidden_dim: int
    num_heads: int
    intermediate_dim: int


def transformer_config(num_layers, hidden_dim, num_heads=None, intermediate_dim=None):
    """A `TransformerSize`; heads default to `hidden_dim / 64`, the MLP to `4 * hidden_dim` (GPT's choices)."""
    num_layers, hidden_dim = require_positive_int("num_layers", num_layers), require_positive_int("hidden_dim",
                                                                                                   hidden_dim)
    return TransformerSize(num_layers, hidden_dim, num_heads or max(1, hidden_dim // HEAD_DIM),
                           intermediate_dim or 4 * hidden_dim)


def transformer_parameters(size, vocab_size, max_sequence_length=None):
    """Parameters of a `TransformerLM` of this size with tied embeddings (and learned positions if a context is
    given): per block 4 D^2 + 2 D F weights, 9 D + F biases and layer norms."""
    d, f = size.hidden_dim, size.intermediate_dim
    block = 4 * d * d + 2 * d * f + 4 * d + d + f + 4 * d  # attention (+ biases), MLP (+ biases), 2 layer norms
    return size.num_layers * block + vocab_size * d + (max_sequence_length or 0) * d + 2 * d


def training_memory_bytes(size, vocab_size, sequence_length, batch_size, precision="float32"):
    """Bytes one replica needs to train a TransformerLM of `size` on (batch_size, sequence_length) batches."""
    require_choice("precision", precision, PRECISIONS)
    t, b = require_positive_int("sequence_length", sequence_length), require_positive_int("batch_size", batch_size)
    parameters = transformer_parameters(size, vocab_size, sequence_length)
    bytes_per_value = 4 if precision == "float32" else 2
    per_layer = t * b * size.hidden_dim * (34 + 5 * size.num_heads * t / size.hidden_dim) * bytes_per_value / 2
    logits = 2 * 4 * t * b * vocab_size
    return STATE_BYTES_PER_PARAMETER * parameters + size.num_layers * per_layer + logits


def largest_transformer(memory_gigabytes, vocab_size=50257, sequence_length=2048, batch_size=1,
                        precision="mixed_bfloat16", layers_per_width=1 / 128, headroom=0.9):
    """The largest TransformerLM (GPT-shaped: `hidden_dim = num_layers / layers_per_width`, 64-wide heads, 4x MLP)
    that trains within `memory_gigabytes` per device (GB = 1e9 bytes), keeping `1 - headroom` free for the
    framework; returns `(TransformerSize, parameters, bytes)`.

    >>> size, parameters, _ = largest_transformer(16, precision="float32", sequence_length=1024)
    >>> size.num_layers, size.hidden_dim, round(parameters / 1e6)
    (13, 1664, 518)
    """
    budget = memory_gigabytes * 1e9 * headroom
    best = None
    for num_layers in range(1, 1000):
        hidden = max(HEAD_DIM, int(round(num_layers / layers_per_width / HEAD_DIM)) * HEAD_DIM)
        size = transformer_config(num_layers, hidden)
        needed = training_memory_bytes(size, vocab_size, sequence_length, batch_size, precision)
        if needed > budget:
            break
        best = (size, transformer_parameters(size, vocab_size, sequence_length), needed)
    if best is None:
        raise ValueError(f"memory_gigabytes={memory_gigabytes} does not fit even a one-block Transformer of width 128 "
                         f"at sequence_length={sequence_length}, batch_size={batch_size}")
    return best


def allreduce_bytes_per_step(parameters, replicas, bytes_per_gradient=4):
    """Bytes each replica sends (and receives) per step in a ring all-reduce of the gradients."""
    replicas = require_positive_int("replicas", replicas)
    return 2 * (replicas - 1) / replicas * bytes_per_gradient * parameters
