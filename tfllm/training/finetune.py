"""Fine-tuning recipes over models and datasets: more pretraining, supervised fine-tuning, a classification head.

Each recipe builds its tf.data pipeline from `tfllm.data`, compiles the model with defaults suited to the job (a
warm-up, then a cosine decay over `steps`; call it under `strategy.scope()` to train on many devices), trains for
exactly `steps` steps and returns the Keras `History`. `log_every` splits the steps into Keras epochs, so the
history (and validation, when given) has one entry per `log_every` steps.
"""

import tensorflow as tf

from tfllm.checks import require_positive_int
from tfllm.data import classification_dataset, lm_dataset, sft_dataset
from tfllm.models.sequence_classifier import SequenceClassifier


def continue_pretraining(
    model,
    texts,
    steps,
    sequence_length=None,
    batch_size=16,
    learning_rate=1e-3,
    warmup_steps=None,
    weight_decay=0.1,
    seed=None,
    validation_texts=None,
    log_every=None,
    callbacks=None,
    verbose=0,
):
    """Trains a pretrained `CausalLM` further on other text (domain adaptation), with the pretraining objective.

    The model keeps its prompt template, if a fine-tuning gave it one: `generate` still wraps prompts in it (pass
    `apply_template=False` for text read as written), and a later `supervised_finetune` sets its own.

    Args:
        model: a `tfllm.models.CausalLM` with a tokenizer; it is compiled anew (a fresh optimizer).
        texts: the new corpus: a list of strings or a `tf.data.Dataset` of documents (see `lm_dataset`).
        steps: optimizer steps.
        sequence_length: tokens per window; None means the model's `max_sequence_length` (128 for RNNs).
        batch_size: windows per step.
        learning_rate: the peak learning rate, usually below the pretraining one so the model keeps what it knows.
        warmup_steps: steps of linear warm-up; None means a tenth of `steps` (at most 100).
        weight_decay: AdamW's decoupled weight decay.
        seed: seed of the shuffles.
        validation_texts: optional held-out texts, evaluated every `log_every` steps.
        log_every: steps per Keras epoch; must divide `steps`. None means `steps`.
        callbacks, verbose: passed to `fit`.

    Returns:
        The Keras `History`.

    In practice: `continue_pretraining(model, load_texts("shakespeare"), steps=500, validation_texts=...)` on a
    pretrained model.

    Example (an untrained model and a few steps, to show the calls):

    >>> import keras
    >>> from tfllm.data import kjv_chapters
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> keras.utils.set_random_seed(0)
    >>> model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())
    >>> verses = kjv_chapters()[0].text.splitlines()
    >>> history = continue_pretraining(model, verses, steps=4, sequence_length=16, batch_size=4, seed=0, log_every=2)
    >>> len(history.history["loss"]), int(model.optimizer.iterations)  # one entry per `log_every` steps
    (2, 4)
    """
    steps = require_positive_int("steps", steps)
    tokenizer = _tokenizer_of(model)
    sequence_length = _sequence_length_for(model, sequence_length, 128)
    train = lm_dataset(texts, tokenizer, sequence_length, batch_size, shuffle=True, seed=seed).repeat()
    validation = None
    if validation_texts is not None:
        validation = _counted(
            lm_dataset(validation_texts, tokenizer, sequence_length, batch_size, shuffle=False, drop_remainder=False)
        )
    model.compile(
        learning_rate=learning_rate,
        warmup_steps=_warmup(warmup_steps, steps),
        decay_steps=steps,
        weight_decay=weight_decay,
    )
    return _fit(model, train, steps, log_every, validation, callbacks, verbose)


