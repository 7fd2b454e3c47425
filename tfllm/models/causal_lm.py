"""`CausalLM`: what every tfllm language model shares, whatever runs inside it.

A causal language model maps token ids (B, T) to next-token logits (B, T, V). Besides `call`, each architecture
implements the decode contract, which is all that generation, scoring, evaluation and export ever use:

- `initial_state(batch_size, max_length)`: the state before any token (RNN states, or empty key/value caches);
- `decode(token_ids, state, index)`: reads token_ids (B, T_new) at positions index .. index + T_new - 1 and returns
  the logits (B, T_new, V) and the new state.

Reading a prompt is one `decode` call over all of it ("prefill"); generating is one `decode` call per new token.
"""

import collections.abc

import keras
import numpy as np
import tensorflow as tf
from keras.src.utils import tracking as keras_tracking  # private: the scope Keras's compile sets its tracker in

from tfllm.checks import require_positive_int
from tfllm.data.templates import model_translation_template, template_from_config, wrap_prompts
from tfllm.defaults import MAX_NEW_TOKENS
from tfllm.evaluation import scoring
from tfllm.generation import chat as chat_generation
from tfllm.generation import text_generation, translation
from tfllm.layers.kernel_placement import accelerators
from tfllm.models import lora
from tfllm.models.build_before_tracing import BuildBeforeTracing
from tfllm.models.fused_adamw import FusedAdamW
from tfllm.models.metrics import Perplexity, TokenWeightedLoss
from tfllm.models.multi_worker import MultiWorkerFit
from tfllm.models.schedules import WarmupCosineDecay
from tfllm.models.token_cross_entropy import SharedCrossEntropy


