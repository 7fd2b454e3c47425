"""SentencePiece subwords (unigram or BPE), trained in memory with `sentencepiece`, run by tensorflow-text."""

import base64
import binascii
import functools
import io
import os

import keras
import sentencepiece as spm
import tensorflow as tf
from sentencepiece import sentencepiece_model_pb2
from tensorflow_text.python.ops.sentencepiece_tokenizer import gen_sentencepiece_tokenizer as sentencepiece_ops

from tfllm.checks import require_int_at_least
from tfllm.tokenizers.special_tokens import check_special_tokens
from tfllm.tokenizers.tokenizer import Tokenizer
from tfllm.tokenizers.training_texts import text_batches

MODEL_TYPES = ("unigram", "bpe")
SPECIAL_IDS = {"pad_id": 0, "bos_id": 1, "eos_id": 2, "unk_id": 3}  # of the models `train` makes
ROLE_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")  # SentencePiece's default pieces for them
DEFAULT_TRAINER_OPTIONS = {
    "normalization_rule_name": "identity",  # no NFKC: text comes back as it went in
    "remove_extra_whitespaces": False,  # keep runs of spaces, leading and trailing spaces
    "add_dummy_prefix": True,  # the first word is tokenized like every other word
    "hard_vocab_limit": False,  # a small corpus gives a smaller vocabulary instead of an error
    "max_sentence_length": 1 << 16,  # bytes; train cuts longer texts, which the trainer would skip
}


