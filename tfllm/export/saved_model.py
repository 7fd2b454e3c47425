"""A SavedModel that serves strings in and strings out: tokenizer, decode loop and sampler all inside the graph.

The export follows TensorFlow Serving's conventions: it is written as a numbered version (`OUT_DIR/1/`), and every
input of every signature has the batch dimension first, so both REST formats work (the row format's "instances",
each a dict of one row's values, and the columnar format's "inputs"). It is callable from `tf.saved_model.load` in a
process that has only tensorflow and tensorflow-text (for the tokenizer ops), from TensorFlow Serving, or from any
language with TensorFlow bindings:

- `serving_default`: `prompts` string[B] -> `{"text": string[B]}`, with the sampling settings fixed at export
  (`export_saved_model`'s `max_new_tokens`, `temperature`, `top_k`, `top_p`, `seed`): a plain `:predict` works.
  A translation model's is `translate` (below).
- `generate`: `prompts` string[B] and one setting per row: `max_new_tokens` int32[B], `temperature` float32[B]
  (0 = greedy), `top_k` int32[B] (0 = off), `top_p` float32[B] (1.0 = off), `seed` int32[B]
  -> `{"text": string[B], "completion": string[B]}`: `text` is the prompt and its continuation (what
  `CausalLM.generate` returns), `completion` the continuation alone (`strip_prompt=True`). Each row stops at the
  tokenizer's eos (a chat model's also at its template's stop tokens, below) or after its own `max_new_tokens`, and
  draws with its own seed as if it were alone in the batch: row i is `model.generate(prompts[i],
  max_new_tokens=max_new_tokens[i], ..., seed=seed[i])`, whatever rows the request (or TensorFlow Serving's
  batching) puts beside it.
- `score`: `texts` string[B] -> `{"log_likelihood": float32[B], "num_tokens": int32[B]}`, as `CausalLM.score`.
- `translate`, for a model that translates (its `prompt_template` is a `tfllm.data.TranslationTemplate` of two
  languages): `texts` string[B] and `target_language` string[B], one code per row ("zh", "en")
  -> `{"translation": string[B]}`. Row i is `model.translate(texts[i], target=target_language[i])`, the text alone:
  greedy, from the other language, at most 3 new tokens per source token + 8 (`CausalLM.translate`'s rule for one
  text), but stopped after `max_new_tokens_limit`; a source too long for the context (or `max_prompt_tokens`) is
  cut to its first tokens, its language tags kept, silently (a graph cannot warn, as `CausalLM.translate` does),
  and a character cut in two dropped (`CausalLM.translate` writes U+FFFD, which can push a tag out of the context).
  The translation has no special tokens and no surrounding whitespace. A code the model does not translate into
  fails with an `InvalidArgumentError` ("target language must be one of ...").
- `chat`, for a chat model (its `prompt_template` is a `tfllm.data.ChatTemplate`): `messages` string[B], one user
  message per row (one turn, no history) -> `{"replies": string[B]}`. Row i is `model.chat(messages[i], ...)`
  with `serving_default`'s settings (`export_saved_model`'s `max_new_tokens`, `temperature`, ..., `seed`): the
  prompt is the template's (`<user>message<assistant>`), and the reply ends at eos or at a stop token of the
  template (`<end>`), or after `max_new_tokens`. The reply has no special tokens and no surrounding whitespace. A
  message too long for the prompt's room (the context less `max_new_tokens`, at most `max_prompt_tokens`, less the
  bos and the template's own tokens) keeps its first tokens, as `model.chat` keeps them (a question's start says
  most of what it asks), silently (a graph cannot warn), its surrounding whitespace stripped and a character cut in
  two dropped (as in `translate`). An empty (or all-whitespace) message fails with an `InvalidArgumentError`, as
  `model.chat` refuses one.

A chat model's `serving_default` is `chat` (same input and output): a plain `:predict` on the model,
`{"instances": [{"messages": "天气如何"}]}` (or `{"instances": ["天气如何"]}`), gets the reply alone, which is what
it was trained for. Its `generate` reads each prompt as a user message, as `model.generate` does (it wraps prompts
in the model's template): the prompt is `<user>prompt<assistant>`, and decoding stops at eos or a stop token of the
template (`model.generate(..., stop_token_ids=tfllm.generation.chat.chat_stop_token_ids(model))`, what `tfllm
generate` does for a chat run); `text` is the message and the reply with the special tokens left out, with the
request's own sampling settings. An empty (or all-whitespace) prompt fails there as an empty message does in `chat`.

A translation model's `serving_default` is `translate` (same inputs and output): a plain `:predict` on the model,
`{"instances": [{"texts": "天气如何？", "target_language": "en"}]}`, translates, which is what it was trained for. A
lone string cannot fill a translation prompt, which needs its target; a target fixed at export would send every
text of the other language into the language it is already in. The export's sampling settings (`max_new_tokens`,
`temperature`, ...) are then unused: translations are greedy, as `CausalLM.translate`'s. Its `generate` reads the
prompts as written, with no template (`model.generate(prompts, apply_template=False)`): a client writes the tags
itself (`"<zh>天气如何？<en>"`) to sample translations with its own settings. `rest_request_examples` gives a request
body for each signature.

Every string returned is valid UTF-8: a model may generate bytes that are not (a byte tokenizer can emit any byte,
a SentencePiece model half a character), and those are replaced by U+FFFD, as `CausalLM.generate` does in Python.

Limits fixed at export bound the work of a request: `max_new_tokens` at most `max_new_tokens_limit`, at most
`max_batch_size` texts, prompts of at most `max_prompt_tokens` tokens (longer ones lose their beginning, as in
`CausalLM.generate`) and texts to score of at most `max_score_tokens` (longer ones are refused). A request outside
them fails with an `InvalidArgumentError` that names the input and the limit, before any decoding. The limits are
stored in the export as scalars (`loaded.max_new_tokens_limit`, ...).

Decoding runs as `CausalLM.generate` runs it: a prefill, then the compiled loop, with a
`tfllm.generation.RequestSampler` that draws what `generate`'s samplers draw for the same settings and seed, so the
loaded signature gives the same text. The loop runs in the plain graph or under XLA (`jit_compile`); see
`DEFAULT_JIT_COMPILE` for which, and why.
"""

