"""`write_signatures`: a SavedModel of a Keras model's variables, the resources of other layers (a tokenizer's
lookup tables) and signature functions, each function traced once.

`keras.export.ExportArchive.write_out` traces every endpoint twice: once to list the variables it uses, outside
`tf.saved_model.save`, and once more inside it, where TensorFlow keys its traces apart (a trace's cache key holds the
save options' variable policy). For a decode loop, most of an export's time is tracing, so this writer tracks the
variables and resources itself and lets `tf.saved_model.save` make the one trace every signature needs: on a
2-core CPU, `benchmarks/export_writing.py` measured exports of `tfllm train`'s default models 1.70-1.95x as fast
for the Transformer and 1.30x for the LSTM. What it writes loads as an `ExportArchive`'s does:
`tf.saved_model.load(path)` has the functions as methods, their signatures in `.signatures` (the first also as
`serving_default`), and the model's `variables`, `trainable_variables` and `non_trainable_variables`.
"""

import functools

import tensorflow as tf


def write_signatures(path, model, functions, resources_of=(), constants=None, verbose=False):
    """Writes `functions` as the signatures of a SavedModel at `path`.

    Args:
        path: the directory to write (as `tf.saved_model.save`).
        model: the Keras model (or layer) whose variables the functions read; they are saved with it.
        functions: name -> (Python function, input signature: a list of named `tf.TensorSpec`s), in order; each
            function returns a dict of tensors (a signature's named outputs). The first is also `serving_default`
            unless one has that name.
        resources_of: layers or trackables whose TensorFlow resources (lookup tables, ...) the functions use.
        constants: name -> int, stored as int32 scalars (`loaded.<name>`).
        verbose: print each signature's inputs and outputs.

    >>> import tempfile
    >>> import keras
    >>> layer = keras.layers.Dense(2)
    >>> layer.build((None, 3))
    >>> path = tempfile.mkdtemp()
    >>> write_signatures(path, layer, {"project": (lambda x: {"y": layer(x)}, [tf.TensorSpec([None, 3], tf.float32)])},
    ...                  constants={"width": 2})
    >>> loaded = tf.saved_model.load(path)
    >>> sorted(loaded.signatures), int(loaded.width), len(loaded.variables)
    (['project', 'serving_default'], 2, 2)
    >>> loaded.signatures["project"](tf.ones([1, 3]))["y"].shape
    TensorShape([1, 2])
    """
    root = tf.__internal__.tracking.AutoTrackable()  # as ExportArchive's root: tf.Module's `variables` is computed
    root.variables = list(model.variables)
    root.trainable_variables = list(model.trainable_variables)
    root.non_trainable_variables = list(model.non_trainable_variables)
    root.resources = [resource for owner in resources_of for resource in _resources(owner)]
    signatures, output_specs = {}, {}
    for name, (function, input_signature) in functions.items():
        signatures[name] = tf.function(_recording_outputs(function, output_specs, name),
                                       input_signature=input_signature, autograph=False)
        setattr(root, name, signatures[name])
    signatures.setdefault("serving_default", next(iter(signatures.values())))
    for name, value in (constants or {}).items():
        setattr(root, name, tf.Variable(value, trainable=False, dtype=tf.int32, name=name))
    tf.saved_model.save(root, path, signatures=signatures)
    if verbose:
        print(f"Wrote a SavedModel to {path}, with the signatures:")
        for name, (_, input_signature) in functions.items():
            print(_described(name, input_signature, output_specs[name]))
        if "serving_default" not in functions:
            print(f"  serving_default: {next(iter(functions))}")


def _recording_outputs(function, output_specs, name):
    """`function`, which records the specs of its outputs in `output_specs[name]` when traced."""

    @functools.wraps(function)  # the function's own argument names
    def traced(*args):
        outputs = function(*args)
        output_specs[name] = {key: tf.TensorSpec.from_tensor(value) for key, value in outputs.items()}
        return outputs

    return traced


def _resources(owner):
    """The TensorFlow resources (lookup tables and the like) reachable from `owner`."""
    return [trackable for trackable in tf.train.TrackableView(owner).descendants()
            if isinstance(trackable, tf.saved_model.experimental.TrackableResource)]


def _described(name, input_specs, output_specs):
    """`name(input: dtype[shape], ...) -> {output: dtype[shape], ...}`, None for an unknown size."""
    inputs = ", ".join(f"{spec.name}: {spec.dtype.name}{spec.shape.as_list()}" for spec in input_specs)
    outputs = ", ".join(f"{key}: {spec.dtype.name}{spec.shape.as_list()}" for key, spec in output_specs.items())
    return f"  {name}({inputs}) -> {{{outputs}}}"
