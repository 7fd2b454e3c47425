"""What a training run learns (`data.task`), as one object per task that `pretrain` asks.

`pretrain` is the same recipe for every task: open the run, build the tokenizer and the model, train the steps,
write the results. What differs is the data and what the results measure, and each task says it:

- `LanguageModelTask` ("lm"): a corpus as text; the results are the exact validation loss, perplexity and bits
  per byte, the samples and the memorization check.
- `TranslationTask` ("translate", `tfllm.training.translation_task`): parallel pairs in both directions; the
  results are chrF and BLEU on the test split beside baselines.
- `ChatTask` ("chat", `tfllm.training.chat_task`): bilingual pretraining then conversations; the results are the
  chat report on the test conversations beside baselines.

The two supervised tasks keep the weights of the best validation (a few thousand short records overfit) and save
their prompt template with the model, so the command line and a SavedModel apply it.

>>> task_of(RunConfig.default(data={"task": "chat"})).name, task_of(RunConfig.default()).keeps_best_weights
('chat', False)
"""

import dataclasses

from tfllm.training import chat_task, translation_task
from tfllm.training.builders import build_texts, build_tokenizer, build_train_batches, build_validation_batches
from tfllm.training.config import RunConfig  # noqa: F401 (the doctest's)


class LanguageModelTask:
    """Language modeling of a corpus (`data.task="lm"`): documents in, every token learned."""

    name = "lm"
    unit = "documents"
    keeps_best_weights = False
    template = None

    def read_texts(self, data_config):
        return build_texts(data_config)

    def build_tokenizer(self, data_config, texts, verbose):
        return build_tokenizer(data_config, texts.train, verbose=verbose)

    def tokenizer_source(self, texts):
        return f"{len(texts.train):,} documents"

    def train_batches(self, train_config, tokenizer, texts, start_step, steps, end_step):
        return build_train_batches(dataclasses.replace(train_config, steps=steps), tokenizer, texts.train,
                                   start_step=start_step)

    def validation_batches(self, train_config, tokenizer, texts):
        return build_validation_batches(train_config, tokenizer, texts.validation)


class _SupervisedTask:
    """A task of records with a prompt template: its tokenizer has the template's special tokens, the best
    validation's weights are kept, and the results are the task's report (`report`, `report_lines`)."""

    keeps_best_weights = True
    module = None

    @property
    def template(self):
        return self.module.task_template()

    def build_tokenizer(self, data_config, texts, verbose):
        return build_tokenizer(data_config, self.module.tokenizer_texts(texts), verbose=verbose,
                               special_tokens=self.template.special_tokens)

    def validation_batches(self, train_config, tokenizer, texts):
        return self.module.validation_batches(train_config, tokenizer, texts)

    def tokenizer_source(self, texts):
        return f"{len(self.module.tokenizer_texts(texts)):,} texts of both languages"

    def report_lines(self, report):
        return self.module.report_lines(report)


class TranslationTask(_SupervisedTask):
    """Translation both ways between English and Chinese (`data.task="translate"`)."""

    name = "translate"
    unit = "pairs"
    module = translation_task
    report_key = "translation"

    def read_texts(self, data_config):
        return translation_task.read_parallel_texts(data_config)

    def train_batches(self, train_config, tokenizer, texts, start_step, steps, end_step):
        return translation_task.train_batches(dataclasses.replace(train_config, steps=steps), tokenizer, texts,
                                              start_step=start_step)

    def report(self, model, texts):
        return translation_task.translation_report(model, texts)

    def counts(self, texts):
        return {"train_pairs": len(texts.train), "train_sentence_pairs": len(texts.train_sentences),
                "validation_pairs": len(texts.validation)}


class ChatTask(_SupervisedTask):
    """A bilingual assistant: pretraining on both languages, then conversations (`data.task="chat"`)."""

    name = "chat"
    unit = "conversations"
    module = chat_task
    report_key = "chat"

    def read_texts(self, data_config):
        return chat_task.read_dialog_texts(data_config)

    def train_batches(self, train_config, tokenizer, texts, start_step, steps, end_step):
        return chat_task.train_batches(train_config, tokenizer, texts, start_step=start_step, steps=steps,
                                       end_step=end_step)

    def report(self, model, texts):
        return chat_task.chat_report(model, texts)

    def counts(self, texts):
        return {"train_conversations": len(texts.train), "validation_conversations": len(texts.validation),
                "test_conversations": len(texts.test), "pretraining_texts": len(texts.pretraining)}


TASKS = {task.name: task for task in (LanguageModelTask(), TranslationTask(), ChatTask())}


def task_of(config):
    """The task object of a `RunConfig` (its `data.task`)."""
    return TASKS[config.data.task]