@keras.saving.register_keras_serializable(package="tfllm")
class SentencePieceTokenizer(Tokenizer):
    """Subword pieces of a SentencePiece model, where "▁" (U+2581) marks a space; run in graph by tensorflow-text ops.

    Models made by `train` have ids 0..3 for `<pad>`, `<s>` (bos), `</s>` (eos) and `<unk>`, then the extra special
    tokens (SentencePiece control symbols); a model made elsewhere keeps its own ids (read from the model, pad may be
    missing). Models made by `train` use identity normalization
    and byte fallback (a character outside the vocabulary becomes its UTF-8 bytes as `<0xNN>` pieces), so nothing is
    unknown and `detokenize(tokenize(s)) == s` except that:

    - leading spaces (U+0020) are dropped: `"  a b"` -> `"a b"` (the space SentencePiece adds before the first word
      and the ones that follow it decode to nothing); spaces elsewhere, tabs and newlines are kept;
    - U+2581 ("▁") in the text comes back as a space (and is dropped at the start);
    - bytes that are not valid UTF-8 become U+FFFD, one per bad byte.

    Args:
        proto: the serialized SentencePiece `ModelProto`, as bytes or as the base64 string `get_config` stores.
            It must have bos, eos and unk pieces.
        special_tokens: extra special tokens, each a piece of the model (as `train` makes them), kept as one id.

    Example:

    >>> corpus = ["the cat sat on the mat", "the dog sat on the log"] * 20
    >>> tokenizer = SentencePieceTokenizer.train(corpus, vocab_size=300, model_type="bpe", verbose=False)
    >>> ids = tokenizer.tokenize(["the cat", "  the ox\\t!"])  # RaggedTensor (B, None)
    >>> [tokenizer.id_to_token(i) for i in ids[1]]
    ['▁', '▁', '▁the', '▁o', '<0x78>', '<0x09>', '<0x21>']
    >>> tokenizer.detokenize(ids).numpy().tolist()
    [b'the cat', b'the ox\\t!']
    >>> with_tags = SentencePieceTokenizer.train(corpus, 300, special_tokens=["<en>"], verbose=False)
    >>> with_tags.special_tokens
    {'<pad>': 0, '<s>': 1, '</s>': 2, '<unk>': 3, '<en>': 4}
    >>> with_tags.tokenize("<en>the cat").numpy().tolist()[0]
    4
    """

    def __init__(self, proto, special_tokens=None, **kwargs):
        proto = _with_identity_rule(_proto_bytes(proto))
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(proto)
        except (RuntimeError, OSError) as error:
            raise ValueError(f"proto ({len(proto)} bytes) is not a SentencePiece model: {error}") from None
        # Set before the base class checks the extra special tokens against them.
        self.special_token_roles = _role_tokens(processor)
        super().__init__(special_tokens=special_tokens, **kwargs)
        self.proto = proto
        self._pieces = tuple(processor.id_to_piece(i) for i in range(processor.get_piece_size()))
        missing = [token for token in self.extra_special_tokens if processor.piece_to_id(token) == processor.unk_id()]
        if missing:
            raise ValueError(f"special_tokens {missing} are not pieces of this SentencePiece model: train it with "
                             "them (SentencePieceTokenizer.train(..., special_tokens=...))")

    @classmethod
    def train(cls, texts, vocab_size, model_type="unigram", character_coverage=0.9995, byte_fallback=True,
              special_tokens=None, verbose=True, trainer_options=None, **kwargs):
        """Trains a SentencePiece model on `texts` in memory and returns its tokenizer.

        Args:
            texts: an iterable of `str` / `bytes` or a `tf.data.Dataset` of scalar strings; each text is one
                SentencePiece "sentence", except that texts over `max_sentence_length` bytes (65536) are cut after
                newlines into pieces that fit (the trainer would skip them).
            vocab_size: the largest vocabulary, counting the 4 special ids and, with `byte_fallback`, the 256 byte
                pieces; a small corpus may give fewer.
            model_type: "unigram" or "bpe".
            character_coverage: the share of characters given their own pieces; the rarest rest fall back to bytes.
            byte_fallback: spell characters outside the vocabulary as UTF-8 byte pieces instead of `<unk>`.
            special_tokens: extra special tokens (ids 4, 5, ...), each kept as one id; no text may contain one.
            verbose: show progress while reading `texts`, and SentencePiece's warnings.
            trainer_options: more `SentencePieceTrainer.train` options, overriding the defaults
                `normalization_rule_name="identity"`, `remove_extra_whitespaces=False`, `add_dummy_prefix=True`,
                `hard_vocab_limit=False`, `max_sentence_length=65536` (the round trip documented on the class
                assumes them).
            **kwargs: passed to the constructor (e.g. `name`).
        """
        special_tokens = check_special_tokens(special_tokens, reserved=ROLE_TOKENS)
        num_special = len(SPECIAL_IDS) + len(special_tokens)
        require_int_at_least("vocab_size", vocab_size, num_special + 1,
                             f" (the {num_special} special tokens and at least one piece)")
        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type={model_type!r} is not supported: expected one of {list(MODEL_TYPES)}")
        if not 0.0 < character_coverage <= 1.0:
            raise ValueError(f"character_coverage={character_coverage!r} is invalid: expected 0 < value <= 1")
        trainer_options = dict(trainer_options or {})
        fixed = {"vocab_size", "model_type", "character_coverage", "byte_fallback", "sentence_iterator", "model_writer",
                 "input", "model_prefix", "control_symbols", *SPECIAL_IDS}
        if fixed & trainer_options.keys():
            raise ValueError(f"trainer_options sets {sorted(fixed & trainer_options.keys())}: these are fixed by "
                             "tfllm or are arguments of train")
        options = {
            "num_threads": os.cpu_count() or 1,
            "minloglevel": 1 if verbose else 2,  # 1: SentencePiece's warnings, 2: only its errors
            **DEFAULT_TRAINER_OPTIONS,
            **trainer_options,
            **SPECIAL_IDS,
        }
        require_int_at_least("trainer_options['max_sentence_length']", options["max_sentence_length"], 4)
        sentences = [piece for batch in text_batches(texts, verbose=verbose, special_tokens=special_tokens) for text in batch.numpy().tolist()
                     for piece in _pieces_of_at_most(text, options["max_sentence_length"])]
        if special_tokens:
            options["control_symbols"] = list(special_tokens)
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_writer=model,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                byte_fallback=byte_fallback,
                **options,
            )
        except RuntimeError as error:
            raise ValueError(f"SentencePiece cannot train with vocab_size={vocab_size}, model_type={model_type!r} "
                             f"on these texts: {error}") from None
        return cls(model.getvalue(), special_tokens=special_tokens, **kwargs)

    @property
    def vocab_size(self):
        return len(self._pieces)

    def get_vocabulary(self):
        return list(self._pieces)

    def get_config(self):
        return {**super().get_config(), "proto": base64.b64encode(self.proto).decode("ascii")}

    def _model_handle(self):
        # The ops of tensorflow_text.SentencepieceTokenizer, but with a fresh handle per call instead of one kept from
        # __init__: that resource belongs to the kernel that made it, and tf.random.set_seed (so
        # keras.utils.set_random_seed) and keras.backend.clear_session empty the eager kernel cache, which destroys it
        # (tensorflow/text#570). Here the model rides in the op's `model` attribute, so eager calls, tf.function
        # graphs, tf.data pipelines and SavedModels all carry it, and a cleared cache just builds a new kernel.
        return sentencepiece_ops.sentencepiece_op(model=self.proto)

    def _tokenize(self, texts):
        values, row_splits = sentencepiece_ops.sentencepiece_tokenize_op(
            self._model_handle(), texts, nbest_size=0, alpha=1.0, add_bos=False, add_eos=False, reverse=False,
            out_type=tf.int32,
        )
        return tf.RaggedTensor.from_row_splits(values, row_splits, validate=False)  # (B, None) int32

    def _detokenize(self, ids):
        return sentencepiece_ops.sentencepiece_detokenize_op(
            self._model_handle(), ids.flat_values, ids.row_splits, add_bos=False, add_eos=False, reverse=False
        )  # (B,)


