"""`GPT2Checkpoint`: a GPT-2 checkpoint read from disk, in tfllm's own terms, whatever format it came in.

A reader (`keras_hub_gpt2`, `hugging_face_gpt2`) turns the files of its format into one `GPT2Checkpoint`: the
`TransformerLM` arguments the checkpoint's config means, every weight as a numpy array named and laid out as the
`TransformerLM` variable it becomes (`gpt2_weight_shapes` lists them), and the tokenizer's vocabulary and merges.
Building the model is `TransformerLM.from_pretrained`'s part, so this package needs nothing of `tfllm.models`.
"""

import dataclasses

import numpy as np

from tfllm.checkpoints.formats import CheckpointError
from tfllm.tokenizers.byte_pair import END_OF_TEXT, BytePairTokenizer

GPT2_ACTIVATION = "gelu_approximate"  # GPT-2's MLP runs the tanh approximation of GELU


@dataclasses.dataclass(frozen=True)
class GPT2Checkpoint:
    """A GPT-2 checkpoint, read.

    Attributes:
        path: the directory it was read from.
        format: "keras_hub" or "hugging_face" (`tfllm.checkpoints.formats.FORMATS`).
        source_config: the checkpoint's own config, as its `config.json` holds it (for the record).
        model_arguments: the `TransformerLM` constructor arguments of the same model.
        weights: `{name: float32 array}` in `gpt2_weight_shapes`' names and shapes.
        vocabulary: the tokenizer's `{token: id}`.
        merges: the tokenizer's merges, `"a b"` strings, first merged first.

    Example (a toy checkpoint: the 256 byte symbols, one merge and `<|endoftext|>`; the weights left out):

    >>> from tfllm.tokenizers.byte_level import byte_to_code_point
    >>> symbols = [chr(code_point) for code_point in byte_to_code_point()]
    >>> vocabulary = {token: token_id for token_id, token in enumerate([*symbols, "ab", END_OF_TEXT])}
    >>> checkpoint = GPT2Checkpoint("gpt2", "hugging_face", {}, {}, {}, vocabulary, ["a b"])
    >>> tokenizer = checkpoint.tokenizer()
    >>> tokenizer.tokenize(["abba"]).to_list()  # "ab" merged, then the bytes b and a
    [[256, 98, 97]]
    >>> tokenizer.bos_id == tokenizer.eos_id == vocabulary[END_OF_TEXT]
    True
    """

    path: str
    format: str
    source_config: dict
    model_arguments: dict
    weights: dict
    vocabulary: dict
    merges: list

    def tokenizer(self):
        """The checkpoint's `BytePairTokenizer` (`<|endoftext|>` its bos and eos)."""
        return BytePairTokenizer(self.vocabulary, list(self.merges))


def gpt2_weight_shapes(arguments):
    """`{name: shape}` of every weight of the `TransformerLM` of `arguments` (GPT-2's: learned positions, tied
    output), named by the variable's path below the model (`block_0/self_attention/query/kernel`).

    Example:

    >>> shapes = gpt2_weight_shapes(dict(vocab_size=10, num_layers=1, num_heads=2, hidden_dim=4,
    ...                                  intermediate_dim=16, max_sequence_length=8))
    >>> shapes["block_0/self_attention/query/kernel"], shapes["block_0/self_attention/attention_output/kernel"]
    ((4, 2, 2), (2, 2, 4))
    >>> len(shapes)  # 2 embeddings, 16 per block, 2 of the final norm
    20
    """
    width, heads = arguments["hidden_dim"], arguments["num_heads"]
    head_dim, inner = width // heads, arguments["intermediate_dim"]
    shapes = {"token_embedding/embeddings": (arguments["vocab_size"], width),
              "position_embedding/embeddings": (arguments["max_sequence_length"], width)}
    for index in range(arguments["num_layers"]):
        block = f"block_{index}"
        for projection in ("query", "key", "value"):
            shapes[f"{block}/self_attention/{projection}/kernel"] = (width, heads, head_dim)  # Wq, Wk, Wv (D, H, Dh)
            shapes[f"{block}/self_attention/{projection}/bias"] = (heads, head_dim)
        shapes[f"{block}/self_attention/attention_output/kernel"] = (heads, head_dim, width)  # Wo (H, Dh, D)
        shapes[f"{block}/self_attention/attention_output/bias"] = (width,)
        for norm in ("self_attention_layer_norm", "feedforward_layer_norm"):
            shapes[f"{block}/{norm}/gamma"] = shapes[f"{block}/{norm}/beta"] = (width,)
        shapes[f"{block}/feedforward_intermediate_dense/kernel"] = (width, inner)
        shapes[f"{block}/feedforward_intermediate_dense/bias"] = (inner,)
        shapes[f"{block}/feedforward_output_dense/kernel"] = (inner, width)
        shapes[f"{block}/feedforward_output_dense/bias"] = (width,)
    shapes["final_norm/gamma"] = shapes["final_norm/beta"] = (width,)
    return shapes


def require_shape(name, array, expected):
    """`array` as float32 if its shape is `expected`; else a `CheckpointError` naming the tensor and both shapes."""
    if tuple(array.shape) != tuple(expected):
        raise CheckpointError(f"the tensor {name} has the shape {tuple(array.shape)}: expected {tuple(expected)}")
    return np.asarray(array, dtype="float32")


def require_gpt2_vocabulary(vocabulary, vocab_size, where):
    """Checks that the tokenizer's vocabulary (read from `where`) has one id per embedding row, and GPT-2's
    `<|endoftext|>`, which a converted run's prompts start with and its generation stops at (its bos and eos).

    >>> require_gpt2_vocabulary({"a": 0, "</s>": 1}, 2, "vocab.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.checkpoints.formats.CheckpointError: the vocabulary vocab.json has no <|endoftext|>, GPT-2's token that ...
    """
    if len(vocabulary) != vocab_size:
        raise CheckpointError(
            f"the vocabulary {where} has {len(vocabulary)} tokens but the embedding has {vocab_size} rows: the "
            "tokenizer does not belong to these weights"
        )
    if END_OF_TEXT not in vocabulary:
        raise CheckpointError(f"the vocabulary {where} has no {END_OF_TEXT}, GPT-2's token that begins and ends "
                              "every text: this tokenizer is not GPT-2's")