def supervised_finetune(
    model,
    pairs,
    steps,
    sequence_length,
    batch_size=16,
    learning_rate=1e-3,
    warmup_steps=None,
    weight_decay=0.0,
    seed=None,
    validation_pairs=None,
    log_every=None,
    callbacks=None,
    verbose=0,
    template=None,
):
    """Supervised fine-tuning (SFT) of a `CausalLM` on prompt/completion pairs: the loss falls on completions only.

    The batches come from `tfllm.data.sft_dataset`, whose sample weights are 1 on completion tokens and the final
    eos, 0 on the prompt and padding. `CausalLM.compile`'s default loss is the mean cross-entropy per weighted
    token, so prompt tokens neither train the model nor dilute the reported loss; a batch whose weights are all
    zero has loss 0.

    Args:
        model: a `tfllm.models.CausalLM` with a tokenizer; it is compiled anew.
        pairs: `(prompt, completion)` tuples, `{"prompt", "completion"}` dicts, or a JSONL/CSV path.
        steps: optimizer steps.
        sequence_length: tokens per example (longer examples lose the beginning of their prompt).
        batch_size: examples per step.
        learning_rate: the peak learning rate.
        warmup_steps: None means a tenth of `steps` (at most 100).
        weight_decay: AdamW's decoupled weight decay.
        seed: seed of the shuffles.
        validation_pairs: optional held-out pairs, evaluated every `log_every` steps.
        log_every: steps per Keras epoch; must divide `steps`. None means `steps`.
        callbacks, verbose: passed to `fit`.
        template: a `tfllm.data.PromptTemplate` or `ChatTemplate` rendering `pairs` (then records with its
            fields). It becomes the model's `prompt_template`, saved with it, so `generate` applies it; without
            one the prompts carry their own format, and the model's template is cleared.

    Returns:
        The Keras `History`.

    In practice: `supervised_finetune(model, question_answer_pairs("train"), steps=300, sequence_length=128)` on a
    pretrained model, then `model.generate("Q: what is a computer?\\nA: ", strip_prompt=True)`.

    Example (an untrained model and a few steps, to show the calls):

    >>> import keras
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> keras.utils.set_random_seed(0)
    >>> model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())
    >>> pairs = [("Q: Who made the earth? A: ", "God."), ("Q: What was made first? A: ", "Light.")] * 4
    >>> history = supervised_finetune(model, pairs, steps=2, sequence_length=32, batch_size=4, seed=0)
    >>> sorted(history.history), int(model.optimizer.iterations)  # loss and perplexity on the completions
    (['loss', 'perplexity'], 2)
    """
    steps = require_positive_int("steps", steps)
    tokenizer = _tokenizer_of(model)
    sequence_length = _sequence_length_for(model, sequence_length, None)
    train = sft_dataset(pairs, tokenizer, sequence_length, batch_size, shuffle=True, seed=seed,
                        template=template).repeat()
    validation = None
    if validation_pairs is not None:
        validation = sft_dataset(validation_pairs, tokenizer, sequence_length, batch_size, shuffle=False,
                                 template=template)
    model.prompt_template = template
    model.compile(
        learning_rate=learning_rate,
        warmup_steps=_warmup(warmup_steps, steps),
        decay_steps=steps,
        weight_decay=weight_decay,
    )  # the default loss and perplexity are means over weighted tokens: here, the completions
    return _fit(model, train, steps, log_every, validation, callbacks, verbose)


