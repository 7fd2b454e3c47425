"""Corpora and tf.data pipelines: the embedded KJV, files, folders and globs; text cleaning; training pipelines."""

# Corpora: where the text comes from.
from tfllm.data.cleaning import clean_text
from tfllm.data.corpus import CORPUS_NAMES, CorpusStats, corpus_stats, load_corpus, load_texts
from tfllm.data.kjv import KJVChapter, kjv_chapters
from tfllm.data.shakespeare import fetch_shakespeare
from tfllm.data.splits import SPLITS, split_of

# Pipelines: texts -> batches for training.
from tfllm.data.classification import classification_dataset
from tfllm.data.language_modeling import lm_dataset, token_windows
from tfllm.data.packing import pack_sequences
from tfllm.data.supervised import sft_dataset
from tfllm.data.templates import CHAT_TEMPLATE, ChatTemplate, PromptTemplate, TranslationTemplate, template_from_config, wrap_prompts

# Dialogs for chat, in English and Chinese.
from tfllm.data.dialogs import DIALOG_CORPUS_NAMES, detect_language, dialog_exchanges, dialog_texts, load_dialogs

# A small question/answer set for the fine-tuning demos.
from tfllm.data.question_answering import QUESTION_ANSWER_TEMPLATE, question_answer_pairs, question_answer_records

# English-Chinese sentence pairs for machine translation.
from tfllm.data.parallel import PARALLEL_CORPUS_NAMES, load_parallel_corpus, parallel_texts
