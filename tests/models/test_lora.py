"""LoRA on a TransformerLM: only the adapter trains, it starts as the model it adapts, merging and saving keep its
outputs, and what cannot be adapted is refused with one clear line."""

import keras
import numpy as np
import pytest
from keras import ops

from tfllm.data import lm_dataset
from tfllm.models import LSTMLM, SimpleRNNLM, TransformerLM
from tfllm.models.lora import (
    adapter_weights,
    enable_lora,
    load_adapter,
    lora_settings,
    merge_lora,
    parameter_counts,
    save_adapter,
)
from tfllm.tokenizers import ByteTokenizer
from tfllm.training.finetune import continue_pretraining

VOCAB = 259
TEXTS = [f"{index % 5} the cat sat on the mat. the dog sat on the log." for index in range(64)]
NEW_TEXTS = [text.replace("cat", "bird").replace("mat", "tree") for text in TEXTS]  # what the adapter learns


def _transformer(seed=0):
    keras.utils.set_random_seed(seed)
    model = TransformerLM(VOCAB, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
                          max_sequence_length=24, tokenizer=ByteTokenizer())
    model(np.zeros((1, 2), "int32"))
    return model


def _token_ids():
    return np.random.default_rng(0).integers(3, VOCAB, size=(2, 24)).astype("int32")


@pytest.fixture(scope="module")
def pretrained():
    """The weights of a base model trained a little on TEXTS (an untrained model's tiny frozen embeddings leave an
    adapter nothing to steer)."""
    model = _transformer()
    continue_pretraining(model, TEXTS, steps=30, sequence_length=24, batch_size=8, learning_rate=1e-2, seed=0)
    return [ops.convert_to_numpy(weight) for weight in model.weights]


def _base(pretrained):
    model = _transformer()
    model.set_weights(pretrained)
    return model


@pytest.fixture(scope="module")
def trained(pretrained):
    """(the base model's weights by path, the adapted model after training on NEW_TEXTS, losses before and after)."""
    model = _base(pretrained)
    base = {weight.path: ops.convert_to_numpy(weight) for weight in model.weights}
    before = _loss(model, NEW_TEXTS)
    model.enable_lora(rank=4, alpha=8)
    continue_pretraining(model, NEW_TEXTS, steps=40, sequence_length=24, batch_size=8, learning_rate=1e-2, seed=0)
    return base, model, (before, _loss(model, NEW_TEXTS))


def _loss(model, texts):
    """The mean next-token loss on the first 32 windows of `texts`, computed eagerly."""
    x, y = next(iter(lm_dataset(texts, model.tokenizer, 24, 32, shuffle=False)))
    return float(keras.losses.sparse_categorical_crossentropy(y, model(x), from_logits=True).numpy().mean())


def test_only_the_adapter_is_trainable_and_the_adapted_model_starts_as_the_base():
    model = _transformer()
    token_ids = _token_ids()
    before = np.array(model(token_ids))
    total_before = parameter_counts(model)["total_parameters"]
    model.enable_lora(rank=4)
    trainable = model.trainable_weights
    paths = sorted(weight.path.split("/", 1)[1] for weight in trainable)
    projections = ["self_attention/query", "self_attention/key", "self_attention/value",
                   "self_attention/attention_output", "feedforward_intermediate_dense", "feedforward_output_dense"]
    assert paths == sorted(f"block_{block}/{layer}/lora_kernel_{part}" for block in (0, 1) for layer in projections
                           for part in "ab")
    assert {id(weight) for weight in trainable} == {id(weight) for weight in adapter_weights(model).values()}
    # A: (D, rank) for a Dense, (D, H, rank) for the per-head query/key/value kernels (D, H, Dh); B: (rank, out).
    shapes = {key: tuple(weight.shape) for key, weight in adapter_weights(model).items()}
    assert shapes["block_0/self_attention/query/lora_kernel_a"] == (32, 2, 4)
    assert shapes["block_0/self_attention/query/lora_kernel_b"] == (4, 16)
    assert shapes["block_0/self_attention/attention_output/lora_kernel_a"] == (2, 16, 4)
    assert shapes["block_0/feedforward_intermediate_dense/lora_kernel_a"] == (32, 4)
    assert shapes["block_0/feedforward_intermediate_dense/lora_kernel_b"] == (4, 64)
    counts = parameter_counts(model)
    adapter = 2 * (3 * (32 * 2 * 4 + 4 * 16) + (2 * 16 * 4 + 4 * 32) + (32 * 4 + 4 * 64) + (64 * 4 + 4 * 32))
    assert counts == {"trainable_parameters": adapter, "total_parameters": total_before + adapter}
    np.testing.assert_array_equal(np.array(model(token_ids)), before)  # B = 0: exactly the base model
    assert lora_settings(model) == {"rank": 4, "alpha": 4.0}