import contextlib
import glob
import json
import os
import shutil

import tensorflow as tf
from keras import ops

from tfllm.checks import (
    require_directory_path,
    require_int32_at_least,
    require_int_at_least,
    require_number_at_least,
    require_positive_int,
    require_probability,
)
from tfllm.defaults import MAX_BATCH_SIZE, MAX_NEW_TOKENS, MAX_NEW_TOKENS_LIMIT
from tfllm.evaluation.scoring import (
    CHUNK_LENGTH,
    decode_log_likelihoods,
    default_stride,
    window_bounds,
    window_log_likelihoods,
)
from tfllm.export.writer import write_signatures
from tfllm.generation import RequestSampler, chat_stop_token_ids, decode_loop
from tfllm.generation.text_generation import prefill_state, text_step
from tfllm.generation.translation import translation_budget
from tfllm.models import CausalLM
from tfllm.models.lora import merge_lora

DEFAULT_MAX_PROMPT_TOKENS = 1024  # for models without a context limit (RNNs)
# By measurement: `benchmarks/export.py --xla` times the exported generate under XLA against the plain graph; its
# figures are the README's "SavedModel under XLA / plain graph" rows.
DEFAULT_JIT_COMPILE = True


def export_saved_model(model, path, *, version=1, max_new_tokens=None, temperature=0.0, top_k=0, top_p=1.0, seed=None,
                       jit_compile=DEFAULT_JIT_COMPILE, max_new_tokens_limit=None, max_prompt_tokens=None,
                       max_score_tokens=4096, max_batch_size=MAX_BATCH_SIZE, verbose=False):
    """Writes `model` (a `CausalLM` with a tokenizer) as version `version` of a SavedModel served by TensorFlow
    Serving's conventions: `path/<version>/`, with the signatures `serving_default`, `generate` and `score`,
    `translate` for a model that translates and `chat` for a chat model (see the module).

    Args:
        model: a `tfllm.models.CausalLM` with its tokenizer attached; a LoRA adapter on it is merged into the
            exported kernels (`tfllm.models.lora.merge_lora`).
        path: the model's base directory (TensorFlow Serving's `--model_base_path`); created if needed.
        version: the version number, a positive integer: the export goes to `path/<version>/`, which must not exist
            or be empty. It is written beside it and renamed into place once whole, so that a server watching
            `path` never loads a half-written version (`_written_whole`).
        max_new_tokens, temperature, top_k, top_p, seed: the sampling settings of `serving_default` (strings in,
            strings out): `max_new_tokens` new tokens at most (default: 64, or `max_new_tokens_limit` if less),
            temperature 0 is greedy, top_k 0 and top_p 1.0 are off; seed None draws a new seed for each request.
            The `generate` signature takes its settings with each request instead; a chat model's `chat` signature
            replies with these. A translation model's `serving_default` is `translate`, greedy, and leaves them
            unused.
        jit_compile: run the decode loop under XLA (True) or in the plain graph (False). On the 2-core CPU it was
            measured on, XLA generates faster but for a sampling SimpleRNN (`DEFAULT_JIT_COMPILE`); TensorFlow
            Serving on CPUs counts XLA as experimental, so False is the safe choice for a server that refuses it.
            Sampled draws are reproducible for a seed within one choice: XLA's random numbers are not the plain
            graph's.
        max_new_tokens_limit: the most new tokens a request may ask for (and a translation may write). Default:
            256, or half a Transformer's context if that is less.
        max_prompt_tokens: the longest prompt, in tokens (its bos included); longer prompts lose their beginning.
            Default: a Transformer's context minus one (what the shortest request leaves room for); 1024 for RNNs.
        max_score_tokens: the longest text `score` reads, in tokens (a Transformer reads it through sliding
            windows); longer texts are refused.
        max_batch_size: the most texts per request.
        verbose: print the signatures written, and a REST request body for each (`rest_request_examples`).

    Returns:
        The version directory written, `path/<version>`: what `tf.saved_model.load` takes.

    The export loads in any process with tensorflow and tensorflow-text (`import tensorflow_text` registers the
    tokenizer ops): `served = tf.saved_model.load(version_dir)`, then `served.signatures["generate"](...)`.

    Example (a tiny untrained model; the export's greedy text is the model's):

    >>> import tempfile
    >>> import keras
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> keras.utils.set_random_seed(0)
    >>> model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())
    >>> path = export_saved_model(model, os.path.join(tempfile.mkdtemp(), "lstm"), max_new_tokens=4)
    >>> os.path.basename(path)  # version 1
    '1'
    >>> served = tf.saved_model.load(path)
    >>> out = served.signatures["generate"](prompts=tf.constant(["In the beginning", "And"]),  # one setting per row
    ...                                     max_new_tokens=tf.constant([4, 2]), temperature=tf.constant([0.0, 0.0]),
    ...                                     top_k=tf.constant([0, 0]), top_p=tf.constant([1.0, 1.0]),
    ...                                     seed=tf.constant([0, 0]))
    >>> sorted(out), out["text"].shape
    (['completion', 'text'], TensorShape([2]))
    >>> out["text"].numpy()[0].decode("utf-8") == model.generate("In the beginning", max_new_tokens=4)
    True
    >>> served.signatures["serving_default"](prompts=tf.constant(["In the beginning"]))["text"].numpy()[0] == (
    ...     out["text"].numpy()[0])
    True
    >>> int(served.signatures["score"](texts=tf.constant(["Amen."]))["num_tokens"][0]), int(served.max_batch_size)
    (5, 64)
    """
    if not isinstance(model, CausalLM):
        raise ValueError(f"model is a {type(model).__name__}: expected a tfllm.models.CausalLM")
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer: an export serves strings, so make it with tokenizer=...")
    template = model.prompt_template
    kind = None if template is None else template.kind
    if kind == "fields" and len(template.prompt_fields) != 1:
        raise ValueError(f"the model's prompt template {template.prompt!r} has the fields "
                         f"{list(template.prompt_fields)}: an export fills one field from each prompt string")
    if kind == "translation" and len(template.languages) != 2:
        raise ValueError(f"the model translates between {list(template.languages)}: an export's translate signature "
                         "infers the source language, so it takes a two-language TranslationTemplate")
    require_directory_path("the export directory", path)
    version_dir = os.path.join(os.fspath(path), str(require_positive_int("version", version)))
    if os.path.exists(version_dir) and not os.path.isdir(version_dir):
        raise ValueError(f"{version_dir} is a file: the version directory must not exist or be empty (choose another "
                         "--version, or a new directory)")
    if os.path.isdir(version_dir) and os.listdir(version_dir):
        raise ValueError(f"{version_dir} exists and is not empty: choose another --version (or a new directory)")
    limits = _limits(model, max_new_tokens_limit, max_prompt_tokens, max_score_tokens, max_batch_size)
    defaults = _defaults(limits["max_new_tokens_limit"], max_new_tokens, temperature, top_k, top_p, seed)
    if kind == "chat":
        _chat_message_room(model, defaults["max_new_tokens"], limits["max_prompt_tokens"])  # refuses no room
    model.build_eagerly()
    model = merge_lora(model)  # a LoRA adapter folded into the kernels: the export has no adapter variables

    endpoints = _Endpoints(model, bool(jit_compile), defaults, **limits)
    with _written_whole(version_dir) as partial_dir:
        write_signatures(partial_dir, model, _signatures(endpoints), resources_of=[model.tokenizer],
                         constants=limits, verbose=verbose)
    if verbose:
        for name, body in rest_request_examples(model, max_new_tokens=defaults["max_new_tokens"]).items():
            print(f"REST request body for {name}: {json.dumps(body, ensure_ascii=False)}")
    return version_dir


