"""LoRA (low-rank adaptation, Hu et al. 2021) of a `TransformerLM`: train a small adapter, keep the model as it was.

Each adapted projection keeps its kernel W frozen and learns a low-rank change of it, read as

    W' = W + (alpha / rank) * A @ B

with A (in, rank) and B (rank, out); B starts at zero, so an adapted model begins as exactly the model it adapts.
The layers are Keras's own: `keras.layers.Dense.enable_lora` and `keras.layers.EinsumDense.enable_lora` (for an
`EinsumDense` kernel of shape (..., out), A has the shape (..., rank): the attention's query, key and value kernels
(D, H, Dh) learn one (D, H, rank) @ (rank, Dh) change). `enable_lora` adapts the six projections of every
`TransformerBlock`: the attention's query, key, value and output, and the two MLP layers; everything else
(embeddings, positions, layer norms, biases) is frozen, so only A and B train.

An adapter is saved alone (`save_adapter`: an HDF5 file of the A and B of each layer, keyed by the layer's path in
the model, and the rank and alpha) and loaded onto the model it was trained from (`load_adapter`). `merge_lora`
folds it into the kernels and returns a model without LoRA, which is what an export serves. (Keras's own `.keras`
saving of an adapted model writes merged kernels too.)
"""

import h5py
import keras
import numpy as np
from keras import ops

from tfllm.checks import require_positive_int, require_positive_number
from tfllm.evaluation import scoring
from tfllm.generation import text_generation
from tfllm.layers import TransformerBlock

ADAPTER_FORMAT = "tfllm-lora-adapter"
_LORA_WEIGHTS = ("lora_kernel_a", "lora_kernel_b")


def enable_lora(model, rank, alpha=None):
    """Adds a LoRA adapter of `rank` to the attention and MLP projections of every block of `model` and freezes every
    other weight: afterwards `model.trainable_weights` are the adapter's A and B, and nothing else.

    Compile the model afterwards (the recipes of `tfllm.training.finetune` do). The model's outputs do not change
    until it trains: B starts at zero.

    Args:
        model: a `tfllm.models.TransformerLM` (built here if it is not yet). The recurrent models have no
            projections of this kind and are refused.
        rank: the rank r of each change, a positive integer (4 to 16 is usual).
        alpha: the scale numerator: the change is multiplied by alpha / rank. None means alpha = rank (a scale of
            1), Keras's default.

    Returns:
        The model.

    Raises:
        ValueError: a bad rank or alpha, a model without Transformer blocks, or a model that has LoRA already.

    Example:

    >>> from tfllm.models import TransformerLM
    >>> keras.utils.set_random_seed(0)
    >>> model = TransformerLM(259, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
    ...                       max_sequence_length=8)
    >>> token_ids = ops.ones((1, 8), "int32")
    >>> before = model(token_ids)
    >>> model = enable_lora(model, rank=4)
    >>> len(model.trainable_weights)  # A and B of 6 projections in each of 2 blocks
    24
    >>> sorted({weight.name for weight in model.trainable_weights})
    ['lora_kernel_a', 'lora_kernel_b']
    >>> bool(np.all(model(token_ids) == before))  # B = 0: exactly the model it adapts
    True
    >>> lora_settings(model)
    {'rank': 4, 'alpha': 4.0}
    """
    rank, alpha, layers = _require_adaptable(model, rank, alpha)
    for layer in layers.values():
        layer.enable_lora(rank, lora_alpha=alpha)
    _forget_compiled(model)
    adapter = {id(weight) for weight in adapter_weights(model).values()}
    for weight in model.weights:
        weight.trainable = id(weight) in adapter
    return model


def lora_settings(model):
    """`{"rank", "alpha"}` of the model's LoRA adapter, or None when it has none.

    >>> from tfllm.models import LSTMLM
    >>> print(lora_settings(LSTMLM(259, hidden_dim=8)))
    None
    """
    layers = _adapted_layers(model)
    if not layers:
        return None
    layer = next(iter(layers.values()))
    return {"rank": int(layer.lora_rank), "alpha": float(layer.lora_alpha)}


def adapter_weights(model):
    """The adapter's variables by their path in the model (`block_0/self_attention/query/lora_kernel_a`, ...), in
    the model's order; empty without LoRA."""
    layers = _adapted_layers(model)
    return {f"{path}/{name}": getattr(layer, name) for path, layer in layers.items() for name in _LORA_WEIGHTS}


