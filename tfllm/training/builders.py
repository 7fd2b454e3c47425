"""From a `RunConfig` to the things training needs: the texts, the tokenizer, the model and the datasets.

Each builder takes only the section it needs, so the CLI, fine-tuning and notebooks can reuse them one by one.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfllm.checks import require_choice
from tfllm.choices import ARCHITECTURES, TOKENIZERS
from tfllm.data import clean_text, lm_dataset, load_texts, pack_sequences, sft_dataset
from tfllm.models import LSTMLM, SimpleRNNLM, TransformerLM
from tfllm.tokenizers import ByteTokenizer, CharTokenizer, SentencePieceTokenizer, WordPieceTokenizer
from tfllm.training.strategies import resolve_jit_compile


@dataclasses.dataclass(frozen=True)
class CorpusTexts:
    """The train and validation documents of a corpus, as lists of UTF-8 `bytes` (cleaned if the config says so)."""

    train: list
    validation: list


@dataclasses.dataclass(frozen=True)
class ValidationData:
    """The validation batches of a run: the periodic estimate of the validation loss during training (the final
    figures of a run are exact: `tfllm.evaluation.evaluate_texts` on the whole split).

    Attributes:
        batches: `(x, y)` int32 (B, T) batches in corpus order, exactly `steps` of them (a known cardinality, so
            Keras starts them over at each validation).
        steps: batches per validation.
    """

    batches: tf.data.Dataset
    steps: int


def build_texts(data_config):
    """The train and validation splits of `data_config.corpus`, cleaned when `data_config.clean`.

    >>> from tfllm.training.config import DataConfig
    >>> texts = build_texts(DataConfig.default())
    >>> len(texts.train), len(texts.validation)
    (1063, 59)
    """

    def read(split):
        texts = load_texts(data_config.corpus, split=split)
        if data_config.clean:
            texts = clean_text(tf.constant(texts, tf.string)).numpy().tolist()
        return texts

    return CorpusTexts(train=read("train"), validation=read("validation"))


def build_tokenizer(data_config, train_texts, verbose=False, special_tokens=None):
    """The tokenizer of `data_config.tokenizer`, its vocabulary learned from `train_texts` (byte learns nothing),
    with the extra `special_tokens` (a task's, such as the language tags of translation) as single ids.

    >>> from tfllm.training.config import DataConfig
    >>> build_tokenizer(DataConfig.default("byte"), []).vocab_size
    259
    >>> build_tokenizer(DataConfig("kjv", "char", None, False), [b"abcab"]).vocab_size  # 4 special ids + a, b, c
    7
    >>> build_tokenizer(DataConfig.default("byte"), [], special_tokens=["<en>", "<zh>"]).special_tokens["<zh>"]
    260
    """
    kind, vocab_size = require_choice("data.tokenizer", data_config.tokenizer, TOKENIZERS), data_config.vocab_size
    extra = {"special_tokens": list(special_tokens)} if special_tokens else {}
    if kind == "byte":
        return ByteTokenizer(**extra)
    if kind == "char":
        return CharTokenizer.train(train_texts, max_vocab_size=vocab_size, verbose=verbose, **extra)
    if kind == "wordpiece":
        return WordPieceTokenizer.train(train_texts, vocab_size, verbose=verbose, **extra)
    return SentencePieceTokenizer.train(train_texts, vocab_size, verbose=verbose, **extra)


def build_model(model_config, tokenizer=None, vocab_size=None):
    """The `CausalLM` of `model_config`, sized for `tokenizer`'s vocabulary, which it carries (and saves); or, with
    no tokenizer, for `vocab_size` token ids.

    >>> from tfllm.training.config import ModelConfig
    >>> model = build_model(ModelConfig("rnn", 1, 8, None, None, None, 0.0, None), ByteTokenizer())
    >>> type(model).__name__, model.vocab_size
    ('SimpleRNNLM', 259)
    >>> build_model(ModelConfig.default("lstm"), vocab_size=100).tokenizer is None
    True
    """
    if tokenizer is None and vocab_size is None:
        raise ValueError("build_model needs a tokenizer or a vocab_size: the model's vocabulary is theirs")
    vocab_size = tokenizer.vocab_size if vocab_size is None else vocab_size
    config = model_config
    require_choice("model.architecture", config.architecture, ARCHITECTURES)
    if config.architecture == "transformer":
        return TransformerLM(
            vocab_size,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            hidden_dim=config.hidden_dim,
            intermediate_dim=config.intermediate_dim,
            max_sequence_length=config.max_sequence_length,
            dropout=config.dropout,
            position_embedding=config.position_embedding,
            tokenizer=tokenizer,
        )
    recurrent = {"lstm": LSTMLM, "rnn": SimpleRNNLM}[config.architecture]
    return recurrent(
        vocab_size,
        hidden_dim=config.hidden_dim,
        num_layers=config.num_layers,
        dropout=config.dropout,
        tokenizer=tokenizer,
    )


def compile_model(model, train_config):
    """`model.compile()` with the run's optimization settings; the cosine decays over `train_config.steps`. Called
    in a strategy's scope, it turns XLA off where that strategy cannot run it (`resolve_jit_compile`).

    Example:

    >>> from tfllm.training.config import TrainConfig
    >>> model = compile_model(LSTMLM(259, hidden_dim=8), TrainConfig.default("lstm"))  # returns the model
    >>> model.compiled, type(model.optimizer).__name__, model.optimizer.weight_decay
    (True, 'FusedAdamW', 0.1)
    """
    accumulation = train_config.gradient_accumulation_steps
    model.compile(
        learning_rate=train_config.learning_rate,
        warmup_steps=train_config.warmup_steps,
        decay_steps=train_config.steps,
        weight_decay=train_config.weight_decay,
        gradient_accumulation_steps=accumulation if accumulation > 1 else None,
        jit_compile=resolve_jit_compile(train_config.jit_compile, tf.distribute.get_strategy()),
    )
    return model


def build_train_batches(train_config, tokenizer, train_texts, start_step=0):
    """The training batches: `(x, y)` int32 (B, T), batches `start_step + 1 .. train_config.steps` of the run.

    The stream depends only on the seed and the step: pass k over the corpus is shuffled with the seed
    `train_config.seed * 100003 + k`, fixed when the pipeline is made, so every iterator of it gives the same batches in
    the same order, in every process. (A shuffle with `reshuffle_each_iteration` draws a new order for every new
    iterator, and Keras makes one more under a `tf.distribute` strategy, to see the shapes of a batch: the
    batches would then depend on the strategy.) So a run resumed at step s, which skips s batches, trains on the
    batches an uninterrupted run would have, on one device or many.

    Example:

    >>> import dataclasses
    >>> from tfllm.data import kjv_chapters
    >>> from tfllm.training.config import TrainConfig
    >>> train = dataclasses.replace(TrainConfig.default("lstm"), steps=6, batch_size=2, sequence_length=8)
    >>> texts = [verse.encode() for verse in kjv_chapters()[0].text.splitlines()[:5]]
    >>> batches = build_train_batches(train, ByteTokenizer(), texts, start_step=4)  # resumed after step 4
    >>> [tuple(x.shape) for x, y in batches]  # batches 5 and 6 of the run, (B, T) each
    [(2, 8), (2, 8)]
    """
    config = train_config

    def corpus_pass(index):
        return lm_dataset(train_texts, tokenizer, config.sequence_length, config.batch_size, shuffle=True,
                          seed=config.seed * 100_003 + index, reshuffle_each_iteration=False)

    first = corpus_pass(0)
    per_pass = max(int(first.reduce(0, lambda count, _: count + 1)), 1)  # batches in one pass (some ms to count)
    passes = [first] + [corpus_pass(index) for index in range(1, -(-config.steps // per_pass))]
    stream = passes[0]
    for following in passes[1:]:
        stream = stream.concatenate(following)
    return stream.skip(start_step).take(config.steps - start_step)


def build_validation_batches(train_config, tokenizer, validation_texts):
    """The validation batches (see `ValidationData`), in corpus order.

    Raises:
        ValueError: the validation split is too short for one batch.

    Example:

    >>> import dataclasses
    >>> from tfllm.data import kjv_chapters
    >>> from tfllm.training.config import TrainConfig
    >>> train = dataclasses.replace(TrainConfig.default("lstm"), batch_size=2, sequence_length=8, validation_steps=3)
    >>> validation = build_validation_batches(train, ByteTokenizer(), [kjv_chapters()[0].text.encode()])
    >>> validation.steps, [tuple(x.shape) for x, y in validation.batches]
    (3, [(2, 8), (2, 8), (2, 8)])
    """
    config = train_config
    try:
        batches = lm_dataset(validation_texts, tokenizer, config.sequence_length, config.batch_size, shuffle=False)
    except ValueError:  # too few windows for one batch
        raise ValueError(
            f"the validation split is too short for one batch of train.batch_size={config.batch_size} sequences of "
            f"train.sequence_length + 1 = {config.sequence_length + 1} tokens: use a larger corpus or smaller sizes"
        ) from None
    available = int(batches.reduce(0, lambda count, _: count + 1))
    steps = available if config.validation_steps is None else min(config.validation_steps, available)
    batches = batches.take(steps).apply(tf.data.experimental.assert_cardinality(steps))
    return ValidationData(batches, steps)



def build_record_validation_batches(train_config, records, tokenizer, template):
    """The validation batches of a supervised task (see `ValidationData`): `records` in `template`, every one, in
    order, the loss on their completions (`sft_dataset`); at most `validation_steps` batches.

    >>> import dataclasses
    >>> from tfllm.data import PromptTemplate
    >>> from tfllm.training.config import TrainConfig
    >>> train = dataclasses.replace(TrainConfig.default("lstm"), batch_size=2, sequence_length=8, validation_steps=None)
    >>> records = [{"q": "1+1=", "a": "2"}, {"q": "2+2=", "a": "4"}, {"q": "3+3=", "a": "6"}]
    >>> build_record_validation_batches(train, records, ByteTokenizer(), PromptTemplate("{q}", "{a}")).steps
    2
    """
    config = train_config
    batches = sft_dataset(records, tokenizer, config.sequence_length, config.batch_size, shuffle=False,
                          template=template)
    steps = -(-len(records) // config.batch_size)
    if config.validation_steps is not None:
        steps = min(steps, config.validation_steps)
        batches = batches.take(steps)
    return ValidationData(batches, steps)


def build_packed_rows(train_config, sequences, weights, steps, fill_id):
    """The rows of `steps` batches: `(x, y, weight)` NumPy arrays of `steps * batch_size` rows, the token
    sequences (each with its loss weights) packed several to a row (`pack_sequences`), pass k over them in the
    order of the seed `train_config.seed * 100003 + k`. The rows of a step depend on the step alone, so a resumed
    run or another worker gets the same.

    >>> import dataclasses
    >>> from tfllm.training.config import TrainConfig
    >>> train = dataclasses.replace(TrainConfig.default("lstm"), batch_size=2, sequence_length=4)
    >>> x, y, weight = build_packed_rows(train, [[1, 5, 2], [1, 6, 7, 2]], [[0, 1, 1], [0, 0, 1, 1]], 3, fill_id=0)
    >>> x.shape, y.shape, weight.shape  # 3 steps of 2 rows; a pass over the two sequences fills 2 rows
    ((6, 4), (6, 4), (6, 4))
    """
    config = train_config
    rows_needed, passes = steps * config.batch_size, []
    while sum(len(x) for x, _, _ in passes) < rows_needed:
        order = np.random.RandomState(config.seed * 100_003 + len(passes)).permutation(len(sequences))
        passes.append(pack_sequences([sequences[i] for i in order], [weights[i] for i in order],
                                     config.sequence_length, fill_id))
    if not passes:
        empty = np.zeros((0, config.sequence_length))
        return empty.astype(np.int32), empty.astype(np.int32), empty.astype(np.float32)
    return tuple(np.concatenate(parts)[:rows_needed] for parts in zip(*passes))
