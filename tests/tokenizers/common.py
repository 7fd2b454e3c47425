"""Interface checks every tokenizer passes: graph == eager, tf.data, config, `.keras` and SavedModel round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import assert_config_round_trip


@keras.saving.register_keras_serializable(package="tfllm_tests")
class TokenizerHolder(keras.Model):
    """The smallest model that carries a tokenizer in its `.keras` file, as the language models do."""

    def __init__(self, tokenizer, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer
        self.embedding = keras.layers.Embedding(tokenizer.vocab_size, 2)

    def call(self, token_ids):
        return self.embedding(token_ids)  # (B, T) -> (B, T, 2)

    def get_config(self):
        return {**super().get_config(), "tokenizer": keras.saving.serialize_keras_object(self.tokenizer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config, tokenizer=keras.saving.deserialize_keras_object(config["tokenizer"]))
        return cls(**config)


class TokenizerModule(tf.Module):
    """A SavedModel with the tokenizer's resources and a string-in signature: ids and the round-tripped text."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(self, texts):
        ids = self.tokenizer.tokenize(texts)  # (B, None)
        return {"ids": ids.to_tensor(), "lengths": ids.row_lengths(), "text": self.tokenizer.detokenize(ids)}


def eager_results(tokenizer, texts):
    ids = tokenizer.tokenize(texts)
    return ids.to_list(), tokenizer.detokenize(ids).numpy().tolist()


def assert_specials(tokenizer, texts, tmp_path):
    """The special ids are the vocabulary's, dropped by default, written as their tokens on request."""
    vocabulary = tokenizer.get_vocabulary()
    assert len(vocabulary) == tokenizer.vocab_size
    assert {token: vocabulary.index(token) for token in tokenizer.special_tokens} == tokenizer.special_tokens
    roles = [tokenizer.bos_id, tokenizer.eos_id, *([] if tokenizer.pad_id is None else [tokenizer.pad_id])]
    ids = tf.constant([roles + [tokenizer.special_tokens[token] for token in tokenizer.extra_special_tokens]])
    assert tokenizer.detokenize(ids).numpy().tolist() == [b""]
    written = "".join(vocabulary[token_id] for token_id in ids.numpy()[0]).encode()
    assert tokenizer.detokenize(ids, skip_special_tokens=False).numpy().tolist() == [written]


def assert_extra_special_tokens_are_single_ids(tokenizer, texts, tmp_path):
    """Each extra special token in a text is its one id, and `skip_special_tokens=False` writes it back in place."""
    for token in tokenizer.extra_special_tokens:
        token_id = tokenizer.special_tokens[token]
        for text in texts:
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
            ids = tokenizer.tokenize(f"{token}{text}{token}").numpy().tolist()
            assert ids[0] == token_id and ids[-1] == token_id
            assert token_id not in ids[1:-1] or token in text
            alone = tokenizer.detokenize(tokenizer.tokenize(text), skip_special_tokens=False).numpy()
            written = tokenizer.detokenize(ids, skip_special_tokens=False).numpy()
            assert written == token.encode() + alone + token.encode()