def merge_lora(model):
    """A new model of the same class and config without LoRA, whose kernels are the adapted ones,
    W + (alpha / rank) * A @ B, computed in float32: it gives the adapted model's outputs (to float rounding), has no
    adapter variables, and trains every weight again. A model without LoRA is returned as it is.

    The new model is not compiled; it has the model's tokenizer and prompt template (through its config).

    Example:

    >>> from tfllm.models import TransformerLM
    >>> keras.utils.set_random_seed(0)
    >>> model = enable_lora(TransformerLM(259, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
    ...                                   max_sequence_length=8), rank=2)
    >>> for weight in model.trainable_weights:  # as if it had trained
    ...     _ = weight.assign(keras.random.normal(weight.shape, stddev=0.1, seed=1))
    >>> merged = merge_lora(model)
    >>> len(merged.weights) == len(model.weights) - 12, lora_settings(merged)
    (True, None)
    >>> token_ids = ops.ones((1, 8), "int32")
    >>> bool(np.allclose(merged(token_ids), model(token_ids), atol=1e-5))
    True
    """
    settings = lora_settings(model)
    if settings is None:
        return model
    previous_policy = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy(model.dtype_policy)  # the layers are made under the global policy
        merged = type(model).from_config(model.get_config())
    finally:
        keras.config.set_dtype_policy(previous_policy)
    _build(merged)
    adapted = _adapted_layers(model)
    scale = settings["alpha"] / settings["rank"]
    sources = {_relative_path(model, weight): weight for weight in model.weights}
    for weight in merged.weights:
        path = _relative_path(merged, weight)
        layer_path, name = path.rsplit("/", 1)
        if name == "kernel" and layer_path in adapted:
            layer = adapted[layer_path]
            change = scale * ops.matmul(layer.lora_kernel_a, layer.lora_kernel_b)  # (..., out), float32
            weight.assign(ops.cast(ops.cast(sources[path], "float32") + change, weight.dtype))
        else:
            weight.assign(sources[path])
    return merged


def save_adapter(model, path):
    """Writes the model's LoRA adapter alone to `path` (HDF5, e.g. `adapter.weights.h5`): the A and B of every
    adapted layer under its path in the model, and the rank and alpha as attributes. Returns the file's size in
    bytes. `load_adapter`'s example saves one and loads it back."""
    settings = lora_settings(model)
    if settings is None:
        raise ValueError(f"{model.name} has no LoRA adapter to save: call enable_lora(model, rank) and train it first")
    with h5py.File(path, "w") as file:
        file.attrs.update(format=ADAPTER_FORMAT, **settings)
        for key, weight in adapter_weights(model).items():
            file.create_dataset(key, data=np.asarray(ops.convert_to_numpy(weight)))
    with open(path, "rb") as file:
        return len(file.read())


def load_adapter(model, path):
    """Loads the adapter `save_adapter` wrote at `path` onto `model`, the model it was trained from (or a copy):
    enables LoRA with the file's rank and alpha if the model has none. Returns the model.

    Every check runs before the model changes: a call that raises leaves the model as it was (without LoRA, if it
    had none).

    Raises:
        ValueError: a file that is not an adapter, one of another rank or alpha than the model's LoRA, one whose
            layers or shapes are not the model's (naming the first that differs), or a model `enable_lora` refuses.

    Example:

    >>> import os, tempfile
    >>> from tfllm.models import TransformerLM
    >>> def make():
    ...     return TransformerLM(259, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
    ...                          max_sequence_length=8)
    >>> keras.utils.set_random_seed(0)
    >>> model = enable_lora(make(), rank=2, alpha=8)
    >>> for weight in model.trainable_weights:
    ...     _ = weight.assign(keras.random.normal(weight.shape, stddev=0.1, seed=2))
    >>> path = os.path.join(tempfile.mkdtemp(), "adapter.weights.h5")
    >>> size = save_adapter(model, path)
    >>> copy = load_adapter(make(), path)
    >>> lora_settings(copy)
    {'rank': 2, 'alpha': 8.0}
    >>> all(np.array_equal(a, b) for a, b in zip(adapter_weights(copy).values(), adapter_weights(model).values()))
    True
    """
    stored, values = _read_adapter(path)
    had_lora = lora_settings(model) is not None
    if had_lora:
        _require_same_settings(model, path, stored)
    else:
        _require_adaptable(model, stored["rank"], stored["alpha"])
    _require_same_layout(model, path, values, _adapter_shapes(model, stored["rank"]))
    # Only now that every check has passed does the model change.
    if not had_lora:
        enable_lora(model, stored["rank"], stored["alpha"])
    for key, weight in adapter_weights(model).items():
        weight.assign(values[key])
    return model


def parameter_counts(model):
    """`{"trainable_parameters", "total_parameters"}` of a model (the adapter and everything, with LoRA).

    >>> from tfllm.models import TransformerLM
    >>> model = TransformerLM(259, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=8)
    >>> parameter_counts(enable_lora(model, rank=1))  # A and B: 3 * (8*2 + 4) + (2*4 + 8) + (8 + 16) + (16 + 8)
    {'trainable_parameters': 124, 'total_parameters': 2876}
    """
    def count(weights):
        return int(sum(np.prod(weight.shape) for weight in weights))

    return {"trainable_parameters": count(model.trainable_weights), "total_parameters": count(model.weights)}