@contextlib.contextmanager
def _written_whole(version_dir):
    """A new directory beside `version_dir` to write the export into, renamed to `version_dir` once it is whole.

    TensorFlow Serving loads every directory of the base path whose name is a number, as soon as it appears: an
    export written in place can be loaded half-written, and one killed half-way left a version that neither loads
    nor lets the export be run again. The partial directory's name (`.<version>.partial-<pid>`) is no number, so a
    server never loads it; a killed export leaves it behind, and the next export of that version removes it.
    """
    base, version = os.path.split(version_dir)
    for leftover in glob.glob(os.path.join(glob.escape(base), f".{version}.partial-*")):
        shutil.rmtree(leftover, ignore_errors=True)
    partial_dir = os.path.join(base, f".{version}.partial-{os.getpid()}")
    os.makedirs(partial_dir)
    try:
        yield partial_dir
        os.replace(partial_dir, version_dir)  # an empty version directory is replaced
    finally:
        shutil.rmtree(partial_dir, ignore_errors=True)


def _signatures(endpoints):
    """Each signature's name -> (function, input signature): batch-major inputs, one row per text. A translation
    or chat model has no "serving_default" here: `write_signatures` makes the first signature, `translate` or
    `chat`, also serving_default (one function traced, not two)."""
    prompts = [tf.TensorSpec([None], tf.string, name="prompts")]
    generate = prompts + [
        tf.TensorSpec([None], tf.int32, name="max_new_tokens"),
        tf.TensorSpec([None], tf.float32, name="temperature"),
        tf.TensorSpec([None], tf.int32, name="top_k"),
        tf.TensorSpec([None], tf.float32, name="top_p"),
        tf.TensorSpec([None], tf.int32, name="seed"),
    ]
    translate = [tf.TensorSpec([None], tf.string, name="texts"),
                 tf.TensorSpec([None], tf.string, name="target_language")]
    if endpoints.translates:
        first = {"translate": (endpoints.translate, translate)}
    elif endpoints.chats:
        first = {"chat": (endpoints.chat, [tf.TensorSpec([None], tf.string, name="messages")])}
    else:
        first = {"serving_default": (endpoints.serve, prompts)}
    return first | {
        "generate": (endpoints.generate, generate),
        "score": (endpoints.score, [tf.TensorSpec([None], tf.string, name="texts")]),
    }


