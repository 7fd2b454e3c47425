"""Supervised fine-tuning input: prompt/completion pairs with the loss on the completion only."""

import os

import tensorflow as tf

from tfllm.checks import require_bos_and_eos, require_positive_int
from tfllm.data.records import read_records


def sft_dataset(pairs, tokenizer, sequence_length, batch_size, shuffle=True, seed=None, drop_remainder=False,
                template=None, reshuffle_each_iteration=True):
    """Batches of `(x, y, sample_weight)` for fine-tuning, with the loss on the completions only.

    Each record becomes `<bos> prompt completion <eos>` (with a template: `<bos>` and the template's segments, then
    `<eos>`); `x` is that sequence without its last token and `y` without its first, so the model learns to continue
    the prompt. `sample_weight` is 1 where `y` is a completion token or the final eos and 0 on the prompt and on
    padding: the model is trained to answer, not to write questions. Sequences longer than `sequence_length + 1`
    tokens keep their last `sequence_length + 1` tokens (the prompt loses its beginning first); shorter ones are
    filled with the tokenizer's `fill_id` at the end.

    Args:
        pairs: The records. Without a template: a list of `(prompt, completion)` tuples or of dicts with `prompt`
            and `completion`, each prompt carrying its own formatting (say "Q: ... A:"). With a template: a list of
            dicts with the template's fields (a `ChatTemplate` reads `{"messages": [...]}` or message lists). Or the
            path of a JSONL or CSV file with those fields.
        tokenizer: A tfllm tokenizer.
        sequence_length: T, tokens per example.
        batch_size: B.
        shuffle, seed: Shuffle the records, anew each epoch, reproducibly with a seed (which every worker of a
            multi-worker strategy needs, as `lm_dataset`'s does).
        reshuffle_each_iteration: With `shuffle`, draw a new order for every iteration; False keeps the seed's one
            order for every iterator (a training run that must give the same batches after a resume).
        drop_remainder: Drop a last batch smaller than `batch_size`.
        template: A `PromptTemplate`, `ChatTemplate` or `TranslationTemplate` that turns each record into prompt
            and completion segments.

    Returns:
        A `tf.data.Dataset` of `(x, y, sample_weight)`: int32 (B, T), int32 (B, T), float32 (B, T).

    Example:

    >>> from tfllm.tokenizers import ByteTokenizer
    >>> batches = sft_dataset([("2+2=", "4")], ByteTokenizer(), sequence_length=6, batch_size=1, shuffle=False)
    >>> x, y, weight = next(iter(batches))
    >>> x.numpy()[0].tolist()  # <bos> 2 + 2 = 4
    [1, 53, 46, 53, 64, 55]
    >>> y.numpy()[0].tolist(), weight.numpy()[0].tolist()  # the loss falls on "4" and <eos>
    ([53, 46, 53, 64, 55, 2], [0.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    >>> from tfllm.data.templates import PromptTemplate
    >>> templated = sft_dataset([{"a": "2", "b": "2", "sum": "4"}], ByteTokenizer(), 6, 1, shuffle=False,
    ...                         template=PromptTemplate("{a}+{b}=", "{sum}"))
    >>> [tensor.numpy().tolist() for tensor in next(iter(templated))] == [x.numpy().tolist(), y.numpy().tolist(),
    ...                                                                    weight.numpy().tolist()]
    True
    """
    sequence_length = require_positive_int("sequence_length", sequence_length)
    batch_size = require_positive_int("batch_size", batch_size)
    require_bos_and_eos(tokenizer, "sft_dataset")
    texts, learned = _segments(pairs, template)
    if template is not None and template.kind == "chat":
        template.stop_token_ids(tokenizer)  # refused now, not by model.chat after training
    dataset = tf.data.Dataset.from_tensor_slices((tf.ragged.constant(texts), tf.ragged.constant(learned, tf.bool)))
    if shuffle:
        dataset = dataset.shuffle(len(texts), seed=seed, reshuffle_each_iteration=reshuffle_each_iteration)
    window = sequence_length + 1

    @tf.autograph.experimental.do_not_convert  # plain graph code; see Tokenizer.tokenize
    def encode(segment_texts, segment_learned):
        ids = tokenizer.tokenize(segment_texts.flat_values)  # (N, None): every segment of the batch
        learned_ids = ids.with_flat_values(tf.gather(segment_learned.flat_values, ids.value_rowids()))
        tokens = segment_texts.with_flat_values(ids).merge_dims(1, 2)  # (B, None)
        answer = segment_texts.with_flat_values(learned_ids).merge_dims(1, 2)  # (B, None) bool
        rows = tokens.nrows()
        bos = tf.fill([rows, 1], tf.constant(tokenizer.bos_id, tf.int32))
        eos = tf.fill([rows, 1], tf.constant(tokenizer.eos_id, tf.int32))
        tokens = tf.concat([bos, tokens, eos], axis=1)[:, -window:]  # (B, <= T + 1)
        answer = tf.concat([tf.zeros_like(bos, tf.bool), answer, tf.ones_like(eos, tf.bool)], axis=1)
        answer = tf.cast(answer[:, -window:], tf.float32)
        x = tokens[:, :-1].to_tensor(tokenizer.fill_id, shape=[None, sequence_length])  # (B, T)
        y = tokens[:, 1:].to_tensor(tokenizer.fill_id, shape=[None, sequence_length])  # (B, T)
        weight = answer[:, 1:].to_tensor(0.0, shape=[None, sequence_length])  # (B, T)
        return x, y, weight

    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _segments(records, template):
    """Each record's segment texts and whether each is learned: two lists of lists, one entry per record."""
    if template is None:
        prompts, completions = read_records(records, ("prompt", "completion"), "prompt/completion pairs")
        segments = [[(prompt, False), (completion, True)] for prompt, completion in zip(prompts, completions)]
    elif template.kind == "chat" and not isinstance(records, (str, os.PathLike)) and all(
            isinstance(record, (list, tuple)) for record in records):
        segments = [template.segments(messages) for messages in records]
    else:
        columns = read_records(records, template.fields, f"records with the fields {list(template.fields)}",
                               text_fields=() if template.kind == "chat" else None)  # a chat's are message lists
        segments = [template.segments(dict(zip(template.fields, values))) for values in zip(*columns)]
    for index, record_segments in enumerate(segments):
        if not any(learned for _, learned in record_segments):
            raise ValueError(f"record {index} has nothing to learn: its template renders no completion text")
    texts = [[text for text, _ in record_segments] for record_segments in segments]
    learned = [[flag for _, flag in record_segments] for record_segments in segments]
    return texts, learned