class CausalLM(MultiWorkerFit, BuildBeforeTracing, keras.Model):
    """Base class of `SimpleRNNLM`, `LSTMLM` and `TransformerLM`.

    Subclasses build their layers in `__init__` and implement `hidden_states`, `logits`, `initial_state` and
    `decode`. The base class gives them `call`, a `compile()` with working defaults, `generate`, `score`, and the
    saving of an attached tokenizer and prompt template (`tfllm.data.PromptTemplate` or `ChatTemplate`: what
    `generate` wraps string prompts in, set by fine-tuning recipes or `model.prompt_template = ...`).

    Example (the decode contract: a prefill, then one token, gives the logits of one full forward pass):

    >>> from tfllm.models import TransformerLM
    >>> keras.utils.set_random_seed(0)
    >>> model = TransformerLM(259, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
    >>> isinstance(model, CausalLM), model.max_sequence_length
    (True, 16)
    >>> token_ids = keras.ops.convert_to_tensor([[1, 72, 105, 33]], "int32")  # (B, T)
    >>> state = model.initial_state(batch_size=1, max_length=8)  # empty key/value caches
    >>> logits, state = model.decode(token_ids[:, :3], state, index=0)  # the prompt: positions 0 .. 2
    >>> last, state = model.decode(token_ids[:, 3:], state, index=3)  # one more token, on the cache
    >>> tuple(logits.shape), tuple(last.shape)  # (B, T_new, V)
    ((1, 3, 259), (1, 1, 259))
    >>> np.allclose(last[:, 0], model(token_ids)[:, 3], atol=1e-5)
    True
    """

    def __init__(self, vocab_size, tokenizer=None, prompt_template=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(tokenizer, dict):
            tokenizer = keras.saving.deserialize_keras_object(tokenizer)
        self.vocab_size = require_positive_int("vocab_size", vocab_size)
        if tokenizer is not None and tokenizer.vocab_size > self.vocab_size:
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the tokenizer's vocabulary ({tokenizer.vocab_size} ids)."
            )
        self.tokenizer = tokenizer
        self.prompt_template = template_from_config(prompt_template)
        self._default_compile_arguments = None  # what compile() was given, when it made the defaults itself
        self._shared_cross_entropy = None  # the default loss and metric, from one cross-entropy

    # The architecture: subclasses implement these five, and override `max_sequence_length` when their context is
    # bounded.

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

    def _probe_target_shape(self):
        return (1, self._probe_length())  # next-token ids (B, T)

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

        Defaults: AdamW (`FusedAdamW`, Keras's with its update in one kernel; betas 0.9 / 0.95, `weight_decay` on
        kernels and embeddings, none on biases and layer norms) following `WarmupCosineDecay(learning_rate,
        warmup_steps, decay_steps)`, gradients clipped to a global norm of `global_clipnorm`; sparse cross-entropy from
        logits that ignores the tokenizer's pad targets, logged as its mean per predicted token over the epoch
        (`TokenWeightedLoss`, where Keras weighs batches by rows); the `Perplexity` metric, fed the loss's own
        per-token cross-entropies (computed once for both: `tfllm.models.token_cross_entropy`);
        `jit_compile="auto"`: Keras's rule (XLA on accelerators, the plain graph on CPUs and under `tf.distribute`
        strategies), except for a model whose whole step measures as fast or faster under XLA on CPUs
        (`xla_step_on_cpus`: the recurrent models in float32), which gets XLA on a machine without GPUs or TPUs,
        outside a strategy's scope. Under `mixed_float16`, Keras adds
        loss scaling. With `gradient_accumulation_steps`, the schedule counts batches, not updates (Keras passes it the
        batch count).

        A model compiled with the defaults saves how it was compiled in its `.keras` file and is compiled the same
        way when loaded.
        """
        defaults_only = optimizer == "auto" and loss == "auto" and metrics == "auto" and not kwargs
        self._default_compile_arguments = None
        if defaults_only:  # saved with the model, which is compiled the same way when loaded
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
        if jit_compile == "auto" and self._xla_by_default(kwargs.get("run_eagerly", False)):
            jit_compile = True
        self._schedule = None
        if optimizer == "auto":
            optimizer = self._default_optimizer(learning_rate, warmup_steps, decay_steps, weight_decay,
                                                global_clipnorm, gradient_accumulation_steps)
        default_loss = loss == "auto"
        if default_loss:
            loss = self._default_loss()
        weighted_metrics = kwargs.pop("weighted_metrics", None)
        self._shared_cross_entropy = None
        if metrics == "auto":
            metrics, weighted_metrics = None, [self._default_perplexity(shares_the_loss=default_loss)]
        super().compile(
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            weighted_metrics=weighted_metrics,
            jit_compile=jit_compile,
            **kwargs,
        )
        if self._shared_cross_entropy is not None:  # the logged loss, a mean per token as the loss is
            # Set as Keras's `compile` sets its own tracker: not tracked as a new part of a built model.
            with keras_tracking.DotNotTrackScope():
                self._loss_tracker = TokenWeightedLoss(self._shared_cross_entropy)

    def _default_optimizer(self, learning_rate, warmup_steps, decay_steps, weight_decay, global_clipnorm,
                           gradient_accumulation_steps):
        """`compile()`'s AdamW on a warmup-cosine schedule (kept as `self._schedule`), with no weight decay on
        biases and layer norms."""
        schedule = self._schedule = WarmupCosineDecay(learning_rate, warmup_steps, max(decay_steps, warmup_steps + 1))
        optimizer = FusedAdamW(
            learning_rate=schedule,
            weight_decay=weight_decay,
            beta_2=0.95,
            global_clipnorm=global_clipnorm,
            gradient_accumulation_steps=gradient_accumulation_steps,
        )
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer

    def _default_loss(self):
        """`compile()`'s sparse cross-entropy from logits, the mean over the tokens that count: padding and
        zero-weight tokens (an SFT prompt) are left out of the denominator too, so the loss is the mean per
        predicted token."""
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=self.ignored_target_id, reduction="mean_with_sample_weight"
        )

    def _default_perplexity(self, shares_the_loss):
        """`compile()`'s `Perplexity`, a weighted metric so that sample weights (SFT's completion mask) apply to it
        as they do to the loss. `shares_the_loss`: it and the default loss read one computation of the
        cross-entropies (kept as `self._shared_cross_entropy`)."""
        perplexity = Perplexity(pad_id=self.ignored_target_id)
        if shares_the_loss:
            self._shared_cross_entropy = perplexity.shared_cross_entropy = SharedCrossEntropy(self.ignored_target_id)
        return perplexity

    def xla_step_on_cpus(self):
        """Whether this model's training step runs as fast or faster when XLA compiles it whole than in the plain
        graph on CPUs, so that `compile(jit_compile="auto")` picks XLA on CPU-only machines too. False here: the
        Transformer's plain-graph step runs its attention, GELU and layer norms as XLA-compiled kernels of their own
        and its other products on the CPU's fastest library. On the Intel Xeon of benchmarks/jit_compile_choice.py,
        its default step ran no faster under XLA in float32 (0.87x and 0.94x by median rounds in two runs, 1.01x
        and 0.98x by per-round ratios) and at half the speed in mixed_bfloat16."""
        return False

    def _xla_by_default(self, run_eagerly):
        """Whether `jit_compile="auto"` means XLA for this model where Keras's rule picks the plain graph: on a
        machine without GPUs or TPUs, outside any `tf.distribute` strategy's scope, for a model whose
        `xla_step_on_cpus()`."""
        return not run_eagerly and not accelerators() and not tf.distribute.has_strategy() and self.xla_step_on_cpus()

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """With `compile()`'s default loss and metric, the loss from cross-entropies computed once for both (see
        `tfllm.models.token_cross_entropy`); otherwise Keras's compiled loss."""
        shared = self._shared_cross_entropy
        if shared is None or self.losses or not shared.applies_to(y, sample_weight):
            return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        return shared.loss(y, y_pred, sample_weight)

    def set_decay_steps(self, decay_steps):
        """Moves the end of the default schedule's cosine to `decay_steps` without compiling again: the train step
        already traced (and XLA-compiled) reads it from a variable. For a model compiled with the default optimizer.

        >>> from tfllm.models import LSTMLM
        >>> model = LSTMLM(259, hidden_dim=8)
        >>> model.compile(decay_steps=1000)
        >>> model.set_decay_steps(500)
        >>> model.optimizer.get_config()["learning_rate"]["config"]["decay_steps"]
        500
        """
        if getattr(self, "_schedule", None) is None:
            raise ValueError("set_decay_steps needs a model compiled with the default optimizer (`compile()` with "
                             "optimizer='auto'); this one has its own.")
        self._schedule.set_decay_steps(max(decay_steps, self._schedule.warmup_steps + 1))
        if self._default_compile_arguments is not None:
            self._default_compile_arguments["decay_steps"] = decay_steps

    def enable_lora(self, rank, alpha=None):
        """Adds a LoRA adapter of `rank` (scale `alpha / rank`; alpha None means rank) to the attention and MLP
        projections of every Transformer block and freezes every other weight: only the adapter trains. Compile the
        model afterwards. `tfllm.models.lora` saves and loads adapters and merges them (an export merges them).

        >>> from tfllm.models import TransformerLM
        >>> model = TransformerLM(259, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
        ...                       max_sequence_length=8)
        >>> model.enable_lora(rank=2, alpha=4) is model, len(model.trainable_weights)  # A and B of 6 projections
        (True, 12)
        """
        return lora.enable_lora(self, rank, alpha)

    @property
    def prompt_template(self):
        """The template string prompts are wrapped in by `generate` (None: prompts are read as they are)."""
        return self._prompt_template

    @prompt_template.setter
    def prompt_template(self, template):
        self._prompt_template = template_from_config(template)

    @property
    def pad_id(self):
        """The id that fills rows after their end: the tokenizer's `fill_id` (its pad, or its eos when it has no
        pad), 0 for a model without a tokenizer."""
        return 0 if self.tokenizer is None else self.tokenizer.fill_id

    @property
    def ignored_target_id(self):
        """The target id the default loss and metric leave out: the tokenizer's pad (None when it has none, and
        then only sample weights mask), 0 for a model without a tokenizer."""
        return 0 if self.tokenizer is None else self.tokenizer.pad_id

    def generate(
        self,
        prompts,
        max_new_tokens=MAX_NEW_TOKENS,
        sampler="greedy",
        temperature=None,
        top_k=None,
        top_p=None,
        seed=None,
        stop_token_ids=None,
        strip_prompt=False,
        num_beams=None,
        jit_compile="auto",
        apply_template=True,
    ):
        """Continues each prompt by up to `max_new_tokens` tokens.

        Strings in (the tokenizer turns them into ids, after a bos) give strings out; token ids in (a list of
        lists, a (B, T) array or a RaggedTensor) give lists of token ids out. A model with a `prompt_template` wraps
        string prompts in it first (a string fills the template's one prompt field, a dict fills its fields; a
        `ChatTemplate` reads a string as one user message). The output holds the prompt first unless
        `strip_prompt` (as text, the template's special tokens are dropped). Generation stops per row at a stop token (by default the tokenizer's eos, which is
        not included in the output). Prompts too long for a Transformer's context lose their beginning, with a
        warning. The whole loop runs in one compiled function, made once per sampler setting and reused for any
        batch and length.

        Args:
            prompts: a string, a list of strings (a string tensor or array is text too), or token ids (each in
                [0, vocab_size)).
            max_new_tokens: at most this many new tokens per prompt.
            sampler: "greedy", "random", "top_k", "top_p", "beam", or a `tfllm.generation.Sampler`.
            temperature: divides the logits before a random draw (None: 1); 0 means greedy, and a temperature above
                0 with the default sampler draws at random.
            top_k, top_p: limit the draw to the k most likely tokens, or to the nucleus of probability p; setting
                either picks that sampler, setting both limits it to the top k, then to their nucleus.
            seed: an int32; the same seed gives the same text for the same prompts in the same batch (a draw is one
                per row of the batch, so a prompt's text depends on its row and its batch size).
            stop_token_ids: the ids that end a row (each in [0, vocab_size)); None means the tokenizer's eos.
            strip_prompt: return only the new text (what follows the prompt's text).
            num_beams: beam search with this many beams (see `tfllm.generation.BeamSampler`).
            jit_compile: run the loop under XLA: True, False, or "auto" (where it measures faster: every sampler
                but beam search on CPUs, everything on GPUs and TPUs). A seed's draws differ between XLA and the
                plain graph.
            apply_template: wrap string prompts in the model's `prompt_template`; False reads them as they are.

        Example:

        >>> from tfllm.models import LSTMLM
        >>> from tfllm.tokenizers import ByteTokenizer
        >>> model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())  # untrained: the text is noise
        >>> text = model.generate("In the beginning", max_new_tokens=5, sampler="top_p", top_p=0.9, seed=1)
        >>> text.startswith("In the beginning"), text == model.generate("In the beginning", 5, top_p=0.9, seed=1)
        (True, True)
        """
        return text_generation.generate(
            self, self._templated(prompts, apply_template), max_new_tokens=max_new_tokens, sampler=sampler, temperature=temperature, top_k=top_k,
            top_p=top_p, seed=seed, stop_token_ids=stop_token_ids, strip_prompt=strip_prompt, num_beams=num_beams,
            jit_compile=jit_compile,
        )

    def stream(
        self,
        prompts,
        max_new_tokens=MAX_NEW_TOKENS,
        sampler="greedy",
        temperature=None,
        top_k=None,
        top_p=None,
        seed=None,
        stop_token_ids=None,
        chunk_tokens=8,
        jit_compile="auto",
        apply_template=True,
        strip_prompt=True,
    ):
        """Generates as `generate` does, returning an iterator of the new text while it is made, `chunk_tokens`
        positions at a time.

        Each chunk runs in a compiled function (the same decode loop as `generate`, paused every `chunk_tokens`
        positions), then hands Python what each prompt gained: a string for one string prompt, a list of strings
        (one per prompt, "" where nothing came) for a list, lists of new ids for token-id prompts. The pieces of a
        row joined give `generate(..., strip_prompt=strip_prompt)` for the same settings and seed: by default the
        new text alone; with `strip_prompt=False` the first piece starts with the prompt as the model read it
        (templated, and cut to the context). A character is never split between pieces. Beam search cannot
        stream: its best beam is known only at the end. The settings are checked and the prompts read when
        `stream` is called, before the first piece. `jit_compile` is `generate`'s, and so are the prompt template
        and `apply_template`.

        Example:

        >>> from tfllm.models import LSTMLM
        >>> from tfllm.tokenizers import ByteTokenizer
        >>> model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())
        >>> pieces = list(model.stream("And", max_new_tokens=6, chunk_tokens=4, stop_token_ids=[]))
        >>> len(pieces), "".join(pieces) == model.generate("And", 6, stop_token_ids=[], strip_prompt=True)
        (2, True)
        """
        return text_generation.stream(
            self, self._templated(prompts, apply_template), max_new_tokens=max_new_tokens, sampler=sampler,
            temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, stop_token_ids=stop_token_ids,
            chunk_tokens=chunk_tokens, jit_compile=jit_compile, strip_prompt=strip_prompt,
        )

    def translate(self, texts, target, source=None, max_new_tokens=None, sampler="greedy", num_beams=None,
                  memory=None, **sampling):
        """Translates `texts` into the language `target`, for a model trained to translate (its `prompt_template`
        is a `tfllm.data.TranslationTemplate`, as `tfllm train --task translate` makes).

        Each text is read as `<source>text<target>` and the model writes the translation (greedy by default; beam
        search with `sampler="beam"` or `num_beams`; any sampler of `generate`). A text too long for the context is
        cut to its first tokens, with a warning.

        Args:
            texts: a string or a list of strings.
            target: the target language's code, one of the template's `languages` (e.g. "zh").
            source: the source language's code; None means the other language of a two-language model.
            max_new_tokens: the longest translation in tokens; None means 3 per token of the longest text, plus 8
                (less when that and the text do not fit in the context together).
            sampler, num_beams, **sampling: as `generate` takes them (`temperature`, `top_p`, `seed`, ...).
            memory: a `tfllm.evaluation.TranslationMemory` of training pairs: each translation is then the target
                of one of the pairs whose source is most similar, the one the model reads the text back from best
                (nothing is generated; with a few thousand pairs, this beats what a small model writes).

        Returns:
            A string for a string, a list of strings for a list.

        Example:

        >>> from tfllm.data import TranslationTemplate
        >>> from tfllm.models import LSTMLM
        >>> from tfllm.tokenizers import ByteTokenizer
        >>> template = TranslationTemplate(("en", "zh"))
        >>> model = LSTMLM(261, hidden_dim=8, tokenizer=ByteTokenizer(special_tokens=template.special_tokens),
        ...                prompt_template=template)  # untrained: its translations are noise
        >>> isinstance(model.translate("How is the weather?", target="zh", max_new_tokens=4), str)
        True
        >>> model.translate(["天气如何？"], target="fr")
        Traceback (most recent call last):
        ...
        ValueError: target language 'fr' is not one this model translates: expected one of ['en', 'zh']
        """
        template = model_translation_template(self)
        if memory is not None:
            if max_new_tokens is not None or sampler != "greedy" or num_beams or sampling:
                raise ValueError("memory chooses among the memory's sentences and generates nothing: drop "
                                 "max_new_tokens, sampler, num_beams and the sampling settings")
            source = template.source_language(target, source)
            single, texts = translation.translation_texts(texts)
            chosen = memory.translate(self, texts, target, source)
            return chosen[0] if single else chosen
        return translation.translate(self, template, texts, target, source=source, max_new_tokens=max_new_tokens,
                                     sampler=sampler, num_beams=num_beams, **sampling)

    def chat(self, messages, max_new_tokens=None, sampler="greedy", memory=None, stream=False, **sampling):
        """The assistant's reply to a conversation, for a model trained to chat (its `prompt_template` is a
        `tfllm.data.ChatTemplate`, as `tfllm train --task chat` makes).

        The conversation is rendered in the template with the assistant's prefix at the end, and the model writes
        until its stop token (`<end>` in `tfllm.data.CHAT_TEMPLATE`) or eos (`tfllm.generation.chat`). A
        conversation too long for a Transformer's context loses its oldest exchanges first (a leading system message
        stays); a last message too long alone keeps its first tokens, with a warning, never an error.

        Args:
            messages: one conversation, a list of `{"role": "user"|"assistant"|"system", "content": str}` dicts (an
                optional system message, then user and assistant in turn, ending with the user), or a string (one
                user message).
            max_new_tokens: the longest reply in tokens; None means 64, less when the prompt and the reply would
                not fit in the context (but at least half of it: the history is cut instead).
            sampler, **sampling: as `generate` takes them (`temperature`, `top_p`, `seed`, `num_beams`, ...).
            memory: a `tfllm.evaluation.ChatMemory` of training dialogs: the reply is then the memory's choice
                among the answers of the nearest training exchanges (nothing is generated).
            stream: return a generator of text pieces, yielded while the reply is generated (`stream`'s
                `chunk_tokens` applies); joined they equal the reply (the whitespace that would start or end it is
                left out).

        Returns:
            The reply, a string with surrounding whitespace stripped and no special tokens (or, with `stream`, a
            generator of its pieces).

        Example:

        >>> from tfllm.data import ChatTemplate
        >>> from tfllm.models import TransformerLM
        >>> from tfllm.tokenizers import ByteTokenizer
        >>> template = ChatTemplate(assistant="<assistant>{content}<end>")
        >>> tokenizer = ByteTokenizer(special_tokens=template.special_tokens)
        >>> model = TransformerLM(263, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
        ...                       max_sequence_length=32, tokenizer=tokenizer, prompt_template=template)  # untrained
        >>> history = [{"role": "user", "content": "天气如何"}, {"role": "assistant", "content": "今天天气很好"},
        ...            {"role": "user", "content": "明天呢"}]
        >>> reply = model.chat(history, max_new_tokens=4)
        >>> "".join(model.chat(history, max_new_tokens=4, stream=True)) == reply
        True
        >>> model.chat(history[:2])
        Traceback (most recent call last):
        ...
        ValueError: message 1 is the last and has the role 'assistant': a prompt ends with a user message, for the assistant to answer
        """
        template = chat_generation.chat_template(self)
        if memory is not None:
            if max_new_tokens is not None or sampler != "greedy" or sampling or stream:
                raise ValueError("memory chooses among the answers of the memory's dialogs and generates nothing: "
                                 "drop max_new_tokens, sampler, stream and the sampling settings")
            return memory.replies(self, [template.check_conversation(messages, last_role="user")])[0]
        if stream:
            return chat_generation.stream_chat_reply(self, messages, max_new_tokens, sampler=sampler, **sampling)
        return chat_generation.chat_replies(self, [messages], max_new_tokens, sampler=sampler, **sampling)[0].text

    def _templated(self, prompts, apply_template=True):
        prompts = text_generation.python_prompts(prompts)  # text in a string tensor is text, to wrap as well
        if not apply_template or self.tokenizer is None:
            return prompts
        return wrap_prompts(self.prompt_template, prompts)

    def score(self, texts, per_token=False):
        """Log-likelihood (natural log) of each text under the model, and its number of tokens.

        Each text is read after a bos and every token of it is predicted once, in batches through one compiled
        function (`tfllm.evaluation.scoring`: a sliding window over texts longer than a Transformer's context, the
        state carried along for RNNs). The eos that would end a text is not counted: a text is scored as a
        prefix (`tfllm.evaluation.evaluate_texts` counts it, scoring whole documents).

        Args:
            texts: a string or a list of strings (or UTF-8 bytes, or a string tensor or array).
            per_token: also return each text's per-token log-likelihoods.

        Returns:
            `(log_likelihood, num_tokens)`: NumPy arrays (B,) float32 and (B,) int32; with `per_token`, a third
            item: a list of B float32 arrays, log p(token | what precedes it) for each token of each text.

        Example:

        >>> from tfllm.models import LSTMLM
        >>> from tfllm.tokenizers import ByteTokenizer
        >>> model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())
        >>> log_likelihood, num_tokens = model.score(["Amen.", "Selah"])
        >>> num_tokens.tolist(), bool(log_likelihood[0] < 0)
        ([5, 5], True)
        """
        if self.tokenizer is None:
            raise ValueError("score needs a tokenizer: attach one with tokenizer=... when making the model.")
        texts = text_generation.python_prompts(texts)  # text in a string tensor or array
        if not isinstance(texts, (str, bytes, collections.abc.Iterable)):
            raise ValueError(f"texts={texts!r:.60} is invalid: expected a string or a list of strings.")
        texts = [texts] if isinstance(texts, (str, bytes)) else list(texts)
        token_lists = scoring.text_token_ids(self, texts)  # [bos, tokens..., eos]
        per_text = [values[:-1] for values in scoring.token_log_likelihoods(self, token_lists)]  # the eos left out
        log_likelihoods = np.asarray([np.sum(values) for values in per_text], np.float32)
        counts = np.asarray([len(values) for values in per_text], np.int32)
        if per_token:
            return log_likelihoods, counts, [values.astype(np.float32) for values in per_text]
        return log_likelihoods, counts

    def get_config(self):
        config = {**super().get_config(), "vocab_size": self.vocab_size}
        if self.tokenizer is not None:
            config["tokenizer"] = keras.saving.serialize_keras_object(self.tokenizer)
        if self.prompt_template is not None:
            config["prompt_template"] = self.prompt_template.get_config()
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

