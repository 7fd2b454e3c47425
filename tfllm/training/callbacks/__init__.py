"""Callbacks of a pretraining run: throughput and MFU, samples, the NaN guard, step checkpoints, loss history,
TensorBoard scalars, the run's progress bar and Ctrl-C at a batch end."""

from tfllm.training.callbacks.best_weights import BestWeights
from tfllm.training.callbacks.checkpoint import StepCheckpoint, read_checkpoint_state
from tfllm.training.callbacks.ctrl_c import CtrlC
from tfllm.training.callbacks.loss_history import LossHistory
from tfllm.training.callbacks.nan_guard import NaNGuard, TrainingDivergedError
from tfllm.training.callbacks.peak_flops import measure_peak_flops
from tfllm.training.callbacks.progress import RunProgress
from tfllm.training.callbacks.samples import SampleCallback
from tfllm.training.callbacks.scalar_logs import ScalarLogs
from tfllm.training.callbacks.step_callback import StepCallback
from tfllm.training.callbacks.throughput import ThroughputCallback
