"""The chat task of a training run (`data.task="chat"`, `tfllm train --task chat`): a bilingual assistant.

One run, two phases, one optimizer and one learning-rate schedule:

1. Pretraining (the first `PRETRAINING_SHARE` of the steps): language modeling of English and Chinese text with
   the loss on every token: both sides of the HSK sentences (`tfllm.data.hsk_sentences`) and the training
   conversations written out as text (`tfllm.data.dialog_texts`). The model learns both languages' words and
   scripts before it learns to answer.
2. Fine-tuning (the rest): the training conversations in the chat template (`CHAT_TEMPLATE`: `<user>...`,
   `<assistant>...<end>`, roles as special tokens), the loss on the assistant turns only, packed several to a row.

Every step's batch is a function of the step alone (a fixed order per pass over the data, as in the other tasks),
so a killed run resumes on the batches an uninterrupted one would have trained. Validation is the loss of the
validation conversations' assistant turns; the weights of the best validation are kept (`BestWeights`): a few
thousand short conversations overfit.

The figures of a run (`chat_report`) are measured on the test conversations, per language, beside two baselines
(the most common training reply, and the reply of the most similar training question: `tfllm.evaluation`), and on
100 training questions (exact match: a FAQ bot must at least answer what it was taught). Two systems use the model:
its own replies (greedy), and its choice among the replies of the nearest training exchanges (`ChatMemory`).
"""

import dataclasses
import hashlib

import numpy as np
import tensorflow as tf

from tfllm.data import dialog_exchanges, dialog_texts, load_dialogs
from tfllm.data.dialogs import first_user_turn
from tfllm.data.hsk import hsk_sentences
from tfllm.data.parallel import LANGUAGES
from tfllm.data.templates import CHAT_TEMPLATE
from tfllm.evaluation import (
    ChatMemory,
    MostCommonReply,
    RetrievalReply,
    accepted_replies,
    chat_scores,
    exact_match,
)
from tfllm.generation.chat import chat_replies
from tfllm.training.builders import build_packed_rows, build_record_validation_batches

PRETRAINING_SHARE = 0.5  # the first half of the steps read plain text of both languages
TRAINING_QUESTIONS = 100  # the training exchanges whose exact match the report gives
# The textbook's question, and a few more anyone would ask first, answered in every report.
EXAMPLES = ("天气如何？", "你好", "你叫什么名字？", "How is the weather?", "Hello", "What is your name?")


@dataclasses.dataclass(frozen=True)
class DialogTexts:
    """The conversations of a chat run, by split (`tfllm.data.load_dialogs` dicts), and the plain text of both
    languages that the pretraining phase reads (lists of strings)."""

    train: list
    validation: list
    test: list
    pretraining: list


def task_template():
    """The prompt template of every chat run."""
    return CHAT_TEMPLATE


def read_dialog_texts(data_config):
    """The conversations of `data_config.corpus` by split, and the pretraining text: the HSK sentences in both
    languages and the training conversations as text (never the held-out ones)."""
    corpus = data_config.corpus
    train = load_dialogs(corpus, split="train")
    validation, test = load_dialogs(corpus, split="validation"), load_dialogs(corpus, split="test")
    for name, dialogs in (("train", train), ("validation", validation), ("test", test)):
        if not dialogs:
            raise ValueError(f"the {name} split of the dialogs {corpus!r} is empty: a chat run needs conversations in "
                             "every split (tfllm.data.load_dialogs splits by the first user turn, keeping conversations "
                             "that share a user turn together)")
    sentences = [text for sentence in hsk_sentences() for text in (sentence.zh, sentence.en)]
    return DialogTexts(train, validation, test, pretraining=sentences + dialog_texts(train))


def tokenizer_texts(texts):
    """What the vocabulary learns from: the pretraining text, which holds the training conversations."""
    return texts.pretraining


def pretraining_steps(steps):
    """The steps of the pretraining phase in a run of `steps` steps.

    >>> pretraining_steps(1000), pretraining_steps(10)
    (500, 5)
    """
    return int(round(PRETRAINING_SHARE * steps))


