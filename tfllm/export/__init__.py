"""SavedModel export: strings in, strings out, loadable with tensorflow and tensorflow-text alone."""

from tfllm.export.saved_model import export_saved_model, rest_request_examples