def test_training_changes_only_the_adapter_and_lowers_the_loss(trained):
    base, model, (before, after) = trained
    assert after < before - 0.15, (before, after)  # measured: 3.11 -> 2.88 nats per token
    for weight in model.weights:
        if weight.path in base:
            np.testing.assert_array_equal(ops.convert_to_numpy(weight), base[weight.path], err_msg=weight.path)
    assert all(np.any(ops.convert_to_numpy(weight) != 0) for key, weight in adapter_weights(model).items()
               if key.endswith("lora_kernel_b"))


def test_merging_gives_a_plain_model_with_the_same_outputs(trained):
    _, model, _ = trained
    merged = merge_lora(model)
    assert lora_settings(merged) is None and type(merged) is TransformerLM
    assert not any("lora" in weight.path for weight in merged.weights)
    assert len(merged.trainable_weights) == len(merged.weights) == len(model.weights) - 24
    token_ids = _token_ids()
    np.testing.assert_allclose(np.array(merged(token_ids)), np.array(model(token_ids)), atol=1e-5)
    prompts = ["0 the cat", "3 the dog sat"]
    assert merged.generate(prompts, max_new_tokens=12) == model.generate(prompts, max_new_tokens=12)
    # The merged kernel is W + alpha / rank * A @ B; the base model's weights are untouched by merging.
    layer = model.blocks[1].self_attention.query_dense
    kernel = dict((weight.path.split("/", 1)[1], weight) for weight in model.weights)[
        "block_1/self_attention/query/kernel"]
    expected = ops.convert_to_numpy(kernel) + 2.0 * np.einsum("dhr,rk->dhk", ops.convert_to_numpy(layer.lora_kernel_a),
                                                  ops.convert_to_numpy(layer.lora_kernel_b))
    np.testing.assert_allclose(ops.convert_to_numpy(merged.blocks[1].self_attention.query_dense.kernel), expected, atol=1e-6)
    assert merge_lora(merged) is merged  # nothing to merge


