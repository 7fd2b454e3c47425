"""Generation written once for every model: samplers over logits, beam search, and the compiled decode loop."""

from tfllm.generation.beam_search import BeamSampler
from tfllm.generation.decode_loop import decode_loop, decode_steps, row_limits
from tfllm.generation.request_sampler import RequestSampler
from tfllm.generation.sampler_settings import SAMPLERS, get_sampler
from tfllm.generation.samplers import GreedySampler, RandomSampler, Sampler, TopKSampler, TopPSampler