def train_batches(train_config, tokenizer, texts, start_step=0, steps=None, end_step=None):
    """Batches `start_step + 1 .. end_step` of a run of `steps` steps (default `train_config.steps`; `end_step`
    defaults to `steps`): `(x, y, sample_weight)` int32/int32/float32 (B, T). The run's first
    `pretraining_steps(steps)` are rows of packed plain text (weight 1 on every token), the rest rows of packed
    conversations (weight 1 on the assistant turns and their `<end>`). Pass k over either part is in the order of
    the seed `train_config.seed * 100003 + k`, so a step's batch depends on the step and the run's steps alone."""
    config = train_config
    steps = config.steps if steps is None else steps
    end_step = steps if end_step is None else min(end_step, steps)
    first_chat_step = pretraining_steps(steps)
    text_rows = build_packed_rows(config, *_text_tokens(tokenizer, texts.pretraining), min(end_step, first_chat_step),
                                  tokenizer.fill_id)
    chat_rows = build_packed_rows(config, *_dialog_tokens(tokenizer, texts.train), max(end_step - first_chat_step, 0),
                                  tokenizer.fill_id)
    x, y, weight = (np.concatenate(parts)[start_step * config.batch_size:] for parts in zip(text_rows, chat_rows))
    return tf.data.Dataset.from_tensor_slices((x, y, weight)).batch(config.batch_size, drop_remainder=True)


def validation_batches(train_config, tokenizer, texts):
    """The validation conversations, every one, in order, with the loss on their assistant turns (`ValidationData`)."""
    records = [{"messages": _ending_with_a_reply(dialog["messages"])} for dialog in texts.validation]
    return build_record_validation_batches(train_config, records, tokenizer, task_template())


def _ending_with_a_reply(messages):
    """The conversation up to its last assistant message: a question left unanswered teaches nothing.

    >>> [m["role"] for m in _ending_with_a_reply([{"role": "user", "content": "Hi"},
    ...     {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}])]
    ['user', 'assistant']
    """
    last = max(index for index, message in enumerate(messages) if message["role"] == "assistant")
    return messages[:last + 1]


def _text_tokens(tokenizer, texts):
    """Each text's `[bos, tokens..., eos]` ids, with the loss on every token."""
    token_lists = tokenizer.tokenize(tf.constant(texts)).to_list()
    sequences = [[tokenizer.bos_id, *tokens, tokenizer.eos_id] for tokens in token_lists]
    return sequences, [[1.0] * len(sequence) for sequence in sequences]


def _dialog_tokens(tokenizer, dialogs):
    """Each conversation's ids in the chat template, `[bos, ...segments..., eos]`, and the loss weights: 1 on the
    assistant turns (their text and `<end>`) and on the final eos."""
    template = task_template()
    segment_lists = [template.segments(_ending_with_a_reply(dialog["messages"])) for dialog in dialogs]
    flat = [text for segments in segment_lists for text, _ in segments]
    token_lists = iter(tokenizer.tokenize(tf.constant(flat)).to_list())
    sequences, weights = [], []
    for segments in segment_lists:
        sequence, weight = [tokenizer.bos_id], [0.0]
        for _, learned in segments:
            tokens = next(token_lists)
            sequence += tokens
            weight += [1.0 if learned else 0.0] * len(tokens)
        sequences.append(sequence + [tokenizer.eos_id])
        weights.append(weight + [1.0])
    return sequences, weights


def training_questions(dialogs, count=TRAINING_QUESTIONS):
    """The first exchanges of `count` training conversations, a fixed sample (the smallest SHA-256 of the question),
    half of each language where there are enough: what the report's exact match asks. A conversation's first
    exchange is its first question (after its system message, if it has one) and the reply to it.

    >>> dialogs = [{"language": "en", "messages": [{"role": "system", "content": "Be brief."},
    ...     {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
    ...     {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye!"}]}]
    >>> [([m["role"] for m in exchange["context"]], exchange["reply"]) for exchange in training_questions(dialogs)]
    [(['system', 'user'], 'Hello!')]
    """
    per_language = {language: [d for d in dialogs if d["language"] == language] for language in LANGUAGES}
    chosen = []
    for index, language in enumerate(LANGUAGES):
        share = count // len(LANGUAGES) + (index < count % len(LANGUAGES))
        ranked = sorted(per_language[language], key=lambda d: hashlib.sha256(
            first_user_turn(d).encode("utf-8")).hexdigest())
        chosen += ranked[:share]
    return [exchange for exchange in dialog_exchanges(chosen)
            if [message["role"] for message in exchange["context"]] in (["user"], ["system", "user"])]


