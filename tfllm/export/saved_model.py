"""A SavedModel that serves strings in and strings out: tokenizer, decode loop and sampler all inside the graph.

The export holds three signatures, callable from `tf.saved_model.load` in a process that has only tensorflow and
tensorflow-text (for the tokenizer ops), from TensorFlow Serving, or from any language with TensorFlow bindings:

- `generate`: `prompts` string[B], `max_new_tokens` int32[], `temperature` float32[] (0 = greedy), `top_k` int32[]
  (0 = off), `top_p` float32[] (1.0 = off), `seed` int32[] -> `{"text": string[B], "completion": string[B]}`:
  `text` is the prompt and its continuation (what `CausalLM.generate` returns), `completion` the continuation
  alone (`strip_prompt=True`). Each row stops at the tokenizer's eos.
- `score`: `texts` string[B] -> `{"log_likelihood": float32[B], "num_tokens": int32[B]}`, as `CausalLM.score`.
- `serving_default`: `token_ids` int32[B, T] -> `{"logits": float32[B, T, V]}`.

Limits fixed at export bound the work of a request: `max_new_tokens` at most `max_new_tokens_limit`, at most
`max_batch_size` texts, prompts of at most `max_prompt_tokens` tokens (longer ones lose their beginning, as in
`CausalLM.generate`) and texts to score of at most `max_score_tokens` (longer ones are refused). A request outside them fails with
an `InvalidArgumentError` that names the input and the limit, before any decoding. The limits are stored in the
export as scalars (`loaded.max_new_tokens_limit`, ...).

Decoding runs as `CausalLM.generate` runs it: a prefill, then the compiled loop, under XLA where `generate` would
use it (`tfllm.generation.text_generation.use_xla`), with a `tfllm.generation.RequestSampler` that draws what
`generate`'s samplers draw for the same settings and seed. So the loaded signature is as fast as `model.generate`
and gives the same text.
"""

import os

import keras
import tensorflow as tf
from keras import ops

from tfllm.checks import require_positive_int
from tfllm.evaluation.scoring import (
    CHUNK_LENGTH,
    decode_log_likelihoods,
    default_stride,
    window_bounds,
    window_log_likelihoods,
)
from tfllm.generation import RequestSampler, decode_loop
from tfllm.generation.text_generation import prefill_state, use_xla
from tfllm.models import CausalLM

DEFAULT_MAX_NEW_TOKENS = 256
DEFAULT_MAX_PROMPT_TOKENS = 1024  # for models without a context limit (RNNs)


