"""tfllm: language models in TensorFlow 2 and Keras 3.

The simple recurrent cell ``h_t = tanh(W x_t + U h_{t-1} + b)``, the LSTM and the Transformer, carried through the
whole life of a language model: text, tokens, pretraining, fine-tuning, evaluation, generation and export.
"""

__version__ = "0.1.0"

import importlib
import importlib.abc
import importlib.util
import sys

_SUBPACKAGES = ("data", "evaluation", "export", "generation", "layers", "models", "tokenizers", "training")
# The subpackages whose classes Keras must know by name ("tfllm>TransformerLM") to load a model.keras.
_KERAS_OBJECTS = ("layers", "tokenizers", "models")


def __getattr__(name):
    # `import tfllm` stays light (the CLI answers --help without loading TensorFlow); `tfllm.layers` loads on use.
    if name in _SUBPACKAGES:
        return importlib.import_module(f"tfllm.{name}")
    raise AttributeError(f"module 'tfllm' has no attribute {name!r}")


class _Registry(dict):
    """Keras's registry of serializable classes ("tfllm>TransformerLM" -> class), which imports tfllm's layers,
    tokenizers and models the first time Keras looks up one of them (they register themselves on import)."""

    def __contains__(self, name):
        if isinstance(name, str) and name.startswith("tfllm>") and not super().__contains__(name):
            for package in _KERAS_OBJECTS:
                importlib.import_module(f"tfllm.{package}")
        return super().__contains__(name)


def _register_on_lookup():
    # Keras 3 looks a registered name up with `name in GLOBAL_CUSTOM_OBJECTS` (get_registered_object); without that
    # attribute the error of load_model says to import tfllm.models, as the README does.
    from keras.src.saving import object_registration

    if type(getattr(object_registration, "GLOBAL_CUSTOM_OBJECTS", None)) is dict:
        object_registration.GLOBAL_CUSTOM_OBJECTS = _Registry(object_registration.GLOBAL_CUSTOM_OBJECTS)


class _AfterKerasImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Swaps in the `_Registry` as soon as Keras is imported, so that after `import tfllm`,
    `keras.saving.load_model("runs/x/model.keras")` works without importing `tfllm.models` first, while
    `import tfllm` alone loads no TensorFlow (the CLI answers --help at once).

    Finding is not importing: TensorFlow's own import looks Keras up with `importlib.util.find_spec("keras")` to
    learn its directory, and imports it later. So the finder stays in place until Keras's module actually runs."""

    def __init__(self):
        self.loader, self.searching = None, False

    def find_spec(self, name, path=None, target=None):
        if name != "keras" or self.searching:
            return None
        self.searching = True  # so that the lookup below passes this finder by and finds the real keras
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.searching = False
        if spec is None or spec.loader is None:
            return spec
        self.loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # Keras is imported once per process
        self.loader.exec_module(module)
        _register_on_lookup()


if "keras" in sys.modules:
    _register_on_lookup()
else:
    sys.meta_path.insert(0, _AfterKerasImport())
