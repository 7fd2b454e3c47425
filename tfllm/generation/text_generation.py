"""Text generation for every model: `generate` and `stream` (behind `CausalLM.generate` and `CausalLM.stream`),
from prompts to padded ids, through the compiled loops, back to text.

A model is seen through what it has, never its class: `tokenizer`, `pad_id`, `max_sequence_length` and the decode
contract `initial_state(batch_size, max_length)` / `decode(token_ids, state, index)`.

`start` is the setup that `generate` and `stream` share: it checks the settings, builds the sampler, turns the
prompts into a padded batch and reads them. The compiled functions are made once per model and per sampler
settings, stop tokens and XLA choice. `prefill`'s signature leaves the batch size and length open, so it is traced
once; `loop` and `steps` are traced for the shapes of their first call and, with `reduce_retracing`, again when a
batch size or a length first differs, leaving that size open from then on. Generating again then costs no tracing
(under XLA, a new batch size or padded length costs one compilation):

- `prefill`: reads the prompts up to the shortest one's end in one decode call (always the plain graph);
- `loop`: the whole decode loop after it, the sampler's `run` (`generate`);
- `steps`: the same loop paused after `max_steps` positions, so that `stream` can hand the text to Python every
  `chunk_tokens` positions.

`loop` and `steps` run under XLA where that measures faster (`use_xla`).
"""

import codecs
import dataclasses
import warnings
import weakref

import numpy as np
import tensorflow as tf
from keras import ops

from tfllm.checks import is_chat_message, require_int32, require_positive_int, require_token_ids
from tfllm.generation.beam_search import BeamSampler
from tfllm.generation.decode_loop import decode_steps
from tfllm.generation.sampler_settings import get_sampler
from tfllm.utf8 import utf8_bytes, utf8_strings


def generate(model, prompts, *, max_new_tokens, sampler, temperature, top_k, top_p, seed, stop_token_ids,
             strip_prompt, num_beams, jit_compile):
    """`CausalLM.generate` for any model with the decode contract (the arguments are documented there)."""
    run = start(model, prompts, max_new_tokens, seed, stop_token_ids, jit_compile, sampler=sampler,
                temperature=temperature, top_k=top_k, top_p=top_p, num_beams=num_beams)
    request = run.request
    token_ids, ends = run.functions["loop"](
        run.token_ids, run.prompt_lengths, run.state, run.seed, tf.constant(max_new_tokens, tf.int32)
    )
    new_ids = request.new_ids(np.asarray(token_ids), np.asarray(ends))
    if request.texts_in and strip_prompt:
        outputs = utf8_strings(continuation_bytes(model, request.prompt_ids, new_ids))
    elif request.texts_in:
        outputs = utf8_strings(detokenize(model, [prompt + new for prompt, new in zip(request.prompt_ids, new_ids)]))
    else:
        outputs = new_ids if strip_prompt else [prompt + new for prompt, new in zip(request.prompt_ids, new_ids)]
    return outputs[0] if request.single else outputs


def stream(model, prompts, *, max_new_tokens, sampler, temperature, top_k, top_p, seed, stop_token_ids, chunk_tokens,
           jit_compile, strip_prompt=True):
    """`CausalLM.stream` for any model with the decode contract (the arguments are documented there): checks the
    settings and reads the prompts now, and returns the iterator of pieces."""
    chunk_tokens = require_positive_int("chunk_tokens", chunk_tokens)
    run = start(model, prompts, max_new_tokens, seed, stop_token_ids, jit_compile, streaming=True, sampler=sampler,
                temperature=temperature, top_k=top_k, top_p=top_p)
    return _pieces(model, run, max_new_tokens, chunk_tokens, strip_prompt)