def export_saved_model(model, path, max_new_tokens_limit=None, max_prompt_tokens=None, max_score_tokens=4096,
                       max_batch_size=64, verbose=False):
    """Writes `model` (a `CausalLM` with a tokenizer) as a SavedModel with `generate`, `score` and `serving_default`.

    Args:
        model: a `tfllm.models.CausalLM` with its tokenizer attached.
        path: the SavedModel directory to write (created; an existing non-empty directory is refused).
        max_new_tokens_limit: the most new tokens a request may ask for. Default: 256, or half a Transformer's
            context if that is less.
        max_prompt_tokens: the longest prompt, in tokens (its bos included); longer prompts lose their beginning.
            Default: a Transformer's context minus one (what the shortest request leaves room for); 1024 for RNNs.
        max_score_tokens: the longest text `score` reads, in tokens (a Transformer reads it through sliding
            windows); longer texts are refused.
        max_batch_size: the most texts per request.
        verbose: print the signatures written.

    Returns:
        `path`.

    The export loads in any process with tensorflow and tensorflow-text (`import tensorflow_text` registers the
    tokenizer ops): `served = tf.saved_model.load(path)`, then `served.signatures["generate"](...)`.

    Example (a tiny untrained model; the export's greedy text is the model's):

    >>> import tempfile
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> keras.utils.set_random_seed(0)
    >>> model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())
    >>> path = export_saved_model(model, os.path.join(tempfile.mkdtemp(), "exported"))
    >>> served = tf.saved_model.load(path)
    >>> out = served.signatures["generate"](prompts=tf.constant(["In the beginning"]), max_new_tokens=tf.constant(4),
    ...                                     temperature=tf.constant(0.0), top_k=tf.constant(0), top_p=tf.constant(1.0),
    ...                                     seed=tf.constant(0))
    >>> sorted(out), out["text"].shape
    (['completion', 'text'], TensorShape([1]))
    >>> out["text"].numpy()[0].decode("utf-8", "replace") == model.generate("In the beginning", max_new_tokens=4)
    True
    >>> int(served.signatures["score"](texts=tf.constant(["Amen."]))["num_tokens"][0]), int(served.max_batch_size)
    (5, 64)
    """
    if not isinstance(model, CausalLM):
        raise ValueError(f"model is a {type(model).__name__}: expected a tfllm.models.CausalLM")
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer: an export serves strings, so make it with tokenizer=...")
    template = model.prompt_template
    if template is not None and template.kind == "fields" and len(template.prompt_fields) != 1:
        raise ValueError(f"the model's prompt template {template.prompt!r} has the fields "
                         f"{list(template.prompt_fields)}: an export fills one field from each prompt string")
    path = os.fspath(path)
    if os.path.isdir(path) and os.listdir(path):
        raise ValueError(f"{path} exists and is not empty: choose a new directory for the export")
    limits = _limits(model, max_new_tokens_limit, max_prompt_tokens, max_score_tokens, max_batch_size)
    if not model.built:
        model(ops.zeros((1, 2), "int32"))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(model.tokenizer)
    endpoints = _Endpoints(model, **limits)
    archive.add_endpoint(
        "generate",
        endpoints.generate,
        input_signature=[
            tf.TensorSpec([None], tf.string, name="prompts"),
            tf.TensorSpec([], tf.int32, name="max_new_tokens"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int32, name="top_k"),
            tf.TensorSpec([], tf.float32, name="top_p"),
            tf.TensorSpec([], tf.int32, name="seed"),
        ],
    )
    archive.add_endpoint("score", endpoints.score, input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    archive.add_endpoint(
        "serving_default", endpoints.logits, input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")]
    )
    for name, value in limits.items():
        setattr(archive._tf_trackable, name, tf.Variable(value, trainable=False, dtype=tf.int32, name=name))
    archive.write_out(path, verbose=verbose)
    return path


def _limits(model, max_new_tokens_limit, max_prompt_tokens, max_score_tokens, max_batch_size):
    context = model.max_sequence_length
    if max_new_tokens_limit is None:
        max_new_tokens_limit = DEFAULT_MAX_NEW_TOKENS if context is None else min(DEFAULT_MAX_NEW_TOKENS, context // 2)
    max_new_tokens_limit = require_positive_int("max_new_tokens_limit", max_new_tokens_limit)
    if context is not None and max_new_tokens_limit >= context:
        raise ValueError(
            f"max_new_tokens_limit={max_new_tokens_limit} leaves no room for a prompt in the model's "
            f"max_sequence_length={context}: expected fewer"
        )
    if max_prompt_tokens is None:
        max_prompt_tokens = DEFAULT_MAX_PROMPT_TOKENS if context is None else context - 1
    return {
        "max_new_tokens_limit": max_new_tokens_limit,
        "max_prompt_tokens": require_positive_int("max_prompt_tokens", max_prompt_tokens),
        "max_score_tokens": require_positive_int("max_score_tokens", max_score_tokens),
        "max_batch_size": require_positive_int("max_batch_size", max_batch_size),
    }


class _Endpoints:
    """The functions behind the signatures, closed over the model (whose variables the archive tracks)."""

    def __init__(self, model, max_new_tokens_limit, max_prompt_tokens, max_score_tokens, max_batch_size):
        self.model = model
        self.tokenizer = model.tokenizer
        self.max_new_tokens_limit = max_new_tokens_limit
        self.max_prompt_tokens = max_prompt_tokens
        self.max_score_tokens = max_score_tokens
        self.max_batch_size = max_batch_size
        self.stop_token_ids = (model.tokenizer.eos_id,)
        @tf.function(jit_compile=use_xla("auto", RequestSampler(0.0, 0, 1.0)), autograph=False)
        def loop(token_ids, prompt_lengths, state, seed, max_new_tokens, temperature, top_k, top_p):
            return decode_loop(
                model.decode, token_ids, prompt_lengths, state, ops.min(prompt_lengths),
                RequestSampler(temperature, top_k, top_p), seed, max_new_tokens, self.stop_token_ids, model.pad_id,
            )

        self.loop = loop

    def generate(self, prompts, max_new_tokens, temperature, top_k, top_p, seed):
        model, tokenizer = self.model, self.tokenizer
        checks = [
            self._check_batch(prompts, "prompts"),
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
        template = model.prompt_template
        if template is not None:  # the prompts are what the template's one field holds, as for `model.generate`
            prompts = template.format_prompt_tensor(prompts)  # (B,)
        with tf.control_dependencies(checks):
            prompt_ids = self._with_bos(tokenizer.tokenize(prompts))  # (B, None)
        # A Transformer's context holds the prompt and the new tokens: prompts lose their beginning to fit.
        room = self.max_prompt_tokens
        if model.max_sequence_length is not None:
            room = ops.minimum(room, model.max_sequence_length - max_new_tokens)
        prompt_ids = _last_tokens(prompt_ids, room)
        lengths = ops.cast(prompt_ids.row_lengths(), "int32")  # (B,)
        total = ops.max(lengths) + max_new_tokens
        token_ids = _dense(prompt_ids, total, model.pad_id)  # (B, S)
        state = prefill_state(model, token_ids, lengths)
        token_ids, ends = self.loop(token_ids, lengths, state, seed, max_new_tokens, temperature, top_k, top_p)
        # The new ids of each row: positions lengths .. ends - 1, less a final eos.
        positions = ops.arange(ops.shape(token_ids)[1])[None]  # (1, S)
        is_new = (positions >= lengths[:, None]) & (positions < ends[:, None])
        is_new &= ops.logical_not((positions == ends[:, None] - 1) & (token_ids == tokenizer.eos_id))
        new_ids = tf.ragged.boolean_mask(token_ids, is_new)  # (B, None)
        prompt_text = tokenizer.detokenize(prompt_ids)
        text = tokenizer.detokenize(tf.concat([prompt_ids, new_ids], axis=1))
        # The continuation: the whole text after the prompt's text (as `text_generation.continuation_bytes`).
        prompt_bytes = tf.strings.length(prompt_text)
        starts_with_prompt = tf.equal(tf.strings.substr(text, tf.zeros_like(prompt_bytes), prompt_bytes), prompt_text)
        after_prompt = tf.strings.substr(text, prompt_bytes, tf.strings.length(text) - prompt_bytes)
        completion = tf.where(starts_with_prompt, after_prompt, tokenizer.detokenize(new_ids))
        return {"text": text, "completion": completion}

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
            self._check_batch(texts, "texts"),
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

    def logits(self, token_ids):
        return {"logits": ops.cast(self.model(token_ids), "float32")}

    def _with_bos(self, ragged):
        bos = tf.fill([ragged.nrows(), 1], tf.constant(self.tokenizer.bos_id, tf.int32))
        return tf.concat([tf.RaggedTensor.from_tensor(bos), ragged], axis=1)

    def _check_batch(self, texts, name):
        return tf.debugging.assert_less_equal(
            tf.size(texts), self.max_batch_size,
            message=f"{name} holds more texts than max_batch_size={self.max_batch_size}, the limit of this export",
        )


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