def _role_tokens(processor):
    """Role -> piece of a SentencePiece model's pad, bos, eos and unk (an id of -1 means the model has none)."""
    roles = {}
    for role in ("pad", "bos", "eos", "unk"):
        token_id = getattr(processor, f"{role}_id")()
        if token_id >= 0:
            roles[role] = processor.id_to_piece(token_id)
        elif role != "pad":
            raise ValueError(f"proto has no {role} piece ({role}_id = {token_id}): tfllm's language models need "
                             "bos, eos and unk")
    return roles


def _with_identity_rule(proto):
    """`proto` with its identity normalization written as a rule that changes nothing, if it has none.

    SentencePiece logs "precompiled_charsmap is empty. use identity normalization." to the terminal each time it
    loads a model without a normalization rule (tensorflow-text: at every call). The rule "▁" (U+2581) -> " " is the
    identity for the models `train` makes (and the runs of earlier versions): the normalizer escapes the space back to
    "▁", so the normalized text, its alignment and so every id stay the same. Models whose normalizer would treat
    that space otherwise (no escaping, or extra whitespace removed), or that have a rule already, are left as they are.
    """
    try:
        model = sentencepiece_model_pb2.ModelProto.FromString(proto)
    except Exception:  # protobuf's DecodeError; __init__ names a proto that is not a model
        return proto
    spec = model.normalizer_spec
    if spec.precompiled_charsmap or not spec.escape_whitespaces or spec.remove_extra_whitespaces:
        return proto
    spec.precompiled_charsmap = _space_symbol_charsmap()
    return model.SerializeToString()


@functools.cache
def _space_symbol_charsmap():
    spm.set_min_log_level(1)  # the builder's INFO lines ("Loading CharsMap of size=1") are noise too
    spec = spm.SentencePieceNormalizer(norm_map=[("\u2581", " ")]).serialized_normalizer_spec()
    return sentencepiece_model_pb2.NormalizerSpec.FromString(spec).precompiled_charsmap


def _pieces_of_at_most(text, max_bytes):
    """`text` (UTF-8 bytes) as str pieces of at most `max_bytes` bytes, cut after newlines where possible.

    SentencePiece's trainer skips longer "sentences" silently, which would drop whole documents.
    """
    if len(text) <= max_bytes:
        return [text.decode("utf-8")]
    pieces, current = [], b""
    for line in text.splitlines(keepends=True):
        while len(line) > max_bytes:  # too long on its own: cut at the last character boundary that fits
            cut = max_bytes
            while cut > 1 and (line[cut] & 0xC0) == 0x80:  # line[cut] continues a multi-byte character
                cut -= 1
            pieces += [current, line[:cut]]
            current, line = b"", line[cut:]
        if len(current) + len(line) > max_bytes:
            pieces.append(current)
            current = b""
        current += line
    pieces.append(current)
    return [piece.decode("utf-8", errors="replace") for piece in pieces if piece]


def _proto_bytes(proto):
    if not isinstance(proto, str):
        return bytes(proto)
    try:
        return base64.b64decode(proto, validate=True)
    except binascii.Error as error:
        raise ValueError(f"proto={proto[:40]!r} is a str but not base64 ({error}): expected the model's bytes or "
                         "their base64 string") from None