def _pieces(model, run, max_new_tokens, chunk_tokens, strip_prompt):
    """The pieces `stream` yields: the compiled `steps`, `chunk_tokens` positions at a time, until every row ends."""
    request, functions, token_ids, state = run.request, run.functions, run.token_ids, run.state
    # A tensor, not a Python number: `steps` would be traced again for every new shortest prompt length.
    index = tf.constant(request.prompt_lengths.min(), tf.int32)
    end = tf.constant(np.minimum(request.prompt_lengths + max_new_tokens, request.token_ids.shape[1]), tf.int32)
    chunk = tf.constant(chunk_tokens, tf.int32)
    text = TextStream(model, request.prompt_ids) if request.texts_in else None
    prefixes = None if strip_prompt else _prompts_as_read(model, request)  # what the first pieces start with
    sent = [0] * len(request.prompt_ids)  # token-id prompts: the new ids yielded so far
    while True:
        token_ids, state, index, end = functions["steps"](
            token_ids, run.prompt_lengths, state, index, end, run.seed, chunk
        )
        ends = np.minimum(np.asarray(end), int(index))  # what each row holds so far
        new_ids = request.new_ids(np.asarray(token_ids), ends)
        finished = not np.any(int(index) < np.asarray(end))
        if text is not None:
            pieces = text.update(new_ids, final=finished)
        else:
            pieces = [ids[done:] for ids, done in zip(new_ids, sent)]
            sent = [len(ids) for ids in new_ids]
        if prefixes is not None:
            pieces, prefixes = [prefix + piece for prefix, piece in zip(prefixes, pieces)], None
        yield pieces[0] if request.single else pieces
        if finished:
            return


def _prompts_as_read(model, request):
    """Each prompt as the model read it (templated, cut to the context): its text for a text prompt, else its ids."""
    if request.texts_in:
        return utf8_strings(detokenize(model, request.prompt_ids))
    return [list(ids) for ids in request.prompt_ids]


@dataclasses.dataclass
class Generation:
    """A generation set up by `start`, ready for its compiled loop.

    Attributes:
        request: the `GenerationRequest` (the prompts' ids, and how to give the outputs back).
        functions: the model's compiled `prefill`, `loop` and `steps` for these settings (`compiled`).
        token_ids: int32 (B, S) tensor: the padded prompts and room for the new tokens.
        prompt_lengths: int32 (B,) tensor.
        state: the decode state after `prefill`.
        seed: int32 scalar tensor.
    """

    request: "GenerationRequest"
    functions: dict
    token_ids: tf.Tensor
    prompt_lengths: tf.Tensor
    state: object
    seed: tf.Tensor


def start(model, prompts, max_new_tokens, seed, stop_token_ids, jit_compile, streaming=False, **sampler_settings):
    """What `generate` and `stream` do before their loop, as a `Generation`: checks the settings, builds the sampler
    (`sampler_settings` are `tfllm.generation.get_sampler`'s), makes the prompts a padded batch (`prepare`), gets
    the compiled functions and reads the prompts (`prefill`). `streaming` refuses beam search."""
    sampler = get_sampler(**sampler_settings)
    if streaming and isinstance(sampler, BeamSampler):
        raise ValueError("sampler='beam' cannot stream: beam search knows its best sequence only at the end.")
    xla = use_xla(jit_compile, sampler)
    request = prepare(model, prompts, max_new_tokens, stop_token_ids, xla)
    functions = compiled(model, sampler, request.stop_token_ids, xla)
    token_ids, lengths = tf.constant(request.token_ids), tf.constant(request.prompt_lengths)
    seed = np.random.randint(0, 2**31 - 1) if seed is None else require_int32("seed", seed)
    return Generation(
        request, functions, token_ids, lengths, functions["prefill"](token_ids, lengths), tf.constant(seed, tf.int32)
    )


@dataclasses.dataclass
class GenerationRequest:
    """Prompts made ready for the compiled loop.

    Attributes:
        prompt_ids: each prompt's ids (after context truncation), a list of lists.
        token_ids: int32 (B, S): the prompts right-padded, with room for `max_new_tokens` after the longest.
        prompt_lengths: int32 (B,).
        stop_token_ids: the ids that end a row.
        texts_in: the prompts were strings (so the outputs are strings).
        single: one prompt was given, not a list (so one output is returned).
    """

    prompt_ids: list
    token_ids: np.ndarray
    prompt_lengths: np.ndarray
    stop_token_ids: tuple
    texts_in: bool
    single: bool

    def new_ids(self, token_ids, ends):
        """Each row's generated ids (B lists), the stop token left out, from the loop's (B, S) ids and ends."""
        rows = []
        for row, length in enumerate(self.prompt_lengths):
            ids = np.asarray(token_ids[row, length : ends[row]]).tolist()
            if ids and ids[-1] in self.stop_token_ids:
                ids = ids[:-1]  # the stop token is not part of the text
            rows.append(ids)
        return rows