def rest_request_examples(model, prompt="In the beginning", target_language=None,
                          max_new_tokens=MAX_NEW_TOKENS):
    """A TensorFlow Serving `:predict` request body (row format) for each signature of `model`'s export, by name.

    Args:
        model: the exported `CausalLM`.
        prompt: the text of the examples (a chat model's user message).
        target_language: a translation model's target in the examples (default: the last of its languages).
        max_new_tokens: the `generate` example's, within the export's `max_new_tokens_limit`.

    >>> from tfllm.data import TranslationTemplate
    >>> from tfllm.models import LSTMLM
    >>> model = LSTMLM(261, hidden_dim=8, prompt_template=TranslationTemplate(("en", "zh")))
    >>> rest_request_examples(model, "天气如何？", "en")["translate"]
    {'signature_name': 'translate', 'instances': [{'texts': '天气如何？', 'target_language': 'en'}]}
    >>> sorted(rest_request_examples(LSTMLM(259, hidden_dim=8)))
    ['generate', 'score', 'serving_default']
    >>> from tfllm.data import ChatTemplate
    >>> chat_model = LSTMLM(263, hidden_dim=8, prompt_template=ChatTemplate(assistant="<assistant>{content}<end>"))
    >>> rest_request_examples(chat_model, "天气如何")["chat"]
    {'signature_name': 'chat', 'instances': [{'messages': '天气如何'}]}
    """
    row = {"prompts": prompt, "max_new_tokens": max_new_tokens, "temperature": 0.0, "top_k": 0, "top_p": 1.0,
           "seed": 0}
    examples = {
        "serving_default": {"instances": [prompt]},
        "generate": {"signature_name": "generate", "instances": [row]},
        "score": {"signature_name": "score", "instances": [{"texts": prompt}]},
    }
    template = model.prompt_template
    kind = None if template is None else template.kind
    if kind == "translation":
        translation = {"texts": prompt, "target_language": target_language or template.languages[-1]}
        examples["serving_default"] = {"instances": [translation]}
        examples["translate"] = {"signature_name": "translate", "instances": [translation]}
    if kind == "chat":
        examples["serving_default"] = {"instances": [{"messages": prompt}]}
        examples["chat"] = {"signature_name": "chat", "instances": [{"messages": prompt}]}
    return examples