def chat_report(model, texts, max_new_tokens=None):
    """How the chat model answers: a JSON-ready dict.

    - `held_out`: on every assistant turn of the test conversations (the reference history before it), per language
      and in all: the share of replies in the question's language, the share of non-empty replies that end with a
      stop token (`well_formed`), the empty share, and chrF (sacrebleu) against the reference reply; for the model,
      the model with its memory, and the two baselines.
    - `training_questions`: the exact match of the model and of the model with its memory on `training_questions`
      (a reply counts when it equals any reply the training data gives to that question).
    - `examples`: the replies to `EXAMPLES`; `samples`: a few held-out exchanges side by side.
    """
    exchanges = dialog_exchanges(texts.test)
    contexts = [exchange["context"] for exchange in exchanges]
    references = [exchange["reply"] for exchange in exchanges]
    languages = [exchange["language"] for exchange in exchanges]
    memory = ChatMemory(texts.train)
    replies = chat_replies(model, contexts, max_new_tokens=max_new_tokens)
    systems = {
        "model": ([reply.text for reply in replies], [reply.finished for reply in replies]),
        "memory": (memory.replies(model, contexts), None),
        "retrieval": (RetrievalReply(texts.train).replies(contexts), None),
        "most_common": (MostCommonReply(texts.train).replies(contexts), None),
    }
    held_out = {name: chat_scores(outputs, references, languages, finished=finished)
                for name, (outputs, finished) in systems.items()}
    questions = training_questions(texts.train)
    question_contexts = [exchange["context"] for exchange in questions]
    accepted = accepted_replies(texts.train, question_contexts)
    trained = {
        "model": exact_match([reply.text for reply in chat_replies(model, question_contexts,
                                                                   max_new_tokens=max_new_tokens)], accepted),
        "memory": exact_match(memory.replies(model, question_contexts), accepted),
    }
    example_contexts = [[{"role": "user", "content": question}] for question in EXAMPLES]
    return {
        "test_exchanges": len(exchanges),
        "test_exchanges_by_language": {language: languages.count(language) for language in LANGUAGES},
        "held_out": held_out,
        "training_questions": {"count": len(questions), "exact_match": trained},
        "examples": [{"question": question, "model": reply.text, "memory": remembered}
                     for question, reply, remembered in zip(
                         EXAMPLES, chat_replies(model, example_contexts, max_new_tokens=max_new_tokens),
                         memory.replies(model, example_contexts))],
        "samples": [{"question": context[-1]["content"], "reference": reference, "model": model_reply,
                     "memory": remembered}
                    for context, reference, model_reply, remembered in _samples(
                        contexts, references, systems["model"][0], systems["memory"][0], languages)],
    }


def _samples(contexts, references, model_replies, memory_replies, languages, per_language=3):
    """The first `per_language` held-out exchanges of each language."""
    rows = list(zip(contexts, references, model_replies, memory_replies, languages))
    return [row[:4] for language in LANGUAGES for row in [r for r in rows if r[4] == language][:per_language]]


def report_lines(report):
    """The report as lines of text: a Markdown table (a row per system: per language, the share of replies in the
    question's language, of well-formed replies and chrF), the exact match on training questions, then the
    examples."""
    counts = report["test_exchanges_by_language"]
    lines = [f"Test conversations: {report['test_exchanges']} replies to score "
             f"({', '.join(f'{count} {language}' for language, count in counts.items())}); chrF2 by sacrebleu",
             "",
             "| system | " + " | ".join(f"{language} language right | {language} well-formed | {language} chrF"
                                       for language in LANGUAGES) + " | all chrF |",
             "| --- " * (2 + 3 * len(LANGUAGES)) + "|"]
    for name, scores in report["held_out"].items():
        cells = []
        for language in LANGUAGES:
            figures = scores.get(language)
            if figures is None:
                cells += ["-", "-", "-"]
                continue
            formed = "-" if figures["well_formed"] is None else f"{figures['well_formed']:.0%}"
            cells += [f"{figures['language_right']:.0%}", formed, f"{figures['chrf']:.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {scores['all']['chrf']:.1f} |")
    trained = report["training_questions"]
    lines += ["", f"Training questions ({trained['count']}), exact match: "
              + ", ".join(f"{name} {share:.0%}" for name, share in trained["exact_match"].items())]
    lines += [f"  {example['question']} -> {example['model']} (with the memory: {example['memory']})"
              for example in report["examples"]]
    return lines