def python_prompts(prompts, name="prompts"):
    """`prompts` with text given as bytes, or as a string tensor or array, turned into Python strings (which a
    prompt template wraps): a scalar into one `str`, a vector into a list of them; anything else as it is. Bytes
    that are not UTF-8 are a `ValueError` naming `name`, the item and the byte.

    >>> python_prompts(tf.constant(["In the", "And"])), python_prompts(np.array("Amen")), python_prompts([[1, 5]])
    (['In the', 'And'], 'Amen', [[1, 5]])
    >>> python_prompts(b"Amen"), python_prompts([b"In the", "And"])
    ('Amen', ['In the', 'And'])
    """
    if isinstance(prompts, bytes):
        return _as_str(name, 0, prompts)
    if isinstance(prompts, (list, tuple)) and any(isinstance(prompt, bytes) for prompt in prompts):
        return [_as_str(name, index, prompt) if isinstance(prompt, bytes) else prompt
                for index, prompt in enumerate(prompts)]
    if not isinstance(prompts, (tf.Tensor, np.ndarray)) or not _holds_text(prompts):
        return prompts
    array = np.asarray(prompts)
    if array.ndim > 1:
        raise ValueError(f"text prompts as a tensor or array must be a scalar or a vector; got shape {array.shape}.")
    texts = [_as_str(name, index, text) for index, text in enumerate(array.reshape(-1).tolist())]
    return texts[0] if array.ndim == 0 else texts


def _as_str(name, index, text):
    if isinstance(text, str):
        return text
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{name}[{index}] is not UTF-8 text: byte {text[error.start]:#04x} at offset "
                         f"{error.start}.") from None


def _holds_text(array):
    """Whether a tensor or NumPy array holds strings (NumPy's str, bytes, or Python strings as objects)."""
    if isinstance(array, tf.Tensor):
        return array.dtype == tf.string
    if array.dtype == object:
        return array.size > 0 and isinstance(array.flat[0], (str, bytes))
    return array.dtype.kind in "SU"


PROMPT_FORMS = "a string, a list of strings, or token ids (a list of lists, a (B, T) array or a RaggedTensor)"


def prepare(model, prompts, max_new_tokens, stop_token_ids, xla=False):
    """A `GenerationRequest` for `prompts` (strings, or token ids: lists, a (B, T) array or a RaggedTensor); `xla`
    pads the ids to a length XLA has likely compiled for already (`padded_length`)."""
    require_positive_int("max_new_tokens", max_new_tokens)
    prompts = python_prompts(prompts)
    single = isinstance(prompts, (str, bytes))
    if not single and not isinstance(prompts, (list, tuple, np.ndarray, tf.Tensor, tf.RaggedTensor)):
        raise ValueError(f"prompts={prompts!r:.60} is invalid: expected {PROMPT_FORMS}.")
    if isinstance(prompts, (list, tuple)) and not prompts:
        raise ValueError("prompts is empty: expected at least one prompt.")
    texts_in = single or (isinstance(prompts, (list, tuple)) and isinstance(prompts[0], (str, bytes)))
    if texts_in:
        for index, prompt in enumerate([prompts] if single else prompts):
            if not isinstance(prompt, str):
                raise ValueError(f"prompts[{index}] is a {type(prompt).__name__}, and prompts[0] a string: prompts "
                                 "are all text or all token ids.")
        token_lists = prompt_token_ids(model, [prompts] if single else list(prompts))
    else:
        token_lists = [require_token_ids("a prompt", ids, model.vocab_size) for ids in _as_token_lists(prompts)]
    if stop_token_ids is None:
        stop_token_ids = [] if model.tokenizer is None else [model.tokenizer.eos_id]
    stop_token_ids = require_token_ids("stop_token_ids", stop_token_ids, model.vocab_size)
    token_lists = _fit_context(token_lists, max_new_tokens, model.max_sequence_length)
    lengths = [len(ids) for ids in token_lists]
    if min(lengths) < 1:
        raise ValueError("a prompt is empty: every prompt needs at least one token (text prompts get a bos).")
    if max(lengths) + max_new_tokens > MAX_POSITIONS:
        raise ValueError(f"max_new_tokens={max_new_tokens} after a prompt of {max(lengths)} tokens is more positions "
                         f"than generation counts (int32, padded for XLA): expected at most {MAX_POSITIONS} in all.")
    length = padded_length(max(lengths) + max_new_tokens, model.max_sequence_length, xla)
    padded = np.full((len(token_lists), length), model.pad_id, np.int32)  # (B, S)
    for row, ids in enumerate(token_lists):
        padded[row, : len(ids)] = ids
    return GenerationRequest(
        token_lists, padded, np.asarray(lengths, np.int32), tuple(stop_token_ids), texts_in, single
    )


