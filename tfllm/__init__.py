"""tfllm: language models in TensorFlow 2 and Keras 3.

The simple recurrent cell ``h_t = tanh(W x_t + U h_{t-1} + b)``, the LSTM and the Transformer, carried through the
whole life of a language model: text, tokens, pretraining, fine-tuning, evaluation, generation and export.
"""

__version__ = "0.1.0"

import importlib

_SUBPACKAGES = ("data", "evaluation", "export", "generation", "layers", "models", "tokenizers", "training")


def __getattr__(name):
    # `import tfllm` stays light (the CLI answers --help without loading TensorFlow); `tfllm.layers` loads on use.
    if name in _SUBPACKAGES:
        return importlib.import_module(f"tfllm.{name}")
    raise AttributeError(f"module 'tfllm' has no attribute {name!r}")
