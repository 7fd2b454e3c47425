"""From generation settings (a sampler's name, temperature, top_k, top_p, num_beams) to a `Sampler`."""

from tfllm.checks import require_choice, require_int_at_least, require_number_at_least, require_probability
from tfllm.generation.beam_search import BeamSampler
from tfllm.generation.request_sampler import RequestSampler
from tfllm.generation.samplers import GreedySampler, RandomSampler, Sampler, TopKSampler, TopPSampler

SAMPLERS = ("greedy", "random", "top_k", "top_p", "beam")


def get_sampler(sampler="greedy", temperature=None, top_k=None, top_p=None, num_beams=None):
    """A sampler by name or settings: "greedy" (or temperature 0), "random" / a temperature above 0, "top_k" /
    top_k, "top_p" / top_p, "beam" / num_beams.

    A draw divides the logits by `temperature` (None: 1). Setting a temperature above 0, `top_k` or `top_p` (below 1)
    chooses a draw when `sampler` is "greedy" (the default), as when it is "random": a plain random draw, or one
    limited to the top k, or to the nucleus; both limit the draw, top-k first, then top-p (as the SavedModel's
    `generate` does), whichever of "top_k" and "top_p" is named. "top_k" named without `top_k` keeps the 40
    likeliest tokens; `top_k=0` is no limit. A temperature of 0 is greedy for every sampler but beam search;
    `num_beams` chooses beam search (4 beams when "beam" is named without it), which draws nothing and so takes
    no temperature above 0, `top_k` or `top_p`. A `Sampler` passes through.

    >>> type(get_sampler("random", temperature=0.8, top_p=0.9)).__name__, type(get_sampler(temperature=0)).__name__
    ('TopPSampler', 'GreedySampler')
    >>> type(get_sampler()).__name__, type(get_sampler(temperature=0.7)).__name__  # a temperature asks for a draw
    ('GreedySampler', 'RandomSampler')
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
    if temperature is not None:
        require_number_at_least("temperature", temperature, 0, " (0 means greedy)")
    if top_k is not None:
        require_int_at_least("top_k", top_k, 0, " (0 or None: no limit)")
    if top_p is not None:
        require_probability("top_p", top_p)
    if num_beams is not None or sampler == "beam":
        num_beams = require_int_at_least("num_beams", 4 if num_beams is None else num_beams, 1)
        drawing = {"sampler": sampler not in ("greedy", "beam"), "temperature": bool(temperature),
                   "top_k": bool(top_k), "top_p": top_p is not None and top_p < 1}  # what the caller set to draw
        settings = {"sampler": sampler, "temperature": temperature, "top_k": top_k, "top_p": top_p}
        drawing = [f"{name}={settings[name]!r}" for name, draws in drawing.items() if draws]
        if drawing:
            raise ValueError(f"num_beams={num_beams} asks for beam search, which draws nothing: it does not combine "
                             f"with {', '.join(drawing)}.")
        return BeamSampler(num_beams)
    k = 40 if sampler == "top_k" and top_k is None else top_k or None  # None: no limit
    p = top_p if top_p is not None and top_p < 1 else None  # None: no nucleus
    if temperature == 0 or (sampler == "greedy" and temperature is None and k is None and p is None):
        return GreedySampler()
    temperature = 1.0 if temperature is None else temperature
    if k is not None and p is not None:
        return RequestSampler(temperature, k, p)
    if k is not None:
        return TopKSampler(k, temperature)
    if p is not None or sampler == "top_p":
        return TopPSampler(1.0 if p is None else p, temperature)
    return RandomSampler(temperature)
