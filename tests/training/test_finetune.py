"""Fine-tuning changes what it should: SFT teaches a held-out task and ignores the prompt's loss, more pretraining
lowers the loss on the new corpus, the classifier recipe maps labels as documented."""

import json
import os
import random

import keras
import numpy as np
import pytest

from tests.training.common import write_kjv_verses
from tfllm.data import CHAT_TEMPLATE, QUESTION_ANSWER_TEMPLATE, PromptTemplate, question_answer_pairs, sft_dataset
from tfllm.evaluation import evaluate_texts
from tfllm.models import LSTMLM, TransformerLM
from tfllm.tokenizers import ByteTokenizer
from tfllm.training import FinetuneConfig, RunConfig, RunDirectory, RunDirectoryError, finetune_run, load_run
from tfllm.training.finetune import continue_pretraining, supervised_finetune, train_classifier

VOCAB = 259  # the byte tokenizer's


def _transformer(context=16):
    keras.utils.set_random_seed(0)
    return TransformerLM(
        VOCAB, num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128, max_sequence_length=context,
        tokenizer=ByteTokenizer(),
    )


def _reversal_words():
    """Distinct words of 3-4 letters from a-h, shuffled: 100 held out, the rest (~1,650) for training."""
    draw = random.Random(0)
    words = sorted({"".join(draw.choice("abcdefgh") for _ in range(draw.choice([3, 4]))) for _ in range(3000)})
    draw.shuffle(words)
    return words[100:], words[:100]


@pytest.fixture(scope="module")
def reverser():
    """A Transformer fine-tuned from scratch to answer "abcd=" with "dcba"."""
    train, heldout = _reversal_words()
    model = _transformer()
    history = supervised_finetune(
        model, [(word + "=", word[::-1]) for word in train], steps=200, sequence_length=10, batch_size=32,
        learning_rate=3e-3, seed=0, log_every=50,
    )
    return model, heldout, history


def test_sft_solves_held_out_reversals(reverser):
    model, heldout, history = reverser
    answers = model.generate([word + "=" for word in heldout], max_new_tokens=6, strip_prompt=True)
    exact = np.mean([answer == word[::-1] for answer, word in zip(answers, heldout)])
    assert exact >= 0.8  # chance: about 1 in 8**3.5
    losses = history.history["loss"]
    assert len(losses) == 4 and losses[-1] < 0.1 * losses[0]
    # The weighted perplexity is that of the completions: it falls with the loss.
    assert history.history["perplexity"][-1] == pytest.approx(np.exp(losses[-1]), rel=0.1)


def test_the_loss_falls_on_completions_only(reverser):
    model, _, _ = reverser
    x, y, weight = (np.asarray(t) for t in next(iter(sft_dataset(
        [("abc=", "cba"), ("hgfe=", "efgh")], model.tokenizer, sequence_length=10, batch_size=2, shuffle=False))))

    def loss(targets, weights):
        return model.evaluate(x, targets, sample_weight=weights, batch_size=2, verbose=0, return_dict=True)["loss"]

    base = loss(y, weight)
    assert loss(y, np.zeros_like(weight)) == 0.0  # nothing to answer: no loss
    prompt = (weight == 0) & (y != 0)
    assert loss(np.where(prompt, 7, y), weight) == pytest.approx(base, abs=1e-6)  # other prompt targets: same loss
    assert loss(np.where(weight > 0, 7, y), weight) > base + 1.0  # other completion targets: a higher loss


def test_continued_pretraining_lowers_the_loss_on_the_new_corpus():
    texts = [pair["prompt"] + pair["completion"] for pair in question_answer_pairs()]
    heldout = texts[::10]
    train = [text for index, text in enumerate(texts) if index % 10]
    model = LSTMLM(VOCAB, hidden_dim=64, tokenizer=ByteTokenizer())
    before = evaluate_texts(model, heldout).bits_per_byte
    history = continue_pretraining(model, train, steps=60, sequence_length=64, batch_size=32, learning_rate=1e-2,
                                   seed=0, validation_texts=heldout, log_every=30)
    after = evaluate_texts(model, heldout).bits_per_byte
    assert before > 7.5 and after < 4.5  # from a uniform guess (8 bits) to a model of English letters
    assert history.history["val_loss"][1] < history.history["val_loss"][0]


def test_train_classifier_maps_labels_and_checks_its_arguments():
    examples = [("aaaa", 1), ("bbbb", 0), ("abab", 2)] * 4
    backbone = LSTMLM(VOCAB, hidden_dim=8, tokenizer=ByteTokenizer())
    classifier, names, history = train_classifier(backbone, examples, num_classes=3, steps=2, batch_size=4)
    assert names == ["0", "1", "2"] and classifier.num_classes == 3 and len(history.history["loss"]) == 1
    _, names, _ = train_classifier(backbone, [(t, "xy"[label % 2]) for t, label in examples], steps=1)
    assert names == ["x", "y"]
    with pytest.raises(ValueError, match="num_classes=2 disagrees"):
        train_classifier(backbone, examples, num_classes=2, label_names=["a", "b", "c"], steps=1)
    with pytest.raises(ValueError, match="log_every=3 does not divide steps=10"):
        train_classifier(backbone, examples, num_classes=3, steps=10, log_every=3)
    # A label that only held-out records have: the error said "labels ['z'] are not in label_names=['x', 'y']", and
    # the user had given no label_names.
    with pytest.raises(ValueError, match=r"^validation_examples \(the held-out records\): labels \['z'\] are not in "
                                         r"label_names=\['x', 'y'\] \(the labels of the training records\)\.$"):
        train_classifier(backbone, [("aa", "x"), ("bb", "y")] * 2, validation_examples=[("ab", "z")], steps=1)
    with pytest.raises(ValueError, match="tokenizer"):
        supervised_finetune(LSTMLM(VOCAB, hidden_dim=8), [("a", "b")], steps=1, sequence_length=4)