def test_an_adapter_saved_alone_loads_onto_a_fresh_base(pretrained, trained, tmp_path):
    _, model, _ = trained
    path = tmp_path / "adapter.weights.h5"
    size = save_adapter(model, path)
    assert size == path.stat().st_size and size < 50_000  # 3,968 float32s and the HDF5 layout of 24 arrays
    copy = load_adapter(_base(pretrained), path)  # LoRA enabled from the file
    assert lora_settings(copy) == {"rank": 4, "alpha": 8.0}
    token_ids = _token_ids()
    np.testing.assert_array_equal(np.array(copy(token_ids)), np.array(model(token_ids)))

    with pytest.raises(ValueError, match=r"holds an adapter of rank 4, alpha 8; the model's LoRA has rank 2, alpha 2"):
        load_adapter(_transformer().enable_lora(2), path)
    wider = TransformerLM(VOCAB, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=64, max_sequence_length=24)
    with pytest.raises(ValueError, match=r"does not fit transformer_lm.*: block_0/self_attention/query/lora_kernel_a "
                                         r"has the shape \(32, 2, 4\) there and \(16, 2, 4\) in the model"):
        load_adapter(wider, path)
    deeper = TransformerLM(VOCAB, num_layers=3, num_heads=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=24)
    with pytest.raises(ValueError, match=r"block_2/feedforward_intermediate_dense/lora_kernel_a is only in the model"):
        load_adapter(deeper, path)
    (tmp_path / "other.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"other.h5 cannot be read as a LoRA adapter"):
        load_adapter(_transformer(), tmp_path / "other.h5")


def _saved_adapter(path, num_layers, hidden_dim=32):
    """Saves the adapter (rank 2, random A and B) of a fresh Transformer of `num_layers` and `hidden_dim` at `path`;
    returns its arrays by their path in the model."""
    keras.utils.set_random_seed(1)
    model = TransformerLM(VOCAB, num_layers=num_layers, num_heads=2, hidden_dim=hidden_dim, intermediate_dim=64,
                          max_sequence_length=24)
    enable_lora(model, 2)
    for weight in model.trainable_weights:
        weight.assign(keras.random.normal(weight.shape, stddev=0.1, seed=3))
    save_adapter(model, path)
    return {key: ops.convert_to_numpy(weight) for key, weight in adapter_weights(model).items()}


def test_a_refused_adapter_leaves_the_model_as_it_was(tmp_path):
    model = _transformer()  # 2 blocks, hidden_dim 32
    trainable = len(model.trainable_weights)
    assert trainable == len(model.weights) == 36
    _saved_adapter(tmp_path / "shallower.h5", num_layers=1)
    with pytest.raises(ValueError, match=r"shallower.h5 does not fit transformer_lm.*: block_1/\S+ is only in the "
                                         r"model$"):
        load_adapter(model, tmp_path / "shallower.h5")
    assert lora_settings(model) is None and len(model.trainable_weights) == trainable
    _saved_adapter(tmp_path / "narrower.h5", num_layers=2, hidden_dim=16)
    with pytest.raises(ValueError, match=r"block_0/self_attention/query/lora_kernel_a has the shape \(16, 2, 2\) "
                                         r"there and \(32, 2, 2\) in the model$"):
        load_adapter(model, tmp_path / "narrower.h5")
    assert lora_settings(model) is None and len(model.trainable_weights) == trainable

    fitting = _saved_adapter(tmp_path / "fitting.h5", num_layers=2)
    assert load_adapter(model, tmp_path / "fitting.h5") is model  # the retry with the right adapter works
    assert lora_settings(model) == {"rank": 2, "alpha": 2.0} and len(model.trainable_weights) == 24
    loaded = {key: ops.convert_to_numpy(weight) for key, weight in adapter_weights(model).items()}
    assert loaded.keys() == fitting.keys()
    for key, value in fitting.items():
        np.testing.assert_array_equal(loaded[key], value)


def test_keras_saving_of_an_adapted_model_writes_merged_kernels(trained, tmp_path):
    _, model, _ = trained
    model.save(tmp_path / "adapted.keras")
    loaded = keras.saving.load_model(tmp_path / "adapted.keras")
    assert lora_settings(loaded) is None
    token_ids = _token_ids()
    np.testing.assert_allclose(np.array(loaded(token_ids)), np.array(model(token_ids)), atol=1e-5)


@pytest.mark.parametrize("rank, alpha, message", [
    (0, None, "rank=0 is invalid: expected a positive integer."),
    (-2, None, "rank=-2 is invalid: expected a positive integer."),
    (2.5, None, "rank=2.5 is invalid: expected a positive integer."),
    (4, 0, "alpha=0 is invalid: expected a number > 0."),
    (4, -1.0, "alpha=-1.0 is invalid: expected a number > 0."),
])
def test_bad_ranks_and_alphas_are_refused(rank, alpha, message):
    model = _transformer()
    with pytest.raises(ValueError, match=f"^{message.replace('.', '[.]')}$"):
        model.enable_lora(rank, alpha)
    assert lora_settings(model) is None and len(model.trainable_weights) == len(model.weights)


def test_what_cannot_be_adapted_is_refused():
    model = _transformer().enable_lora(2)
    with pytest.raises(ValueError, match=r"^LoRA is already enabled on transformer_lm.* \(rank 2, alpha 2\): merge it "
                                         r"first with tfllm.models.lora.merge_lora\(model\)$"):
        model.enable_lora(4)
    for recurrent in (LSTMLM(VOCAB, hidden_dim=8), SimpleRNNLM(VOCAB, hidden_dim=8)):
        with pytest.raises(ValueError, match=f"^LoRA adapts the attention and MLP projections of Transformer blocks: "
                                             f"{type(recurrent).__name__} has none"):
            enable_lora(recurrent, 2)
    with pytest.raises(ValueError, match="has no LoRA adapter to save"):
        save_adapter(_transformer(), "unused.h5")
    # Width 32: the widest kernels' narrower side is 32 (a query kernel's is its 16-wide heads). Rank 5000 on a
    # 32-wide model was taken: an adapter 148 times the model's size.
    with pytest.raises(ValueError, match=r"^rank=33 is above 32, the highest rank an update of transformer_lm\w*'s "
                                         r"projections can have \(the narrower side of its widest kernel\): a larger "
                                         r"adapter learns nothing more$"):
        enable_lora(_transformer(), 33)
    assert lora_settings(enable_lora(_transformer(), 32))["rank"] == 32