def train_classifier(
    backbone,
    examples,
    num_classes=None,
    label_names=None,
    steps=200,
    sequence_length=None,
    batch_size=16,
    learning_rate=1e-3,
    dropout=0.0,
    pooling="last",
    train_backbone=True,
    seed=None,
    validation_examples=None,
    log_every=None,
    callbacks=None,
    verbose=0,
):
    """Fine-tunes a `SequenceClassifier` on labelled texts; returns `(classifier, label_names, history)`.

    Args:
        backbone: a `tfllm.models.CausalLM` with a tokenizer (usually pretrained).
        examples: `(text, label)` tuples, `{"text", "label"}` dicts, or a JSONL/CSV path.
        num_classes: with integer labels 0 .. num_classes - 1: the label names are "0", "1", ..., so each label
            is its own class id.
        label_names: the labels in class order. With neither argument, the sorted labels of the data.
        steps: optimizer steps.
        sequence_length: tokens read per text (its first ones); None means the backbone's `max_sequence_length`
            (256 for RNNs). Stored in the classifier for `predict_texts`.
        batch_size: texts per step.
        learning_rate: AdamW's learning rate (constant).
        dropout, pooling: see `SequenceClassifier`.
        train_backbone: False trains the head alone (a linear probe; sets `backbone.trainable = False`).
        seed: seed of the shuffles.
        validation_examples: optional held-out examples, evaluated every `log_every` steps (`val_accuracy`).
        log_every: steps per Keras epoch; must divide `steps`. None means `steps`.
        callbacks, verbose: passed to `fit`.

    Returns:
        `(classifier, label_names, history)`; `label_names[i]` is the label of class id i.

    Raises:
        ValueError: `num_classes` and `label_names` that disagree, a label outside them, or bad sizes.

    In practice, on a pretrained backbone: `classifier, names, _ = train_classifier(backbone, [("I loved it",
    "pos"), ...])`, then `names[classifier.predict_texts("what a film")]`.

    Example (an untrained backbone and a few steps, to show the calls):

    >>> import keras
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> keras.utils.set_random_seed(0)
    >>> backbone = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())
    >>> examples = [("I loved it", "pos"), ("what a film", "pos"), ("dull and long", "neg"), ("I left early", "neg")]
    >>> classifier, names, history = train_classifier(backbone, examples, steps=2, sequence_length=16, batch_size=4,
    ...                                               seed=0)
    >>> names, classifier.num_classes, len(history.history["loss"])  # the labels, sorted
    (['neg', 'pos'], 2, 1)
    >>> classifier.predict_texts(["so good", "so bad"]).shape  # a class id per text
    (2,)
    """
    steps = require_positive_int("steps", steps)
    _tokenizer_of(backbone)
    if num_classes is not None:
        num_classes = require_positive_int("num_classes", num_classes)
        if label_names is None:
            label_names = [str(index) for index in range(num_classes)]
        elif len(label_names) != num_classes:
            raise ValueError(f"num_classes={num_classes} disagrees with label_names={list(label_names)}.")
    sequence_length = _sequence_length_for(backbone, sequence_length, 256)
    labels_learned = label_names is None
    train, label_names = classification_dataset(
        examples, backbone.tokenizer, sequence_length, batch_size, label_names=label_names, shuffle=True, seed=seed
    )
    validation = None
    if validation_examples is not None:
        try:
            validation, _ = classification_dataset(
                validation_examples, backbone.tokenizer, sequence_length, batch_size, label_names=label_names,
                shuffle=False,
            )
        except ValueError as error:  # which records: a label that only they have was named with no more
            learned = " (the labels of the training records)" if labels_learned else ""
            message = f"validation_examples (the held-out records): {str(error).rstrip('.')}{learned}."
            raise ValueError(message) from None
    backbone.trainable = bool(train_backbone)
    classifier = SequenceClassifier(backbone, len(label_names), dropout, pooling, sequence_length)
    classifier.compile(learning_rate=learning_rate)
    history = _fit(classifier, train.repeat(), steps, log_every, validation, callbacks, verbose)
    return classifier, label_names, history


def _tokenizer_of(model):
    if model.tokenizer is None:
        raise ValueError(f"{model.name} has no tokenizer: fine-tuning reads text, so make the model with tokenizer=...")
    return model.tokenizer


def _sequence_length_for(model, sequence_length, default):
    """`sequence_length`, or when None the model's context (`default` for a model without one); a length beyond the
    context is refused here, before any data is read."""
    if sequence_length is None:
        return model.max_sequence_length or default
    sequence_length = require_positive_int("sequence_length", sequence_length)
    if model.max_sequence_length is not None and sequence_length > model.max_sequence_length:
        raise ValueError(f"sequence_length={sequence_length} is longer than the context of {model.name}, "
                         f"max_sequence_length={model.max_sequence_length}.")
    return sequence_length


def _warmup(warmup_steps, steps):
    return min(100, steps // 10) if warmup_steps is None else warmup_steps


def _counted(dataset):
    # Keras warns that an input "ran out of data" whenever it reads a dataset of unknown length to its end, as it
    # does with every validation set from `lm_dataset` (its windows are cut by a scan): count the batches once.
    if dataset.cardinality() == tf.data.UNKNOWN_CARDINALITY:
        batches = int(dataset.reduce(0, lambda count, _: count + 1))
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset


def _fit(model, train, steps, log_every, validation, callbacks, verbose):
    log_every = steps if log_every is None else require_positive_int("log_every", log_every)
    if steps % log_every:
        raise ValueError(f"log_every={log_every} does not divide steps={steps}: the history would skip steps.")
    return model.fit(
        train,
        steps_per_epoch=log_every,
        epochs=steps // log_every,
        validation_data=validation,
        shuffle=False,  # the pipelines shuffle; Keras would only warn that it cannot
        callbacks=callbacks,
        verbose=verbose,
    )
