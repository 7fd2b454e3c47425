"""The start of every script that loads an exported SavedModel in a separate process, as a server would: tfllm (and
the libraries a checkpoint came from) cannot be imported there, and the script records that it could not."""

WITHOUT_TFLLM = r'''
import json, sys

class _Blocked:  # the serving process has tensorflow and tensorflow-text, not tfllm, keras_hub or transformers
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tfllm", "keras_hub", "transformers"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")

sys.meta_path.insert(0, _Blocked())
try:
    import tfllm  # noqa: F401
    tfllm_importable = True
except ModuleNotFoundError:
    tfllm_importable = False
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
'''