def default_max_new_tokens_limit(model):
    """`export_saved_model`'s default `max_new_tokens_limit` for `model`: 256, or half its context if less."""
    context = model.max_sequence_length
    return MAX_NEW_TOKENS_LIMIT if context is None else min(MAX_NEW_TOKENS_LIMIT, context // 2)


def _limits(model, max_new_tokens_limit, max_prompt_tokens, max_score_tokens, max_batch_size):
    context = model.max_sequence_length
    if max_new_tokens_limit is None:
        max_new_tokens_limit = default_max_new_tokens_limit(model)
    max_new_tokens_limit = require_int32_at_least("max_new_tokens_limit", max_new_tokens_limit)
    if context is not None and max_new_tokens_limit >= context:
        raise ValueError(
            f"max_new_tokens_limit={max_new_tokens_limit} leaves no room for a prompt in the model's "
            f"max_sequence_length={context}: expected fewer"
        )
    if max_prompt_tokens is None:
        max_prompt_tokens = DEFAULT_MAX_PROMPT_TOKENS if context is None else context - 1
    return {
        "max_new_tokens_limit": max_new_tokens_limit,
        "max_prompt_tokens": require_int32_at_least("max_prompt_tokens", max_prompt_tokens),
        "max_score_tokens": require_int32_at_least("max_score_tokens", max_score_tokens),
        "max_batch_size": require_int32_at_least("max_batch_size", max_batch_size),
    }


def _defaults(limit, max_new_tokens, temperature, top_k, top_p, seed):
    """serving_default's settings, checked: `max_new_tokens` (None: 64 or the limit), ..., `seed` (None: drawn)."""
    if max_new_tokens is None:
        max_new_tokens = min(MAX_NEW_TOKENS, limit)
    max_new_tokens = require_positive_int("max_new_tokens", max_new_tokens)
    if max_new_tokens > limit:
        raise ValueError(f"max_new_tokens={max_new_tokens} is above max_new_tokens_limit={limit}: expected at most "
                         "the limit")
    return {
        "max_new_tokens": max_new_tokens,
        "temperature": require_number_at_least("temperature", temperature, 0, " (0 is greedy)"),
        "top_k": require_int_at_least("top_k", top_k, 0, " (0 is off)"),
        "top_p": require_probability("top_p", top_p, " (1 is off)"),
        "seed": None if seed is None else require_int_at_least("seed", seed, 0),
    }


def _chat_message_room(model, max_new_tokens, max_prompt_tokens):
    """The most tokens of a message the `chat` signature keeps: the prompt's room (a Transformer's context less
    `max_new_tokens`, at most `max_prompt_tokens`) less the bos and the template's own tokens around the message, as
    `tfllm.generation.chat_prompt` counts them. A `ValueError` when that leaves no room.

    >>> from tfllm.data import ChatTemplate
    >>> from tfllm.models import TransformerLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> template = ChatTemplate(assistant="<assistant>{content}<end>")
    >>> model = TransformerLM(263, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
    ...                       max_sequence_length=64, tokenizer=ByteTokenizer(special_tokens=template.special_tokens),
    ...                       prompt_template=template)
    >>> _chat_message_room(model, max_new_tokens=32, max_prompt_tokens=63)  # 64 - 32 less bos, <user>, <assistant>
    29
    """
    frame = model.prompt_template.format_prompt_tensor(tf.constant([""]))  # the template around an empty message
    overhead = 1 + int(model.tokenizer.tokenize(frame).row_lengths()[0])  # and the bos
    context = model.max_sequence_length
    room = max_prompt_tokens if context is None else min(max_prompt_tokens, context - max_new_tokens)
    if room <= overhead:
        raise ValueError(f"a chat prompt of at most {room} tokens (max_prompt_tokens={max_prompt_tokens}, or the "
                         f"max_sequence_length={context} less max_new_tokens={max_new_tokens}) leaves no room for a "
                         f"message after the bos and the chat template's {overhead - 1} tokens: expected fewer "
                         "max_new_tokens or more max_prompt_tokens")
    return room - overhead


class _Endpoints:
    """The functions behind the signatures, closed over the model (whose variables the archive tracks)."""

    def __init__(self, model, jit_compile, defaults, max_new_tokens_limit, max_prompt_tokens, max_score_tokens,
                 max_batch_size):
        self.model = model
        self.tokenizer = model.tokenizer
        self.defaults = defaults
        self.max_new_tokens_limit = max_new_tokens_limit
        self.max_prompt_tokens = max_prompt_tokens
        self.max_score_tokens = max_score_tokens
        self.max_batch_size = max_batch_size
        kind = None if model.prompt_template is None else model.prompt_template.kind
        self.translates, self.chats = kind == "translation", kind == "chat"
        # A chat model's replies end at its template's stop tokens too (`<end>`), in every signature.
        self.stop_token_ids = tuple(chat_stop_token_ids(model)) if self.chats else (model.tokenizer.eos_id,)
        if self.chats:
            self.chat_message_room = _chat_message_room(model, defaults["max_new_tokens"], max_prompt_tokens)

        @tf.function(jit_compile=jit_compile, autograph=False)
        def loop(token_ids, prompt_lengths, state, max_new_tokens, temperature, top_k, top_p, seed):
            # Each row draws with its own seed (`RequestSampler`); the loop's seed only carries the position.
            return decode_loop(
                text_step(model), token_ids, prompt_lengths, state, ops.min(prompt_lengths),
                RequestSampler(temperature, top_k, top_p, seeds=seed), 0, max_new_tokens, self.stop_token_ids,
                model.pad_id,
            )

        self.loop = loop

    def serve(self, prompts):
        return {"text": self.generate(prompts, **self._default_settings(prompts))["text"]}

    def _default_settings(self, texts):
        """The export's sampling settings, one value per row of `texts` (B,): `generate`'s keyword arguments."""
        rows = tf.shape(texts)[:1]
        settings = {name: tf.fill(rows, value) for name, value in self.defaults.items() if name != "seed"}
        if self.defaults["seed"] is None:  # new seeds for each request, one per row: equal prompts draw apart
            seed = tf.random.uniform(rows, 0, 2**31 - 1, tf.int32)
        else:
            seed = tf.fill(rows, self.defaults["seed"])
        return {"max_new_tokens": settings["max_new_tokens"],
                "temperature": ops.cast(settings["temperature"], "float32"), "top_k": settings["top_k"],
                "top_p": ops.cast(settings["top_p"], "float32"), "seed": seed}

    def generate(self, prompts, max_new_tokens, temperature, top_k, top_p, seed):
        checks = self._check_batch(prompts, "prompts") + [
            tf.debugging.assert_equal(
                tf.size(setting), tf.size(prompts),
                message=f"{name} must hold one value per prompt (every input is batch-major: one row per prompt)",
            )
            for name, setting in [("max_new_tokens", max_new_tokens), ("temperature", temperature), ("top_k", top_k),
                                  ("top_p", top_p), ("seed", seed)]
        ] + [
            tf.debugging.assert_greater_equal(max_new_tokens, 1, message="max_new_tokens must be at least 1"),
            tf.debugging.assert_less_equal(
                max_new_tokens, self.max_new_tokens_limit,
                message=f"max_new_tokens is above max_new_tokens_limit={self.max_new_tokens_limit}, the limit of this export",
            ),
            tf.debugging.assert_greater_equal(temperature, 0.0, message="temperature must be >= 0 (0 is greedy)"),
            tf.debugging.assert_all_finite(temperature, message="temperature must be a finite number"),
            tf.debugging.assert_greater_equal(top_k, 0, message="top_k must be >= 0 (0 is off)"),
            tf.debugging.assert_greater(top_p, 0.0, message="top_p must be in (0, 1] (1 is off)"),
            tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be in (0, 1] (1 is off)"),
        ]
        if self.chats:  # each prompt is a user message, which `model.generate` refuses empty, as `chat` does
            checks.append(self._require_messages(prompts))
        template = self.model.prompt_template
        # The prompts are what the template's one field holds, as for `model.generate`; a translation prompt
        # needs its target, so a translation model's are read as written (its translate signature fills them).
        if template is not None and not self.translates:
            prompts = template.format_prompt_tensor(prompts)  # (B,)
        with tf.control_dependencies(checks):
            prompts = tf.identity(prompts)
        return self._continue(prompts, max_new_tokens, temperature, top_k, top_p, seed)

    def translate(self, texts, target_language):
        model, tokenizer = self.model, self.tokenizer
        checks = [*self._check_batch(texts, "texts"), tf.debugging.assert_equal(
            tf.size(target_language), tf.size(texts),
            message="target_language must hold one value per text (every input is batch-major: one row per text)")]
        with tf.control_dependencies(checks):
            texts, target_language = tf.identity(texts), tf.identity(target_language)
        source_ids = tokenizer.tokenize(texts)  # (B, None)
        lengths = ops.cast(source_ids.row_lengths(), "int32")  # (B,)
        max_new_tokens, room = translation_budget(lengths, model.max_sequence_length, self.max_prompt_tokens, xp=ops)
        # A long source keeps its first `room` tokens, as text, as `CausalLM.translate` cuts it; but a character
        # cut in two is dropped, where Python's U+FFFD (3 bytes for 1 or 2) would push the prompt's tags out.
        cut = tf.strings.unicode_transcode(tokenizer.detokenize(_first_tokens(source_ids, room)), "UTF-8", "UTF-8",
                                           errors="ignore")
        texts = tf.where(lengths > room, cut, texts)
        prompts = model.prompt_template.format_prompt_tensor(texts, target_language)  # (B,): <source>text<target>
        greedy = {"temperature": tf.zeros_like(lengths, tf.float32), "top_k": tf.zeros_like(lengths),
                  "top_p": tf.ones_like(lengths, tf.float32), "seed": tf.zeros_like(lengths)}
        out = self._continue(prompts, ops.minimum(max_new_tokens, self.max_new_tokens_limit), **greedy)
        return {"translation": _strip_whitespace(out["completion"])}

    def chat(self, messages):
        tokenizer = self.tokenizer
        checks = [*self._check_batch(messages, "messages"), self._require_messages(messages)]
        with tf.control_dependencies(checks):
            messages = tf.identity(messages)
        # A message too long for the prompt's room keeps its first tokens, stripped first, as `chat_prompt` cuts it;
        # a character cut in two is dropped (as in `translate`).
        room = self.chat_message_room
        stripped = _strip_whitespace(messages)
        cut = tf.strings.unicode_transcode(tokenizer.detokenize(_first_tokens(tokenizer.tokenize(stripped), room)),
                                           "UTF-8", "UTF-8", errors="ignore")
        too_long = tokenizer.tokenize(messages).row_lengths() > room  # (B,)
        prompts = self.model.prompt_template.format_prompt_tensor(tf.where(too_long, cut, messages))  # (B,)
        out = self._continue(prompts, **self._default_settings(messages))
        return {"replies": _strip_whitespace(out["completion"])}

    def _continue(self, prompts, max_new_tokens, temperature, top_k, top_p, seed):
        """The decode loop after checked prompts (B,): `{"text", "completion"}`, each (B,) valid UTF-8."""
        model, tokenizer = self.model, self.tokenizer
        prompt_ids = self._with_bos(tokenizer.tokenize(prompts))  # (B, None)
        # A Transformer's context holds the prompt and the new tokens: prompts lose their beginning to fit.
        room = ops.full_like(max_new_tokens, self.max_prompt_tokens)  # (B,)
        if model.max_sequence_length is not None:
            room = ops.minimum(room, model.max_sequence_length - max_new_tokens)
        prompt_ids = _last_tokens(prompt_ids, room)
        lengths = ops.cast(prompt_ids.row_lengths(), "int32")  # (B,)
        # The loop runs to the latest end of the batch; each row ends after its own max_new_tokens (`row_limits`).
        token_ids = _dense(prompt_ids, ops.max(lengths + max_new_tokens), model.pad_id)  # (B, S)
        state = prefill_state(model, token_ids, lengths)
        token_ids, ends = self.loop(token_ids, lengths, state, max_new_tokens, temperature, top_k, top_p, seed)
        # The new ids of each row: positions lengths .. ends - 1, less a final stop token.
        positions = ops.arange(ops.shape(token_ids)[1])[None]  # (1, S)
        is_new = (positions >= lengths[:, None]) & (positions < ends[:, None])
        is_stop = ops.any(token_ids[..., None] == ops.array(self.stop_token_ids, "int32"), axis=-1)  # (B, S)
        is_new &= ops.logical_not((positions == ends[:, None] - 1) & is_stop)
        new_ids = tf.ragged.boolean_mask(token_ids, is_new)  # (B, None)
        prompt_text = tokenizer.detokenize(prompt_ids)
        text = tokenizer.detokenize(tf.concat([prompt_ids, new_ids], axis=1))
        # The continuation: the whole text after the prompt's text (as `text_generation.continuation_bytes`).
        prompt_bytes = tf.strings.length(prompt_text)
        starts_with_prompt = tf.equal(tf.strings.substr(text, tf.zeros_like(prompt_bytes), prompt_bytes), prompt_text)
        after_prompt = tf.strings.substr(text, prompt_bytes, tf.strings.length(text) - prompt_bytes)
        completion = tf.where(starts_with_prompt, after_prompt, tokenizer.detokenize(new_ids))
        return {"text": _valid_utf8(text), "completion": _valid_utf8(completion)}

    def score(self, texts):
        model, tokenizer = self.model, self.tokenizer
        # As `CausalLM.score`: each text read as bos, tokens, eos (the eos places the last window as evaluation
        # does), and every prediction counted but the eos.
        token_ids = self._with_bos(tokenizer.tokenize(texts))  # (B, None): bos, tokens
        num_tokens = ops.cast(token_ids.row_lengths(), "int32") - 1
        eos = tf.RaggedTensor.from_tensor(tf.fill([token_ids.nrows(), 1], tf.constant(tokenizer.eos_id, tf.int32)))
        token_ids = tf.concat([token_ids, eos], axis=1)
        lengths = num_tokens + 2
        checks = [
            *self._check_batch(texts, "texts"),
            tf.debugging.assert_less_equal(
                ops.max(num_tokens) + 1, self.max_score_tokens,
                message=f"a text is longer than max_score_tokens={self.max_score_tokens}, the limit of this export",
            ),
        ]
        with tf.control_dependencies(checks):
            dense = _dense(token_ids, ops.max(lengths), model.pad_id)  # (B, T)
        if model.max_sequence_length is None:
            log_likelihoods = _streamed_log_likelihoods(model, dense)
        else:
            log_likelihoods = _windowed_log_likelihoods(model, dense, lengths, model.max_sequence_length)
        counted = ops.arange(ops.shape(dense)[1] - 1)[None] < num_tokens[:, None]  # (B, T - 1)
        return {"log_likelihood": ops.sum(ops.where(counted, log_likelihoods, 0.0), axis=1), "num_tokens": num_tokens}

    def _with_bos(self, ragged):
        bos = tf.fill([ragged.nrows(), 1], tf.constant(self.tokenizer.bos_id, tf.int32))
        return tf.concat([tf.RaggedTensor.from_tensor(bos), ragged], axis=1)

    @staticmethod
    def _require_messages(messages):
        """The check that no user message of `messages` (B,) is empty or only whitespace."""
        return tf.debugging.assert_positive(
            tf.strings.length(_strip_whitespace(messages)),
            message="a message is empty or only whitespace: expected text for the assistant to answer")

    def _check_batch(self, texts, name):
        """The checks of a request's batch of texts: at least one, at most `max_batch_size`."""
        return [
            tf.debugging.assert_positive(tf.size(texts), message=f"{name} is empty: expected at least one text"),
            tf.debugging.assert_less_equal(
                tf.size(texts), self.max_batch_size,
                message=f"{name} holds more texts than max_batch_size={self.max_batch_size}, the limit of this export",
            ),
        ]


def _valid_utf8(texts):
    """`texts` with each invalid UTF-8 sequence replaced by U+FFFD, as Python's `bytes.decode("utf-8", "replace")`
    (`tfllm.utf8.utf8_strings`) replaces it."""
    return tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)


