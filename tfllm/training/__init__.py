"""Training: run configs, builders, callbacks (throughput/MFU, samples, NaN guard, checkpoints), run directories and
the pretraining recipe behind `tfllm train`; fine-tuning.

Every name below loads on first use, as `tfllm`'s subpackages do: `tfllm.training.config` (and the `tfllm` command's
flags, made from it) stays free of TensorFlow until something trains.
"""

import importlib
import sys
import types

# Each public name, by the module that defines it.
_MODULES = {
    # Pretraining.
    "tfllm.training.builders": ("build_model", "build_texts", "build_tokenizer", "build_train_batches",
                                "build_validation_batches", "compile_model"),
    "tfllm.training.callbacks": ("LossHistory", "NaNGuard", "SampleCallback", "StepCheckpoint", "ThroughputCallback",
                                 "TrainingDivergedError", "measure_peak_flops"),
    "tfllm.training.config": ("DEFAULTS", "DataConfig", "FinetuneConfig", "ModelConfig", "RunConfig", "TrainConfig"),
    "tfllm.training.pretrain": ("PretrainResult", "RunInterrupted", "pretrain"),
    "tfllm.training.run_directory": ("LoadedRun", "RunDirectory", "RunDirectoryError", "load_run"),
    # Distribution: tf.distribute strategies by name.
    "tfllm.choices": ("STRATEGIES",),
    "tfllm.training.strategies": ("get_strategy", "is_chief", "resolve_jit_compile"),
    # Evaluation, owned by `tfllm.evaluation` and re-exported under its old names: exact perplexity and bits per
    # byte, and the memorization check.
    "tfllm.evaluation": ("EvaluationResult", "MemorizationReport", "evaluate_corpus", "evaluate_texts",
                         "memorization_rate", "memorization_report"),
    # Fine-tuning: continued pretraining, supervised prompt/completion pairs, classification heads.
    "tfllm.training.finetune": ("continue_pretraining", "supervised_finetune", "train_classifier"),
    "tfllm.training.finetune_run": ("FinetuneResult", "finetune_run"),
}
_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}
# Scale on paper (memory per device, all-reduce traffic), owned by `tfllm.models.scale`: `tfllm.training.scale`
# keeps working.
_MODULE_ALIASES = {"scale": "tfllm.models.scale"}

__all__ = sorted([*_MODULE_OF, *_MODULE_ALIASES])


def __getattr__(name):
    if name in _MODULE_ALIASES:
        return importlib.import_module(_MODULE_ALIASES[name])
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
        globals()[name] = value  # once found, an ordinary attribute
        return value
    raise AttributeError(f"module 'tfllm.training' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """Importing the submodule `tfllm.training.pretrain` sets the package's attribute `pretrain` to that module; the
    function of the same name (and `finetune_run`'s) must stay what `tfllm.training.pretrain` means."""

    def __setattr__(self, name, value):
        if name in _MODULE_OF and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