def prompt_token_ids(model, texts):
    """Each text prompt's ids: a bos, then its tokens."""
    if model.tokenizer is None:
        raise ValueError("text prompts need a tokenizer: attach one with tokenizer=..., or pass token ids.")
    ragged = model.tokenizer.tokenize(tf.constant(utf8_bytes(texts), tf.string))
    return [[model.tokenizer.bos_id] + ids for ids in ragged.to_list()]


REPLACEMENT_CHARACTER = "\ufffd".encode()  # what a tokenizer's text shows for bytes that are not (yet) UTF-8


def detokenize(model, token_lists):
    """UTF-8 `bytes` of each list of ids."""
    if not any(token_lists):
        return [b"" for _ in token_lists]
    ragged = tf.ragged.constant(token_lists, dtype=tf.int32, ragged_rank=1)
    return model.tokenizer.detokenize(ragged).numpy().tolist()


def continuation_bytes(model, prompt_lists, new_lists):
    """The text each row adds to its prompt: the text of prompt + new ids after the text of the prompt.

    Detokenizing the new ids alone would lose what joins them to the prompt (SentencePiece drops the space that
    starts a text, WordPiece's "##" pieces would stand alone), so the whole row is detokenized and the prompt's
    text taken off its front. A tokenizer whose prompt text is not a prefix of the whole (none of tfllm's) gets
    the new ids detokenized alone.
    """
    prompts = detokenize(model, prompt_lists)
    wholes = detokenize(model, [prompt + new for prompt, new in zip(prompt_lists, new_lists)])
    alone = None
    results = []
    for row, (prompt, whole) in enumerate(zip(prompts, wholes)):
        if whole.startswith(prompt):
            results.append(whole[len(prompt) :])
        else:
            alone = alone or detokenize(model, new_lists)
            results.append(alone[row])
    return results


class TextStream:
    """Turns the growing ids of each row into the text they add, chunk by chunk, never splitting a character.

    A character may take several tokens: ByteTokenizer's ids give its bytes, which the incremental decoder holds
    until they are complete; SentencePiece's byte pieces and GPT-2's byte-level BPE give U+FFFD until the last of
    them comes, so a text that ends in U+FFFD is held back from that character on until an update shows more (or
    the final one).
    """

    def __init__(self, model, prompt_lists):
        self.model, self.prompt_lists = model, prompt_lists
        self.sent = [b""] * len(prompt_lists)
        self.decoders = [codecs.getincrementaldecoder("utf-8")(errors="replace") for _ in prompt_lists]

    def update(self, new_lists, final=False):
        """The text added since the last update, one string per row."""
        pieces = []
        for row, text in enumerate(continuation_bytes(self.model, self.prompt_lists, new_lists)):
            while not final and text.endswith(REPLACEMENT_CHARACTER):  # a character whose last token is to come?
                text = text[: -len(REPLACEMENT_CHARACTER)]
            added = text[len(self.sent[row]) :] if text.startswith(self.sent[row]) else b""
            self.sent[row] += added
            pieces.append(self.decoders[row].decode(added, final=final))
        return pieces


def compiled(model, sampler, stop_token_ids, jit_compile=False):
    """The compiled `prefill`, `loop` and `steps` of `model` for these settings (see the module)."""
    key = (sampler_key(sampler), tuple(stop_token_ids), bool(jit_compile))
    functions = _COMPILED.setdefault(model, {})
    if key not in functions:
        model.build_eagerly()  # weights made inside a tf.function would make it trace twice
        functions[key] = _make_functions(weakref.ref(model), sampler, tuple(stop_token_ids), bool(jit_compile))
    return functions[key]


