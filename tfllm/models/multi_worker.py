"""Keras's `fit` under MultiWorkerMirroredStrategy, mended for tfllm's models (keras-team/keras#20585).

With tensorflow 2.21 and keras 3.15, `model.fit` under `tf.distribute.MultiWorkerMirroredStrategy` fails in
`keras/src/backend/tensorflow/trainer.py` twice:

1. `_maybe_symbolic_build` takes the first batch of the distributed dataset and averages it over the replicas
   with `strategy.reduce("MEAN", batch)`, only to know the batch's shape; across workers that is a collective op
   on int32 token ids, which fails;
2. `reduce_per_replica` (mode "mean", used for the logs of every train and test step) calls
   `strategy.reduce("MEAN", value, axis=0)` on the multi-worker path, and the logs are scalars: there is no axis 0.

`MultiWorkerFit`, a mixin of `CausalLM` and `SequenceClassifier`, mends both for tfllm's models only, and only under
a multi-worker strategy: its `_maybe_symbolic_build` builds from this worker's own part of the first batch (no
collective), and its `fit`, `evaluate` and `predict` replace `reduce_per_replica` in Keras's trainer module, for the
duration of the call, by one that reduces scalars over no axis (what the single-host path of the same function
does). Every other model, and every other strategy, runs Keras's code unchanged.

It is written for the Keras versions in `FIXED_KERAS_VERSIONS`. With another Keras it is left off (a newer one may
have fixed the bug; see the issue); tests/training/test_distribution.py trains two workers through `fit` and
fails on a Keras version outside `FIXED_KERAS_VERSIONS`, so an upgrade is checked before the mend is extended.
"""

import contextlib

import keras
import tensorflow as tf

FIXED_KERAS_VERSIONS = ("3.15",)  # major.minor versions this mends, checked by the multi-worker tests


def fix_applies(strategy):
    """Whether the mend is needed: a multi-worker strategy under a Keras version it was written for."""
    keras_minor = ".".join(keras.__version__.split(".")[:2])
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and keras_minor in FIXED_KERAS_VERSIONS


class MultiWorkerFit:
    """Mixin for `keras.Model` subclasses: `fit`, `evaluate` and `predict` that work under
    MultiWorkerMirroredStrategy (see the module). Put it before `keras.Model` in the bases."""

    def fit(self, *args, **kwargs):
        with _scalar_reductions(self.distribute_strategy):
            return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        with _scalar_reductions(self.distribute_strategy):
            return super().evaluate(*args, **kwargs)

    def predict(self, *args, **kwargs):
        with _scalar_reductions(self.distribute_strategy):
            return super().predict(*args, **kwargs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and fix_applies(self.distribute_strategy):
            for _, _, batches in iterator:
                # This worker's part of the first batch: enough to know the shapes, and no collective op.
                data_batch = tf.nest.map_structure(_first_local_value, next(batches))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


def _first_local_value(value):
    if isinstance(value, tf.distribute.DistributedValues):
        return value.values[0]
    return value


@contextlib.contextmanager
def _scalar_reductions(strategy):
    """Keras's `reduce_per_replica`, reducing rank-0 values over no axis, while the `with` block runs."""
    if not fix_applies(strategy):
        yield
        return
    from keras.src.backend.tensorflow import trainer  # the module whose function is replaced

    keras_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean"):
            return keras_reduce(values, strategy, reduction)

        def reduce(value):
            # With one replica per worker a step's logs are plain tensors, with more a `PerReplica` of them.
            local = _first_local_value(value)
            if isinstance(local, tf.Tensor) and local.shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)  # scalar logs: the mean over all replicas
            return keras_reduce(value, strategy, reduction)

        return tf.nest.map_structure(reduce, values)

    trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        trainer.reduce_per_replica = keras_reduce
