"""Generation written once for every model: samplers over logits, and the compiled decode loop."""

from tfllm.generation.decode_loop import decode_loop
from tfllm.generation.samplers import (
    SAMPLERS,
    GreedySampler,
    RandomSampler,
    Sampler,
    TopKSampler,
    TopPSampler,
    get_sampler,
)