def sampler_key(sampler):
    """What makes two samplers draw alike, as a dict key: the class itself (a class defined again, as a notebook
    cell run twice defines it, is another sampler) and each setting's exact value (tensors and arrays by their bytes:
    their repr shortens long ones; an object that is neither a number, a text, a tuple nor an array by its identity).

    >>> from tfllm.generation.samplers import TopPSampler
    >>> sampler_key(TopPSampler(0.9)) == sampler_key(TopPSampler(0.9)) != sampler_key(TopPSampler(0.8))
    True
    >>> class Chosen(TopPSampler):
    ...     pass
    >>> sampler_key(Chosen(0.9)) == sampler_key(TopPSampler(0.9))
    False
    """
    return type(sampler), tuple((name, _exact(value)) for name, value in sorted(vars(sampler).items()))


def _exact(value):
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return type(value), value
    if isinstance(value, (tuple, list)):
        return type(value), tuple(map(_exact, value))
    if isinstance(value, (np.ndarray, np.generic)) or tf.is_tensor(value):
        array = np.asarray(value)
        return "array", array.dtype.str, array.shape, array.tobytes()
    return "object", _Identity(value)


@dataclasses.dataclass(frozen=True, eq=False)
class _Identity:
    """An object compared by identity, kept alive by the key that holds it (so its id is never another's)."""

    value: object

    def __eq__(self, other):
        return isinstance(other, _Identity) and other.value is self.value

    def __hash__(self):
        return id(self.value)


def use_xla(jit_compile, sampler):
    """Whether generation runs under XLA: `jit_compile` True or False, or "auto".

    "auto" follows measurements on a 2-core CPU (benchmarks/generation.py and transformer_generation.py report XLA's
    gain per sampler and batch size): XLA runs the decode loop of a 4-layer Transformer faster than the plain graph,
    which spends much of each step dispatching small ops, and the top-k and top-p cut-offs cost next to nothing
    there (`tfllm.generation.thresholds`). Beam search stays in the plain
    graph on CPUs, where XLA's top-k is slow; on GPUs and TPUs "auto" is always XLA. A sampled draw is
    reproducible for a seed within one mode: XLA's random numbers are not the plain graph's.
    """
    if isinstance(jit_compile, (bool, np.bool_)):
        return bool(jit_compile)
    if not (isinstance(jit_compile, str) and jit_compile == "auto"):
        raise ValueError(f"jit_compile={jit_compile!r} is invalid: expected True, False or \"auto\".")
    if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
        return True
    return not isinstance(sampler, BeamSampler)