def _strip_whitespace(texts):
    r"""`texts` (valid UTF-8) without the whitespace around them: what Python's `str.strip()` takes off (Unicode
    spaces such as U+3000 too, which `tf.strings.strip` leaves).

    >>> [text.decode() for text in _strip_whitespace(tf.constant(["\u3000 天气\n", "\x1cA B\xa0"])).numpy()]
    ['天气', 'A B']
    """
    space = r"[\t-\r\x1c-\x1f\x85\p{Z}]"  # str.isspace: Zs, Zl, Zp, and the ASCII and C1 separators
    return tf.strings.regex_replace(texts, f"^{space}+|{space}+$", "")


def _first_tokens(ragged, count):
    """The first `count` tokens of each row of a ragged (B, None) tensor."""
    lengths = ragged.row_lengths()
    keep = ops.cast(ops.arange(ops.shape(ragged.flat_values)[0]), "int64") < ops.repeat(
        ragged.row_starts() + ops.minimum(lengths, ops.cast(count, "int64")), lengths
    )
    return tf.ragged.boolean_mask(ragged, tf.RaggedTensor.from_row_lengths(keep, lengths))


def _dense(ragged, width, pad_id):
    """A ragged (B, None) tensor right-padded with `pad_id` to (B, width); `width` is at least its longest row."""
    dense = ragged.to_tensor(default_value=pad_id)
    return tf.pad(dense, [[0, 0], [0, width - tf.shape(dense)[1]]], constant_values=pad_id)


