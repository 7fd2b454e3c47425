"""Supervised fine-tuning input: prompt/completion pairs with the loss on the completion only."""

import tensorflow as tf

from tfllm.checks import require_positive_int
from tfllm.data.records import read_records


def sft_dataset(pairs, tokenizer, sequence_length, batch_size, shuffle=True, seed=None, drop_remainder=False):
    """Batches of `(x, y, sample_weight)` for fine-tuning on prompt/completion pairs.

    Each pair becomes `<bos> prompt completion <eos>`; `x` is that sequence without its last token and `y` without
    its first, so the model learns to continue the prompt. `sample_weight` is 1 where `y` is a completion token or
    the final eos and 0 on the prompt and on padding: the model is trained to answer, not to write questions.
    Sequences longer than `sequence_length + 1` tokens keep their last `sequence_length + 1` tokens (the prompt
    loses its beginning first); shorter ones are padded with `pad_id` at the end.

    Args:
        pairs: A list of `(prompt, completion)` tuples or of dicts with `prompt` and `completion`, or the path of
            a JSONL or CSV file with those fields. The prompt carries its own formatting (say "Q: ... A:").
        tokenizer: A tfllm tokenizer.
        sequence_length: T, tokens per example.
        batch_size: B.
        shuffle, seed: Shuffle the pairs, anew each epoch, reproducibly with a seed.
        drop_remainder: Drop a last batch smaller than `batch_size`.

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
    """
    sequence_length = require_positive_int("sequence_length", sequence_length)
    batch_size = require_positive_int("batch_size", batch_size)
    prompts, completions = read_records(pairs, ("prompt", "completion"), "prompt/completion pairs")
    dataset = tf.data.Dataset.from_tensor_slices((tf.constant(prompts), tf.constant(completions)))
    if shuffle:
        dataset = dataset.shuffle(len(prompts), seed=seed, reshuffle_each_iteration=True)
    window = sequence_length + 1

    @tf.autograph.experimental.do_not_convert  # plain graph code; see Tokenizer.tokenize
    def encode(prompt_texts, completion_texts):
        prompt = tokenizer.tokenize(prompt_texts)  # (B, None)
        completion = tokenizer.tokenize(completion_texts)  # (B, None)
        rows = prompt.nrows()
        bos = tf.fill([rows, 1], tf.constant(tokenizer.bos_id, tf.int32))
        eos = tf.fill([rows, 1], tf.constant(tokenizer.eos_id, tf.int32))
        tokens = tf.concat([bos, prompt, completion, eos], axis=1)[:, -window:]  # (B, <= T + 1)
        answer = tf.concat([tf.zeros_like(bos), tf.zeros_like(prompt), tf.ones_like(completion), tf.ones_like(eos)], 1)
        answer = tf.cast(answer[:, -window:], tf.float32)
        x = tokens[:, :-1].to_tensor(tokenizer.pad_id, shape=[None, sequence_length])  # (B, T)
        y = tokens[:, 1:].to_tensor(tokenizer.pad_id, shape=[None, sequence_length])  # (B, T)
        weight = answer[:, 1:].to_tensor(0.0, shape=[None, sequence_length])  # (B, T)
        return x, y, weight

    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