def test_finetune_run_records_its_parents_and_refuses_what_it_cannot_use(tmp_path):
    keras.utils.set_random_seed(0)
    pretrained = RunDirectory(tmp_path / "pretrained")  # a complete pretraining run, made by hand
    pretrained.start(RunConfig.default("lstm", data={"tokenizer": "byte"}, train={"sequence_length": 32}), "new")
    model = LSTMLM(VOCAB, hidden_dim=8, tokenizer=ByteTokenizer())
    model(np.zeros((1, 4), "int32"))
    pretrained.save_model(model)
    for name in pretrained.missing_files():
        pretrained.write_text(name, "{}")
    corpus = write_kjv_verses(tmp_path)

    continued = finetune_run(pretrained.path, FinetuneConfig("continue", corpus, steps=2, batch_size=4),
                             tmp_path / "continued", verbose=0)
    assert continued.metrics["steps"] == 2 and continued.metrics["bits_per_byte"] > 0
    answered = finetune_run(continued.run_dir, FinetuneConfig("sft", "qa", steps=2, batch_size=4),
                            tmp_path / "answered", verbose=0)
    loaded = load_run(answered.run_dir)
    assert (loaded.kind, loaded.parent.kind, loaded.parent.parent.kind) == ("finetune", "finetune", "pretrain")
    assert loaded.parent.path == os.path.abspath(continued.run_dir) and loaded.parent.config == continued.config
    assert (loaded.sequence_length, loaded.corpus, loaded.is_classifier) == (32, corpus, False)
    assert loaded.metrics == answered.metrics and os.path.exists(os.path.join(answered.run_dir, "samples.txt"))
    # The questions were asked through the QA template, which the run keeps: a plain question is wrapped in it.
    assert loaded.template == QUESTION_ANSWER_TEMPLATE
    assert loaded.model.prompt_template == QUESTION_ANSWER_TEMPLATE
    assert "--- prompt: 'Q: " in open(os.path.join(answered.run_dir, "samples.txt"), encoding="utf-8").read()
    question = "what is a computer?"
    assert loaded.model.generate(question, max_new_tokens=3) == loaded.model.generate(
        f"Q: {question}\nA: ", max_new_tokens=3, apply_template=False)

    config = FinetuneConfig("sft", "qa", steps=1)
    with pytest.raises(RunDirectoryError, match="is the parent run"):
        finetune_run(answered.run_dir, config, answered.run_dir, verbose=0)
    with pytest.raises(RunDirectoryError, match="holds a complete run: use overwrite=True"):
        finetune_run(pretrained.path, config, answered.run_dir, verbose=0)
    with pytest.raises(RunDirectoryError, match="holds a finetune run, not a pretrain run"):
        RunDirectory(answered.run_dir).plan(RunConfig.default())
    # Data found too short once training starts: the unfinished fine-tuning, which does not resume, once stayed and
    # refused the corrected command.
    with pytest.raises(ValueError, match=r"fewer than one batch of batch_size=4096"):
        finetune_run(pretrained.path, FinetuneConfig("continue", corpus, steps=1, batch_size=4096),
                     tmp_path / "too_big", verbose=0)
    assert not (tmp_path / "too_big").exists()


def test_sft_with_a_template_saves_it_with_the_model_and_the_run(tmp_path):
    keras.utils.set_random_seed(0)
    model = LSTMLM(261, hidden_dim=8, tokenizer=ByteTokenizer(special_tokens=["<q>", "<a>"]))
    template = PromptTemplate("<q>{question}<a>", "{answer}")
    records = [{"question": "Who made the earth?", "answer": "God."}] * 4
    supervised_finetune(model, records, steps=2, sequence_length=32, batch_size=2, seed=0, template=template)
    assert model.prompt_template == template
    run = RunDirectory(tmp_path)
    run.save_model(model)
    assert json.loads((tmp_path / "template.json").read_text()) == template.get_config()
    assert keras.saving.load_model(tmp_path / "model.keras").prompt_template == template


def test_bad_fine_tuning_input_is_refused_before_any_training():
    # Each once trained, or built its data, before failing: the context inside fit, the markers only at chat().
    with pytest.raises(ValueError, match=r"sequence_length=64 is longer than the context of .*, max_sequence_length=16"):
        supervised_finetune(_transformer(context=16), [("a", "b")], steps=2, sequence_length=64, batch_size=1)
    with pytest.raises(ValueError, match=r"sequence_length=17 is longer than the context"):
        continue_pretraining(_transformer(context=16), ["some text " * 20], steps=2, sequence_length=17)
    with pytest.raises(ValueError, match=r"sequence_length=32 is longer than the context"):
        train_classifier(_transformer(context=16), [("a", "x"), ("b", "y")], steps=2, sequence_length=32)
    chat = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]]
    with pytest.raises(ValueError, match=r"the chat template's stop tokens \['<end>'\] are not special tokens of the "
                                         r"tokenizer: make it with special_tokens=template.special_tokens"):
        supervised_finetune(LSTMLM(VOCAB, hidden_dim=8, tokenizer=ByteTokenizer()), chat, steps=2, sequence_length=16,
                            batch_size=1, template=CHAT_TEMPLATE)