def _last_tokens(ragged, count):
    """The last `count` tokens of each row of a ragged (B, None) tensor."""
    lengths = ragged.row_lengths()
    keep = ops.cast(ops.arange(ops.shape(ragged.flat_values)[0]), "int64") >= ops.repeat(
        ragged.row_starts() + ops.maximum(lengths - ops.cast(count, "int64"), 0), lengths
    )
    return tf.ragged.boolean_mask(ragged, tf.RaggedTensor.from_row_lengths(keep, lengths))


def _windowed_log_likelihoods(model, token_ids, lengths, context):
    """log p(token_ids[:, i] | ...) for i >= 1, (B, T - 1), through the windows of `tfllm.evaluation.scoring`
    (`window_bounds`, the rule of `sliding_windows`) for each row's own length, all rows' windows in one forward
    pass of (B, context) at a time."""
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    stride = default_stride(context)
    padded = tf.pad(token_ids, [[0, 0], [0, context + 1]], constant_values=model.pad_id)  # room for any window
    columns = ops.arange(context)[None]  # (1, C)
    rows = tf.tile(ops.arange(batch_size)[:, None], [1, context])  # (B, C)

    def body(first, result):  # first (B,): each row's first position not yet predicted
        begin, stop = window_bounds(first, lengths, context, stride, xp=ops)  # (B,), (B,)
        window = tf.gather(padded, begin[:, None] + columns, batch_dims=1)  # (B, C): positions begin .. begin + C - 1
        targets = tf.gather(padded, begin[:, None] + 1 + columns, batch_dims=1)  # (B, C)
        values = window_log_likelihoods(model, window, targets)  # (B, C)
        predicted = begin[:, None] + 1 + columns  # (B, C): the position each column predicts
        counted = (predicted >= first[:, None]) & (predicted < stop[:, None])
        indices = tf.stack([rows, ops.clip(predicted - 1, 0, length - 2)], axis=-1)  # (B, C, 2) into (B, T - 1)
        result = tf.tensor_scatter_nd_add(result, indices, ops.where(counted, values, 0.0))
        return ops.where(first < lengths, stop, first), result

    _, result = tf.while_loop(
        lambda first, _: ops.any(first < lengths), body,
        (tf.ones([batch_size], tf.int32), tf.zeros([batch_size, length - 1], tf.float32)),
    )
    return result


