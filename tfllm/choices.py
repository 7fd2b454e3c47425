"""The named choices of tfllm's configs and command line, each defined once.

It imports nothing, so the `tfllm` command builds its flags from them without loading TensorFlow. The configs check
values against them (`tfllm.checks.require_choice`); the code that acts on a choice (`build_model`,
`get_strategy`, ...) follows the same tuple.
"""

ARCHITECTURES = ("transformer", "lstm", "rnn")
POSITION_EMBEDDINGS = ("learned", "rotary")
TOKENIZERS = ("byte", "char", "wordpiece", "sentencepiece")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
JIT_COMPILE = ("auto", True, False)
STRATEGIES = ("auto", "cpu", "mirrored", "multiworker", "tpu")
FINETUNE_TASKS = ("continue", "sft", "classify")
# What a training run learns from its data: "lm" (language modeling of a corpus), "translate" (parallel pairs),
# "chat" (bilingual text, then conversations).
TRAIN_TASKS = ("lm", "translate", "chat")
