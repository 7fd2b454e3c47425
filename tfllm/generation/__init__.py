"""Generation written once for every model: samplers over logits, beam search, the compiled decode loop, and text
generation and streaming on top of it (`tfllm.generation.text_generation`, behind `CausalLM.generate` and `stream`),
and chat in a model's chat template (`tfllm.generation.chat`, behind `CausalLM.chat`).

A model is seen through its decode contract, never its class: this package imports nothing of `tfllm.models`."""

from tfllm.generation.beam_search import BeamSampler
from tfllm.generation.chat import chat_max_new_tokens, chat_prompt, chat_replies, chat_stop_token_ids
from tfllm.generation.decode_loop import decode_loop, decode_steps, row_limits
from tfllm.generation.request_sampler import RequestSampler
from tfllm.generation.sampler_settings import SAMPLERS, get_sampler
from tfllm.generation.samplers import GreedySampler, RandomSampler, Sampler, TopKSampler, TopPSampler
