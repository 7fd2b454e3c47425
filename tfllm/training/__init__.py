"""Training: run configs, builders, callbacks (throughput/MFU, samples, NaN guard, checkpoints), run directories and
the pretraining recipe behind `tfllm train`; exact evaluation and fine-tuning."""

# Pretraining.
from tfllm.training.builders import (
    build_model,
    build_texts,
    build_tokenizer,
    build_train_batches,
    build_validation_batches,
    compile_model,
)
from tfllm.training.callbacks import (
    LossHistory,
    NaNGuard,
    SampleCallback,
    StepCheckpoint,
    ThroughputCallback,
    TrainingDivergedError,
    measure_peak_flops,
)
from tfllm.training.config import DEFAULTS, DataConfig, ModelConfig, RunConfig, TrainConfig
from tfllm.training.pretrain import PretrainResult, RunInterrupted, pretrain
from tfllm.training.run_directory import RunDirectory, RunDirectoryError, load_run

# Distribution: tf.distribute strategies by name.
from tfllm.training.strategies import STRATEGIES, get_strategy, is_chief, resolve_jit_compile

# Evaluation: exact perplexity and bits per byte, and the memorization check.
from tfllm.training.evaluation import EvaluationResult, evaluate_corpus, evaluate_texts
from tfllm.training.memorization import MemorizationReport, memorization_rate, memorization_report

# Fine-tuning: continued pretraining, supervised prompt/completion pairs, classification heads.
from tfllm.training.finetune import continue_pretraining, supervised_finetune, train_classifier
from tfllm.training.finetune_run import FinetuneConfig, FinetuneResult, finetune_run
