"""`CausalLM`: what every tfllm language model shares, whatever runs inside it.

A causal language model maps token ids (B, T) to next-token logits (B, T, V). Besides `call`, each architecture
implements the decode contract, which is all that generation, scoring, evaluation and export ever use:

- `initial_state(batch_size, max_length)`: the state before any token (RNN states, or empty key/value caches);
- `decode(token_ids, state, index)`: reads token_ids (B, T_new) at positions index .. index + T_new - 1 and returns
  the logits (B, T_new, V) and the new state.

Reading a prompt is one `decode` call over all of it ("prefill"); generating is one `decode` call per new token.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfllm.checks import require_positive_int
from tfllm.generation.decode_loop import decode_loop
from tfllm.generation.samplers import get_sampler
from tfllm.models.metrics import Perplexity
from tfllm.models.schedules import WarmupCosineDecay


class CausalLM(keras.Model):
    """Base class of `SimpleRNNLM`, `LSTMLM` and `TransformerLM`.

    Subclasses build their layers in `__init__` and implement `hidden_states`, `logits`, `initial_state` and
    `decode`. The base class gives them `call`, a `compile()` with working defaults, `generate`, `score`, and the
    saving of an attached tokenizer.
    """

    def __init__(self, vocab_size, tokenizer=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(tokenizer, dict):
            tokenizer = keras.saving.deserialize_keras_object(tokenizer)
        self.vocab_size = require_positive_int("vocab_size", vocab_size)
        if tokenizer is not None and tokenizer.vocab_size > self.vocab_size:
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the tokenizer's vocabulary ({tokenizer.vocab_size} ids)."
            )
        self.tokenizer = tokenizer
        self._generate_functions = {}
        self._default_compile_arguments = None  # what compile() was given, when it made the defaults itself

    # The architecture: subclasses implement these four.

    def hidden_states(self, token_ids, training=None):
        """The last layer's representation of every position, (B, T) -> (B, T, D), before the output logits."""
        raise NotImplementedError

    def logits(self, hidden_states):
        """Next-token logits (B, T, V), float32, from hidden states (B, T, D)."""
        raise NotImplementedError

    def initial_state(self, batch_size, max_length):
        """The decode state before any token has been read."""
        raise NotImplementedError

    def decode(self, token_ids, state, index):
        """Reads token_ids (B, T_new) at positions index .. index + T_new - 1: returns (logits (B, T_new, V), state)."""
        raise NotImplementedError

    @property
    def max_sequence_length(self):
        """The longest sequence the model can read (None: any length, as for RNNs)."""
        return None

    def training_flops_per_token(self, sequence_length):
        """Floating-point operations to train on one token (forward and backward), for throughput and MFU."""
        raise NotImplementedError

    # What the base class gives.

    def call(self, token_ids, training=None):
        return self.logits(self.hidden_states(token_ids, training=training))  # (B, T, V)

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        metrics="auto",
        learning_rate=3e-3,
        warmup_steps=100,
        decay_steps=10_000,
        weight_decay=0.1,
        global_clipnorm=1.0,
        gradient_accumulation_steps=None,
        jit_compile="auto",
        **kwargs,
    ):
        """Compiles with defaults that train a language model well; every one can be overridden.

        Defaults: AdamW (betas 0.9 / 0.95, `weight_decay` on kernels and embeddings, none on biases and layer
        norms) following `WarmupCosineDecay(learning_rate, warmup_steps, decay_steps)`, gradients clipped to a
        global norm of `global_clipnorm`; sparse cross-entropy from logits that ignores `pad_id` targets; the
        `Perplexity` metric; `jit_compile="auto"` (XLA on accelerators, the plain graph on CPUs, which measures
        faster there). Under `mixed_float16`, Keras adds loss scaling. With `gradient_accumulation_steps`, the
        schedule counts batches, not updates (Keras passes it the batch count).

        A model compiled with the defaults saves how it was compiled in its `.keras` file and is compiled the same
        way when loaded.
        """
        pad_id = self.pad_id
        defaults_only = optimizer == "auto" and loss == "auto" and metrics == "auto" and not kwargs
        self._default_compile_arguments = None
        if defaults_only:
            self._default_compile_arguments = {
                "learning_rate": learning_rate,
                "warmup_steps": warmup_steps,
                "decay_steps": decay_steps,
                "weight_decay": weight_decay,
                "global_clipnorm": global_clipnorm,
                "gradient_accumulation_steps": gradient_accumulation_steps,
                "jit_compile": jit_compile,
            }
        if gradient_accumulation_steps == 1:
            gradient_accumulation_steps = None  # Keras accepts only 2 or more
        if optimizer == "auto":
            schedule = WarmupCosineDecay(learning_rate, warmup_steps, max(decay_steps, warmup_steps + 1))
            optimizer = keras.optimizers.AdamW(
                learning_rate=schedule,
                weight_decay=weight_decay,
                beta_2=0.95,
                global_clipnorm=global_clipnorm,
                gradient_accumulation_steps=gradient_accumulation_steps,
            )
            optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        if loss == "auto":
            # The mean over the tokens that count: padding and zero-weight tokens (an SFT prompt) are left out of
            # the denominator too, so the loss is the mean per predicted token.
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=pad_id, reduction="mean_with_sample_weight"
            )
        weighted_metrics = kwargs.pop("weighted_metrics", None)
        if metrics == "auto":
            metrics = None
            # Weighted, so that sample weights (SFT's completion mask) apply to it as they do to the loss.
            weighted_metrics = [Perplexity(pad_id=pad_id)]
        super().compile(
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            weighted_metrics=weighted_metrics,
            jit_compile=jit_compile,
            **kwargs,
        )

    @property
    def pad_id(self):
        return 0 if self.tokenizer is None else self.tokenizer.pad_id

    def generate(
        self,
        prompts,
        max_new_tokens=64,
        sampler="greedy",
        temperature=1.0,
        top_k=None,
        top_p=None,
        seed=None,
        stop_token_ids=None,
        strip_prompt=False,
    ):
        """Continues each prompt by up to `max_new_tokens` tokens.

        Strings in (the tokenizer turns them into ids, after a bos) give strings out; token ids in (a list of
        lists, a (B, T) array or a RaggedTensor) give lists of token ids out. The output holds the prompt first
        unless `strip_prompt`. Generation stops per row at a stop token (by default the tokenizer's eos, which is
        not included in the output). Prompts too long for a Transformer's context lose their beginning, with a
        warning.

        Args:
            prompts: a string, a list of strings, or token ids.
            max_new_tokens: at most this many new tokens per prompt.
            sampler: "greedy", "random", "top_k", "top_p", or a `tfllm.generation.Sampler`.
            temperature: divides the logits before a random draw; 0 means greedy.
            top_k, top_p: limit the draw to the k most likely tokens, or to the nucleus of probability p; setting
                either picks that sampler.
            seed: the same seed gives the same text.
            stop_token_ids: the ids that end a row; None means the tokenizer's eos.
            strip_prompt: return only the new text.
        """
        require_positive_int("max_new_tokens", max_new_tokens)
        chosen = get_sampler(sampler, temperature, top_k, top_p)
        single = isinstance(prompts, (str, bytes))
        texts_in = single or (isinstance(prompts, (list, tuple)) and prompts and isinstance(prompts[0], (str, bytes)))
        if isinstance(prompts, (list, tuple)) and not prompts:
            raise ValueError("prompts is empty: expected at least one prompt.")
        if texts_in:
            token_lists = self._prompt_ids([prompts] if single else list(prompts))
        else:
            token_lists = _as_token_lists(prompts)
        if stop_token_ids is None:
            stop_token_ids = [] if self.tokenizer is None else [self.tokenizer.eos_id]
        token_lists = self._fit_context(token_lists, max_new_tokens)
        lengths = [len(ids) for ids in token_lists]
        if min(lengths) < 1:
            raise ValueError("a prompt is empty: every prompt needs at least one token (text prompts get a bos).")
        total = max(lengths) + max_new_tokens
        padded = np.full((len(token_lists), total), self.pad_id, np.int32)
        for row, ids in enumerate(token_lists):
            padded[row, : len(ids)] = ids
        generate_function = self._generate_function(chosen, tuple(stop_token_ids))
        seed = np.random.randint(0, 2**31 - 1) if seed is None else seed
        token_ids, ends = generate_function(
            tf.constant(padded), tf.constant(lengths, tf.int32), tf.constant(seed, tf.int32), tf.constant(max_new_tokens)
        )
        token_ids, ends = np.asarray(token_ids), np.asarray(ends)
        outputs = []
        for row, length in enumerate(lengths):
            row_ids = token_ids[row, : ends[row]].tolist()
            if len(row_ids) > length and row_ids[-1] in stop_token_ids:
                row_ids = row_ids[:-1]  # the stop token is not part of the text
            outputs.append(row_ids[length:] if strip_prompt else row_ids)
        if texts_in:
            outputs = [text.decode("utf-8", errors="replace") for text in self._detokenize_lists(outputs)]
        return outputs[0] if single else outputs

    def score(self, texts):
        """Log-likelihood (natural log) of each text under the model, and its number of tokens.

        Each text is read after a bos; every token of the text is predicted once, and the eos that would end it
        is not counted. Texts longer than a Transformer's context are read through a sliding window
        (`tfllm.training.evaluation` gives the same for whole corpora).

        Returns:
            `(log_likelihood, num_tokens)`: NumPy arrays (B,) float32 and (B,) int32.
        """
        if self.tokenizer is None:
            raise ValueError("score needs a tokenizer: attach one with tokenizer=... when making the model.")
        single = isinstance(texts, (str, bytes))
        token_lists = self._prompt_ids([texts] if single else list(texts))
        log_likelihoods, counts = [], []
        for ids in token_lists:
            log_likelihood = _sequence_log_likelihood(self, np.asarray(ids, np.int32))
            log_likelihoods.append(log_likelihood)
            counts.append(len(ids) - 1)
        return np.asarray(log_likelihoods, np.float32), np.asarray(counts, np.int32)

    def _prompt_ids(self, texts):
        if self.tokenizer is None:
            raise ValueError("text prompts need a tokenizer: attach one with tokenizer=..., or pass token ids.")
        ragged = self.tokenizer.tokenize(tf.constant([t if isinstance(t, bytes) else t.encode() for t in texts]))
        return [[self.tokenizer.bos_id] + ids for ids in ragged.to_list()]

    def _detokenize_lists(self, token_lists):
        ragged = tf.ragged.constant(token_lists, dtype=tf.int32, ragged_rank=1) if any(token_lists) else None
        if ragged is None:
            return [b"" for _ in token_lists]
        return self.tokenizer.detokenize(ragged).numpy().tolist()

    def _fit_context(self, token_lists, max_new_tokens):
        limit = self.max_sequence_length
        if limit is None:
            return token_lists
        if max_new_tokens >= limit:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} leaves no room for a prompt in max_sequence_length={limit}."
            )
        room = limit - max_new_tokens
        if any(len(ids) > room for ids in token_lists):
            warnings.warn(
                f"prompts longer than {room} tokens (max_sequence_length={limit} - max_new_tokens="
                f"{max_new_tokens}) lose their beginning.",
                stacklevel=3,
            )
        return [ids[-room:] for ids in token_lists]

    def _generate_function(self, sampler, stop_token_ids):
        """The compiled generation for these settings, traced once for any batch size and length, then reused."""
        key = (type(sampler).__name__, tuple(sorted(vars(sampler).items())), stop_token_ids)
        if key not in self._generate_functions:

            @tf.function(
                input_signature=[
                    tf.TensorSpec([None, None], tf.int32),  # token_ids (B, S)
                    tf.TensorSpec([None], tf.int32),  # prompt_lengths (B,)
                    tf.TensorSpec([], tf.int32),  # seed
                    tf.TensorSpec([], tf.int32),  # max_new_tokens
                ]
            )
            def generate_function(token_ids, prompt_lengths, seed, max_new_tokens):
                batch_size, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
                start = ops.min(prompt_lengths)
                state = self.initial_state(batch_size, length)
                # Prefill: read the positions before `start - 1` in one call (none when a prompt is a lone bos).
                state = ops.cond(
                    start > 1, lambda: self.decode(token_ids[:, : start - 1], state, 0)[1], lambda: state
                )
                return decode_loop(
                    self.decode,
                    token_ids,
                    prompt_lengths,
                    state,
                    start,
                    sampler,
                    seed,
                    max_new_tokens,
                    stop_token_ids,
                    self.pad_id,
                )

            self._generate_functions[key] = generate_function
        return self._generate_functions[key]

    def get_config(self):
        config = {**super().get_config(), "vocab_size": self.vocab_size}
        if self.tokenizer is not None:
            config["tokenizer"] = keras.saving.serialize_keras_object(self.tokenizer)
        return config

    def get_compile_config(self):
        if self._default_compile_arguments is not None:
            return {"tfllm_defaults": self._default_compile_arguments}
        return super().get_compile_config()

    def compile_from_config(self, config):
        """Recompiles a loaded model as it was compiled when saved, so its optimizer state can be restored."""
        if "tfllm_defaults" not in config:
            return super().compile_from_config(config)
        self.compile(**config["tfllm_defaults"])
        if self.built:
            self.optimizer.build(self.trainable_variables)


def _as_token_lists(prompts):
    if isinstance(prompts, tf.RaggedTensor):
        return prompts.to_list()
    if isinstance(prompts, (tf.Tensor, np.ndarray)):
        return np.asarray(prompts).tolist()
    return [list(map(int, ids)) for ids in prompts]


def _sequence_log_likelihood(model, ids):
    """Sum of log p(ids[i] | ids[:i]) for i >= 1; beyond a Transformer's context, windows slide by half a context."""
    limit = model.max_sequence_length or len(ids)
    stride = max(limit // 2, 1)
    total = 0.0
    predicted = 1  # the first position whose probability is not yet counted
    while predicted < len(ids):
        stop = min(len(ids), predicted + stride if predicted > 1 else limit + 1)  # positions predicted this pass
        begin = max(0, stop - 1 - limit)  # the window reads ids[begin : stop - 1], at most `limit` tokens
        log_probs = tf.nn.log_softmax(model(ids[None, begin : stop - 1]))[0].numpy()  # (W, V)
        targets = ids[predicted:stop]
        total += float(np.sum(log_probs[np.arange(predicted, stop) - 1 - begin, targets]))
        predicted = stop
    return total