def padded_length(length, max_sequence_length, xla):
    """The length S of the ids generation works on: under XLA rounded up to a multiple of 64 (a new shape costs an
    XLA compilation; a few spare positions cost little), within the model's context when it has one."""
    if not xla:
        return length
    rounded = -(-length // _XLA_LENGTH_MULTIPLE) * _XLA_LENGTH_MULTIPLE
    return max(length, rounded if max_sequence_length is None else min(rounded, max_sequence_length))


_XLA_LENGTH_MULTIPLE = 64
# Positions are int32 in the compiled loops; XLA rounds the length up to a multiple of 64.
MAX_POSITIONS = 2**31 - 1 - _XLA_LENGTH_MULTIPLE


def _make_functions(model_ref, sampler, stop_token_ids, jit_compile):
    request_spec = [
        tf.TensorSpec([None, None], tf.int32),  # token_ids (B, S)
        tf.TensorSpec([None], tf.int32),  # prompt_lengths (B,)
    ]

    # Plain graph code throughout (ops.cond and ops.while_loop, no Python control flow on tensors): AutoGraph would
    # only convert it, about 0.8 s of the first call in a process for the default Transformer, and find nothing to do
    # (benchmarks/first_generate.py).
    # The prefill always runs in the plain graph: its slice of the prompts depends on their lengths, which XLA would
    # compile anew for.
    @tf.function(input_signature=request_spec, autograph=False)
    def prefill(token_ids, prompt_lengths):
        return prefill_state(model_ref(), token_ids, prompt_lengths)

    @tf.function(reduce_retracing=True, jit_compile=jit_compile, autograph=False)
    def loop(token_ids, prompt_lengths, state, seed, max_new_tokens):
        """The whole generation after `prefill`: `(token_ids, ends)`."""
        model = model_ref()
        return sampler.run(
            text_step(model), token_ids, prompt_lengths, state, ops.min(prompt_lengths), seed, max_new_tokens,
            stop_token_ids, model.pad_id,
        )

    @tf.function(reduce_retracing=True, jit_compile=jit_compile, autograph=False)
    def steps(token_ids, prompt_lengths, state, index, end, seed, max_steps):
        """At most `max_steps` positions of generation from `index`: `(token_ids, state, index, end)`."""
        model = model_ref()
        return decode_steps(
            text_step(model), token_ids, prompt_lengths, state, index, end, sampler, seed, max_steps, stop_token_ids,
            model.pad_id,
        )

    functions = {"prefill": prefill, "loop": loop, "steps": steps}
    for function in functions.values():
        # Each sampler setting has its functions, traced once each by design; TensorFlow counts the traces of every
        # function made from this code together and would warn of "excessive retracing" after five settings. The
        # flag is the one TensorFlow sets on the functions of a loaded SavedModel for the same reason; if a
        # TensorFlow release drops it, only that warning comes back.
        function._omit_frequent_tracing_warning = True
    return functions


def text_step(model):
    """`model.decode` for the decode loop: its logits cut to the tokenizer's ids when the model has more outputs
    than its tokenizer has ids (a vocabulary padded to a round size), since an id past them has no text.

    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> model = LSTMLM(320, hidden_dim=8, tokenizer=ByteTokenizer())  # 259 ids, padded to 320
    >>> logits, _ = text_step(model)(ops.ones((2, 1), "int32"), model.initial_state(2, 4), 0)
    >>> tuple(logits.shape)  # (B, 1, the tokenizer's 259 ids)
    (2, 1, 259)
    """
    tokenizer = model.tokenizer
    if tokenizer is None or tokenizer.vocab_size >= model.vocab_size:
        return model.decode
    drawable = tokenizer.vocab_size

    def step(token_ids, state, index):
        logits, state = model.decode(token_ids, state, index)
        return logits[..., :drawable], state  # (B, T_new, drawable)

    return step


def prefill_state(model, token_ids, prompt_lengths):
    """The decode state after reading every position before `min(prompt_lengths) - 1` in one decode call (none for
    a lone bos): where the decode loop starts."""
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    start = ops.min(prompt_lengths)
    state = model.initial_state(batch_size, length)
    return ops.cond(start > 1, lambda: model.decode(token_ids[:, : start - 1], state, 0)[1], lambda: state)


# Each model's compiled functions, kept while the model lives; they hold it through a weak reference.
_COMPILED = weakref.WeakKeyDictionary()


def _as_token_lists(prompts):
    """Each prompt's ids as a list, unchecked, from a list of lists, a (B, T) array or tensor, or a RaggedTensor."""
    if isinstance(prompts, (tf.Tensor, np.ndarray, tf.RaggedTensor)) and len(prompts.shape) != 2:
        raise ValueError(f"token-id prompts must be (B, T), one row per prompt; got shape {tuple(prompts.shape)}.")
    if isinstance(prompts, tf.RaggedTensor):
        return prompts.to_list()
    if isinstance(prompts, (tf.Tensor, np.ndarray)):
        return np.asarray(prompts).tolist()
    for index, ids in enumerate(prompts):
        if is_chat_message(ids) or (isinstance(ids, (list, tuple)) and ids and is_chat_message(ids[0])):
            raise ValueError("prompts hold a conversation (chat messages, dicts with a role and content): prompts are "
                             "text or token ids; a conversation goes to model.chat(messages), one at a time.")
        if not isinstance(ids, (list, tuple, np.ndarray)):
            raise ValueError(f"prompts[{index}] is {ids!r:.40}, not a prompt's token ids: token ids go in a list of "
                             "lists, one list per prompt ([[5, 6]] for one prompt).")
    return [list(ids) for ids in prompts]


def _fit_context(token_lists, max_new_tokens, limit):
    if limit is None:
        return token_lists
    if max_new_tokens >= limit:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in max_sequence_length={limit}.")
    room = limit - max_new_tokens
    if any(len(ids) > room for ids in token_lists):
        warnings.warn(
            f"prompts longer than {room} token{'s' * (room != 1)} (max_sequence_length={limit} - max_new_tokens="
            f"{max_new_tokens}) lose their beginning.",
            stacklevel=6,  # the caller of CausalLM.generate or CausalLM.stream
        )
    return [ids[-room:] for ids in token_lists]