def assert_graph_matches_eager(tokenizer, texts, tmp_path):
    """tf.function (jit_compile=False; XLA has no string ops), scalar inputs and `__call__` agree with eager."""
    want_ids, want_texts = eager_results(tokenizer, texts)
    assert tokenizer(texts).to_list() == want_ids

    @tf.function(jit_compile=False, input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(batch):
        ids = tokenizer.tokenize(batch)  # (B, None)
        return ids, tokenizer.detokenize(ids), tokenizer.detokenize(ids.to_tensor(tokenizer.fill_id))  # rows filled, then dropped

    ids, ragged_texts, dense_texts = round_trip(tf.constant(texts))
    assert ids.dtype == tf.int32
    assert ids.to_list() == want_ids
    assert ragged_texts.numpy().tolist() == want_texts
    assert dense_texts.numpy().tolist() == want_texts
    for text, want, back in zip(texts, want_ids, want_texts):
        ids = tf.function(tokenizer.tokenize)(tf.constant(text))  # (T,) for a scalar string
        assert ids.shape.rank == 1 and ids.numpy().tolist() == want
        assert tokenizer.detokenize(ids).numpy() == back


def assert_dataset_map_matches(tokenizer, texts, tmp_path):
    """A batched `Dataset.map` tokenizes and detokenizes as eager calls do."""
    want_ids, want_texts = eager_results(tokenizer, texts)
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(lambda batch: tokenizer.tokenize(batch))
    got_ids = [row for batch in dataset for row in batch.to_list()]
    assert got_ids == want_ids
    dataset = dataset.map(tokenizer.detokenize)
    assert [text for batch in dataset for text in batch.numpy().tolist()] == want_texts


def assert_rebuilt_from_config(tokenizer, texts, tmp_path):
    assert_config_round_trip(tokenizer)
    rebuilt = tokenizer.__class__.from_config(tokenizer.get_config())
    assert rebuilt.get_vocabulary() == tokenizer.get_vocabulary()
    assert eager_results(rebuilt, texts) == eager_results(tokenizer, texts)


def assert_keras_file_round_trip(tokenizer, texts, tmp_path):
    """The tokenizer saved inside a model's `.keras` file loads (safe mode) and tokenizes identically."""
    model = TokenizerHolder(tokenizer)
    model(tokenizer.tokenize(texts).to_tensor())  # builds the embedding
    path = tmp_path / "holder.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.tokenizer) is type(tokenizer)
    assert loaded.tokenizer is not tokenizer
    assert eager_results(loaded.tokenizer, texts) == eager_results(tokenizer, texts)
    np.testing.assert_array_equal(loaded.embedding.get_weights()[0], model.embedding.get_weights()[0])


def assert_saved_model_round_trip(tokenizer, texts, tmp_path):
    """`tf.saved_model.save` carries the tokenizer's resources; the loaded signature gives the same ids and text."""
    want_ids, want_texts = eager_results(tokenizer, texts)
    module = TokenizerModule(tokenizer)
    path = str(tmp_path / "saved_model")
    tf.saved_model.save(module, path, signatures={"serving_default": module.round_trip})
    loaded = tf.saved_model.load(path)
    for outputs in (loaded.round_trip(tf.constant(texts)), loaded.signatures["serving_default"](tf.constant(texts))):
        ids = tf.RaggedTensor.from_tensor(outputs["ids"], lengths=outputs["lengths"])
        assert ids.to_list() == want_ids
        assert outputs["text"].numpy().tolist() == want_texts


def assert_survives_seeding_and_clear_session(tokenizer, texts, tmp_path):
    """`keras.utils.set_random_seed` and `clear_session` empty TF's kernel cache; the tokenizer keeps working."""
    want = eager_results(tokenizer, texts)
    traced = tf.function(lambda batch: tokenizer.detokenize(tokenizer.tokenize(batch)))
    assert traced(tf.constant(texts)).numpy().tolist() == want[1]
    keras.utils.set_random_seed(7)
    keras.backend.clear_session()
    assert eager_results(tokenizer, texts) == want
    assert traced(tf.constant(texts)).numpy().tolist() == want[1]


# Each takes (tokenizer, texts, tmp_path); `texts` is a list of at least two str/bytes.
def assert_python_lists_come_back_and_bad_shapes_are_named(tokenizer, texts, tmp_path):
    """`detokenize` reads a batch's `to_list()` (rows of any lengths) as the ragged ids; floats, ids of rank 3 and
    texts of rank 2 are refused by name (floats were cut to ids; the shapes failed deep inside TensorFlow)."""
    ids, detokenized = eager_results(tokenizer, texts)
    assert tokenizer.detokenize(ids).numpy().tolist() == detokenized
    with pytest.raises(ValueError, match=r"ids holds 3.5, which is not a token id of this model"):
        tokenizer.detokenize([[3.5]])
    with pytest.raises(ValueError, match=r"ids of dtype float32: expected integer token ids"):
        tokenizer.detokenize(np.array([[3.0]], np.float32))
    with pytest.raises(ValueError, match=r"ids of shape \(1, 1, 2\): expected \(T,\) for one text or \(B, T\)"):
        tokenizer.detokenize(np.zeros((1, 1, 2), np.int32))
    with pytest.raises(ValueError, match=r"texts of shape \(1, 2\): expected one string or a vector \(B,\) of them"):
        tokenizer.tokenize([["a", "b"]])
    # Four tokenizers of five failed inside TensorFlow ("Rank of input_tensor must be statically known").
    unknown_rank = tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec(None, tf.string)])
    with pytest.raises(ValueError, match=r"texts of unknown rank: expected one string or a vector \(B,\) of them"):
        unknown_rank.get_concrete_function()


INTERFACE_CHECKS = [
    assert_specials,
    assert_extra_special_tokens_are_single_ids,
    assert_graph_matches_eager,
    assert_dataset_map_matches,
    assert_rebuilt_from_config,
    assert_keras_file_round_trip,
    assert_saved_model_round_trip,
    assert_survives_seeding_and_clear_session,
    assert_python_lists_come_back_and_bad_shapes_are_named,
]
