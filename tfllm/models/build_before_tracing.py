"""An unbuilt model's state made before Keras traces its first step, so that the step is traced once, not twice.

Without a distribution strategy, Keras 3 (`keras/src/backend/tensorflow/trainer.py`, `_maybe_symbolic_build`)
leaves an unbuilt model to build itself inside the first traced train or test step: the layers' weights, and in
`fit` the optimizer's slots, are created while `tf.function` traces. A `tf.function` that creates variables on its
first trace traces again, so the first `fit` of a new model traced its whole step, gradients and optimizer update
twice: 8.4 s instead of 4.6 s for a 2-block Transformer on a 2-core CPU, 2.4 s instead of 1.3 s for an LSTM.

`BuildBeforeTracing`, a mixin of `CausalLM` and `SequenceClassifier`, builds first: the layers by one eager call
on a probe of token ids (`build_eagerly`), then whatever Keras's own `_symbolic_build` still finds unbuilt (the
compiled metrics and loss, the optimizer), from the probe's shapes. Under a distribution strategy Keras builds
before tracing already, and its path is left as it is. Generation and scoring call `build_eagerly` before they
trace their own functions, for the same reason (a new model's first `generate` took 2.1-2.8 s, and 1.5 s
with the eager build first).
"""

from keras import ops

PROBE_LENGTH = 2  # tokens: attention over a single key would warn about a softmax over one value


class BuildBeforeTracing:
    """Mixin for `keras.Model` subclasses whose inputs are token ids (B, T) (see the module). Subclasses give the
    shape of one example's target in `_probe_target_shape`."""

    def _probe_target_shape(self):
        """The shape of the targets `y` of a (1, `_probe_length()`) batch of token ids."""
        raise NotImplementedError

    def _probe_length(self):
        """PROBE_LENGTH tokens, or fewer for a model whose `max_sequence_length` is shorter (a context of 1)."""
        longest = getattr(self, "max_sequence_length", None)
        return PROBE_LENGTH if longest is None else min(PROBE_LENGTH, longest)

    def build_eagerly(self):
        """Builds every layer of an unbuilt model by one eager call on a probe of token ids, with the weights a
        traced call would have made; does nothing to a built one."""
        if not all(layer.built for layer in self._flatten_layers()):
            self(ops.zeros((1, self._probe_length()), "int32"))  # (B, T) token ids

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is not None:  # Keras builds outside the trace itself
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        self.build_eagerly()
        if data_batch is None:
            probe = ops.zeros((1, self._probe_length()), "int32")
            data_batch = (probe, ops.zeros(self._probe_target_shape(), "int32"))
        self._symbolic_build(data_batch=data_batch)
