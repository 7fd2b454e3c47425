"""Packing: several short training sequences in one row, so that a batch holds text rather than padding.

Fine-tuning records are often far shorter than the rows of a batch (a translation pair is about 20 tokens, a row 64):
padded one per row, most of each step is spent on padding. Packed, the sequences follow each other in the row
(each begins with its bos and ends with its eos), and only the end of a row is filled. The loss weights travel with
the tokens, so what is learned is unchanged: the weight of the position that predicts a sequence's bos from the
end of the one before is 0. Each sequence sees the ones before it in its row (the model learns that a bos starts
afresh), as in the packed pretraining of GPT models.
"""

import numpy as np

from tfllm.checks import require_positive_int


def pack_sequences(sequences, weights, sequence_length, fill_id):
    """Packs token sequences greedily, in their order, into rows of `sequence_length + 1` tokens.

    A sequence that does not fit in the rest of the current row starts the next row; one longer than a row keeps
    its last `sequence_length + 1` tokens (as `sft_dataset` does).

    Args:
        sequences: lists of token ids, each a whole training sequence (`[bos, ..., eos]`).
        weights: for each sequence, one loss weight per token: the weight of predicting that token (the first
            token's is ignored: nothing predicts it).
        sequence_length: T, the tokens of `x` and `y` per row.
        fill_id: the id the rows are filled with at their end.

    Returns:
        `(x, y, weight)`: NumPy arrays int32 (N, T), int32 (N, T), float32 (N, T); `y` is `x` shifted by one.

    Example:

    >>> x, y, w = pack_sequences([[1, 5, 6, 2], [1, 7, 2], [1, 8, 9, 9, 2]], [[0, 0, 1, 1], [0, 1, 1],
    ...                          [0, 1, 1, 1, 1]], sequence_length=7, fill_id=0)
    >>> x.tolist(), y.tolist()  # the first two share a row; the third did not fit
    ([[1, 5, 6, 2, 1, 7, 2], [1, 8, 9, 9, 2, 0, 0]], [[5, 6, 2, 1, 7, 2, 0], [8, 9, 9, 2, 0, 0, 0]])
    >>> w.tolist()  # the loss on each sequence's weighted tokens; 0 on the next bos and on the filling
    [[0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]
    """
    window = require_positive_int("sequence_length", sequence_length) + 1
    rows, row_weights = [], []
    row, row_weight = [], []
    for index, (tokens, token_weights) in enumerate(zip(sequences, weights, strict=True)):
        if len(tokens) != len(token_weights):
            raise ValueError(f"a sequence of {len(tokens)} tokens has {len(token_weights)} weights: expected one each")
        if not len(tokens):  # its first weight, which nothing predicts, would shift the rest of the row's by one
            raise ValueError(f"sequences[{index}] is empty: expected a whole sequence, [bos, ..., eos].")
        # A sequence's first token is predicted by nothing of its own (in a packed row, by the one before): weight 0.
        tokens, token_weights = list(tokens)[-window:], [0.0, *list(token_weights)[1:]][-window:]
        token_weights[0] = 0.0
        if len(row) + len(tokens) > window:
            rows.append(row)
            row_weights.append(row_weight)
            row, row_weight = [], []
        row += tokens
        row_weight += token_weights
    if row:
        rows.append(row)
        row_weights.append(row_weight)
    tokens = np.full((len(rows), window), fill_id, np.int32)  # (N, T + 1)
    loss_weights = np.zeros((len(rows), window), np.float32)
    for index, (row, row_weight) in enumerate(zip(rows, row_weights)):
        tokens[index, : len(row)] = row
        loss_weights[index, : len(row_weight)] = row_weight
    return tokens[:, :-1], tokens[:, 1:], loss_weights[:, 1:]