def _streamed_log_likelihoods(model, token_ids, chunk_length=CHUNK_LENGTH):
    """log p(token_ids[:, i] | ...) for i >= 1, (B, T - 1), for a model without a context limit: the whole text read
    chunk by chunk with the decode state carried along (`tfllm.evaluation.scoring.decode_log_likelihoods`)."""
    batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
    chunks = (length - 1 + chunk_length - 1) // chunk_length
    padded = tf.pad(token_ids, [[0, 0], [0, chunks * chunk_length + 1 - length]], constant_values=model.pad_id)
    state = model.initial_state(batch_size, chunks * chunk_length)
    result = tf.TensorArray(tf.float32, size=chunks)

    def body(chunk, state, result):
        begin = chunk * chunk_length
        values, state = decode_log_likelihoods(  # (B, C)
            model, padded[:, begin : begin + chunk_length], padded[:, begin + 1 : begin + chunk_length + 1], state,
            begin,
        )
        return chunk + 1, state, result.write(chunk, values)

    _, _, result = tf.while_loop(lambda chunk, *_: chunk < chunks, body, (tf.constant(0), state, result))
    values = tf.transpose(result.stack(), [1, 0, 2])  # (B, chunks, C)
    return tf.reshape(values, [batch_size, -1])[:, : length - 1]