def _require_adaptable(model, rank, alpha):
    """`enable_lora`'s checks, which change nothing (beyond building the model): returns the rank, the alpha (None
    read as the rank) and the projections to adapt, by their path in the model."""
    rank = require_positive_int("rank", rank)
    alpha = float(rank) if alpha is None else require_positive_number("alpha", alpha)
    layers = _projections(model)
    if not layers:
        raise ValueError(f"LoRA adapts the attention and MLP projections of Transformer blocks: {type(model).__name__} "
                         "has none (fine-tune a recurrent model fully instead)")
    settings = lora_settings(model)
    if settings is not None:
        raise ValueError(f"LoRA is already enabled on {model.name} (rank {settings['rank']}, alpha "
                         f"{settings['alpha']:g}): merge it first with tfllm.models.lora.merge_lora(model)")
    # The update A B of a kernel read as a (inputs, outputs) matrix has at most the rank of its narrower side.
    highest = max(min(int(np.prod(layer.kernel.shape[:-1])), int(layer.kernel.shape[-1])) for layer in layers.values())
    if rank > highest:
        raise ValueError(f"rank={rank} is above {highest}, the highest rank an update of {model.name}'s projections "
                         "can have (the narrower side of its widest kernel): a larger adapter learns nothing more")
    return rank, alpha, layers


def _read_adapter(path):
    """The `{"rank", "alpha"}` of the adapter file at `path` and its arrays by their path in the model."""
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path} cannot be read as a LoRA adapter: {error}") from None
    with file:
        if file.attrs.get("format") != ADAPTER_FORMAT:
            raise ValueError(f"{path} is not a LoRA adapter written by tfllm (no format={ADAPTER_FORMAT!r})")
        settings = {"rank": int(file.attrs["rank"]), "alpha": float(file.attrs["alpha"])}
        values = {}
        file.visititems(lambda key, item: values.update({key: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return settings, values


def _require_same_settings(model, path, settings):
    """Refuses an adapter file whose rank or alpha are not those of the model's LoRA."""
    own = lora_settings(model)
    if own != settings:
        raise ValueError(f"{path} holds an adapter of rank {settings['rank']}, alpha {settings['alpha']:g}; the "
                         f"model's LoRA has rank {own['rank']}, alpha {own['alpha']:g}")


def _adapter_shapes(model, rank):
    """The shape of each adapter variable of `model`, by its path: its LoRA's, or, without LoRA, those
    `enable_lora(model, rank)` would make (for a kernel of shape (..., out), A is (..., rank) and B (rank, out))."""
    if lora_settings(model) is not None:
        return {key: tuple(weight.shape) for key, weight in adapter_weights(model).items()}
    shapes = {}
    for path, layer in _projections(model).items():
        *inputs, outputs = layer.kernel.shape
        shapes[f"{path}/{_LORA_WEIGHTS[0]}"] = (*inputs, rank)
        shapes[f"{path}/{_LORA_WEIGHTS[1]}"] = (rank, outputs)
    return shapes


def _require_same_layout(model, path, values, shapes):
    """Refuses an adapter file whose arrays are not, by path and shape, the adapter variables `shapes` describes."""
    for key in sorted(set(shapes) ^ set(values)):
        where = "the model" if key in shapes else path
        raise ValueError(f"{path} does not fit {model.name}: {key} is only in {where}")
    for key, shape in shapes.items():
        if tuple(values[key].shape) != tuple(shape):
            raise ValueError(f"{path} does not fit {model.name}: {key} has the shape {tuple(values[key].shape)} "
                             f"there and {tuple(shape)} in the model")


def _projections(model):
    """The layers LoRA adapts, by their path in the model: the four attention projections and two MLP layers of each
    `TransformerBlock` (none for a model without Transformer blocks). Builds the model if it is not yet."""
    blocks = getattr(model, "blocks", None)
    if not blocks or not all(isinstance(block, TransformerBlock) for block in blocks):
        return {}
    _build(model)
    layers = {}
    for block in blocks:
        attention = block.self_attention
        for layer in (attention.query_dense, attention.key_dense, attention.value_dense, attention.output_dense,
                      block.feedforward_intermediate_dense, block.feedforward_output_dense):
            layers[_relative_path(model, layer)] = layer
    return layers


def _adapted_layers(model):
    """The projections of `model` that have LoRA enabled, by their path in the model."""
    if not model.built:
        return {}
    return {path: layer for path, layer in _projections(model).items() if layer.lora_enabled}


def _forget_compiled(model):
    """Drops the functions compiled for `model` before it had an adapter (by Keras, and tfllm's generation and
    scoring caches): a traced graph keeps the computation it saw, the kernel alone."""
    model.train_function = model.test_function = model.predict_function = None
    for cache in (scoring._COMPILED, text_generation._COMPILED):
        cache.pop(model, None)


def _relative_path(model, item):
    """The path of a variable or layer below `model`: `block_0/self_attention/query/kernel`, whether Keras prefixed
    it with the model's name (a model made in Python) or not (a model loaded from a `.keras` file)."""
    prefix = f"{model.name}/"
    return item.path[len(prefix):] if item.path.startswith(prefix) else item.path


def _build(model):
    if not model.built:
        length = min(2, model.max_sequence_length or 2)  # two positions: over one, Keras warns about the softmax
        model(ops.zeros((1, length), "int32"))
