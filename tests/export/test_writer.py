"""`write_signatures`: each signature traced once, the tokenizer's lookup tables saved with the model's variables."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.export.writer import write_signatures
from tfllm.tokenizers import CharTokenizer

TEXTS = ["the cat sat", "the dog"]


def _functions(tokenizer, dense, traces):
    def ids(texts):
        traces.append("ids")
        return {"ids": tokenizer.tokenize(texts).to_tensor()}  # (B, T): the tokenizer's lookup table

    def projected(x):
        traces.append("projected")
        return {"y": dense(x)}

    return {"ids": (ids, [tf.TensorSpec([None], tf.string, name="texts")]),
            "projected": (projected, [tf.TensorSpec([None, 3], tf.float32, name="x")])}


def test_each_signature_is_traced_once_and_loads_with_its_tables_and_variables(tmp_path, capsys):
    tokenizer = CharTokenizer.train(TEXTS, verbose=False)
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    traces = []
    write_signatures(tmp_path, dense, _functions(tokenizer, dense, traces), resources_of=[tokenizer],
                     constants={"limit": 7}, verbose=True)
    assert sorted(traces) == ["ids", "projected"]  # keras.export.ExportArchive traced each twice

    loaded = tf.saved_model.load(str(tmp_path))
    assert list(loaded.signatures) == ["ids", "projected", "serving_default"]
    np.testing.assert_array_equal(loaded.signatures["ids"](texts=tf.constant(TEXTS))["ids"],
                                  tokenizer.tokenize(tf.constant(TEXTS)).to_tensor())
    np.testing.assert_allclose(loaded.signatures["serving_default"](texts=tf.constant(TEXTS))["ids"],
                               loaded.ids(tf.constant(TEXTS))["ids"])
    x = np.ones((1, 3), "float32")
    np.testing.assert_allclose(loaded.projected(x)["y"], dense(x), rtol=1e-6)
    assert int(loaded.limit) == 7 and len(loaded.variables) == len(loaded.trainable_variables) == 2
    assert capsys.readouterr().out.splitlines() == [
        f"Wrote a SavedModel to {tmp_path}, with the signatures:",
        "  ids(texts: string[None]) -> {ids: int32[None, None]}",
        "  projected(x: float32[None, 3]) -> {y: float32[None, 2]}",
        "  serving_default: ids",
    ]


def test_a_table_left_out_of_resources_of_is_refused_at_export(tmp_path):
    tokenizer = CharTokenizer.train(TEXTS, verbose=False)
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    with pytest.raises(AssertionError, match="references an 'untracked' resource"):  # TensorFlow's own check
        write_signatures(tmp_path, dense, _functions(tokenizer, dense, []))
