"""From generation settings (a sampler's name, temperature, top_k, top_p, num_beams) to a `Sampler`."""

from tfllm.checks import require_choice, require_int_at_least, require_number_at_least, require_probability
from tfllm.generation.beam_search import BeamSampler
from tfllm.generation.request_sampler import RequestSampler
from tfllm.generation.samplers import GreedySampler, RandomSampler, Sampler, TopKSampler, TopPSampler

SAMPLERS = ("greedy", "random", "top_k", "top_p", "beam")


def get_sampler(sampler="greedy", temperature=1.0, top_k=None, top_p=None, num_beams=None):
    """A sampler by name or settings: "greedy" (or temperature 0), "random", "top_k" / top_k, "top_p" / top_p,
    "beam" / num_beams.

    Setting `top_k` or `top_p` (below 1) chooses that sampler when `sampler` is "greedy" or "random" (a random
    draw limited to the top k, or to the nucleus); both limit the draw, top-k first, then top-p (as the SavedModel's
    `generate` does), whichever of "top_k" and "top_p" is named. "top_k" named without `top_k` keeps the 40
    likeliest tokens; `top_k=0` is no limit. A temperature of 0 is greedy for every sampler but beam search;
    `num_beams` chooses beam search (4 beams when "beam" is named without it). A `Sampler` passes through.

    >>> type(get_sampler("random", temperature=0.8, top_p=0.9)).__name__, type(get_sampler(temperature=0)).__name__
    ('TopPSampler', 'GreedySampler')
    >>> type(get_sampler("random", top_k=50, top_p=0.9)).__name__  # top-k, then top-p
    'RequestSampler'
    >>> [type(get_sampler("top_p", top_k=5)).__name__, type(get_sampler("top_k", top_p=0.9)).__name__]  # 40, then p
    ['TopKSampler', 'RequestSampler']
    >>> get_sampler(num_beams=3).num_beams
    3
    """
    if isinstance(sampler, Sampler):
        return sampler
    require_choice("sampler", sampler, SAMPLERS)
    require_number_at_least("temperature", temperature, 0, " (0 means greedy)")
    if top_k is not None:
        require_int_at_least("top_k", top_k, 0, " (0 or None: no limit)")
    if top_p is not None:
        require_probability("top_p", top_p)
    if num_beams is not None or sampler == "beam":
        num_beams = require_int_at_least("num_beams", 4 if num_beams is None else num_beams, 1)
        if sampler not in ("greedy", "beam") or top_k or (top_p is not None and top_p < 1):
            raise ValueError(
                f"num_beams={num_beams} asks for beam search, which draws nothing: it does not combine with "
                f"sampler={sampler!r}, top_k or top_p."
            )
        return BeamSampler(num_beams)
    k = 40 if sampler == "top_k" and top_k is None else top_k or None  # None: no limit
    p = top_p if top_p is not None and top_p < 1 else None  # None: no nucleus
    if (sampler == "greedy" and k is None and p is None) or temperature == 0:
        return GreedySampler()
    if k is not None and p is not None:
        return RequestSampler(temperature, k, p)
    if k is not None:
        return TopKSampler(k, temperature)
    if p is not None or sampler == "top_p":
        return TopPSampler(1.0 if p is None else p, temperature)
    return RandomSampler(temperature)
