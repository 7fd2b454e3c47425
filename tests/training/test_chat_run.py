"""`tfllm train --task chat` end to end on a tiny dialog file: the two phases' batches, the run and its report."""

import json
import os

import numpy as np
import pytest

from tfllm.data import load_dialogs
from tfllm.data.templates import CHAT_TEMPLATE
from tfllm.tokenizers import ByteTokenizer
from tfllm.training import RunConfig, load_run, pretrain
from tfllm.training import chat_task
from tfllm.training.config import DEFAULTS

DIGITS = "零一二三四五六七八九"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def write_dialogs(folder, count=120):
    """A JSONL of chat messages: "what comes after N?" in English and in Chinese, some of two exchanges."""
    path = os.path.join(folder, "numbers.jsonl")
    with open(path, "w", encoding="utf-8") as file:
        for number in range(count):
            english = [{"role": "user", "content": f"What comes after {WORDS[number % 10]} ({number})?"},
                       {"role": "assistant", "content": WORDS[(number + 1) % 10]}]
            chinese = [{"role": "user", "content": f"{DIGITS[number % 10]}的后面是什么？（{number}）"},
                       {"role": "assistant", "content": DIGITS[(number + 1) % 10]}]
            if number % 3 == 0:
                english += [{"role": "user", "content": "And then?"},
                            {"role": "assistant", "content": WORDS[(number + 2) % 10]}]
            file.write(json.dumps({"messages": english}) + "\n")
            file.write(json.dumps({"messages": chinese}, ensure_ascii=False) + "\n")
    return path


TINY = {
    "model": {"num_layers": 1, "hidden_dim": 16, "num_heads": 2, "intermediate_dim": 32, "max_sequence_length": 64},
    "data": {"task": "chat", "tokenizer": "byte"},
    "train": {"steps": 10, "batch_size": 8, "sequence_length": 48, "warmup_steps": 1, "eval_every": 5,
              "checkpoint_every": 5, "time_budget_minutes": None, "sample_tokens": 8, "sample_every": None},
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_dialogs(tmp_path_factory.mktemp("chat"))


@pytest.fixture(scope="module")
def chat_run(corpus, tmp_path_factory):
    config = RunConfig.default(data={**TINY["data"], "corpus": corpus}, model=TINY["model"], train=TINY["train"])
    return pretrain(config, str(tmp_path_factory.mktemp("chat") / "run"), verbose=0, peak_flops=1e11)


def test_the_task_changes_the_defaults():
    config = RunConfig.default(data={"task": "chat"})
    chat = DEFAULTS["task"]["chat"]
    assert config.data.corpus == "chatterbot" and config.data.vocab_size == chat["data"]["vocab_size"]
    assert config.train.time_budget_minutes == chat["train"]["time_budget_minutes"]
    with pytest.raises(ValueError, match="data.train_pairs=10 is for data.task='translate'"):
        RunConfig.default(data={"task": "chat", "train_pairs": 10})


def test_pretraining_rows_learn_every_token_then_conversations_learn_the_assistant_turns_only(corpus):
    config = RunConfig.default(data={**TINY["data"], "corpus": corpus}, model=TINY["model"], train=TINY["train"])
    texts = chat_task.read_dialog_texts(config.data)
    tokenizer = ByteTokenizer(special_tokens=CHAT_TEMPLATE.special_tokens)
    ids = {token: tokenizer.special_tokens[token] for token in CHAT_TEMPLATE.special_tokens}
    batches = [[part.numpy() for part in batch] for batch in
               chat_task.train_batches(config.train, tokenizer, texts, steps=10)]
    assert len(batches) == 10 and chat_task.pretraining_steps(10) == 5
    for x, y, weight in batches[:5]:  # plain text: every token but the filling and the next text's bos is learned
        assert not np.isin(x, list(ids.values())).any()
        learned = (y != tokenizer.fill_id) & (y != tokenizer.bos_id)
        np.testing.assert_array_equal(weight, learned.astype(np.float32))
    x, y, weight = (np.concatenate(parts) for parts in zip(*batches[5:]))
    assert (weight[y == ids["<end>"]] == 1).all() and (weight[y == ids["<user>"]] == 0).all()
    assert (weight[y == ids["<assistant>"]] == 0).all()
    for row_x, row_weight in zip(x, weight):  # inside a user turn (after <user>, before <assistant>) nothing is learned
        role = None
        for token, learned in zip(row_x[1:], row_weight[:-1]):  # the weight of predicting row_x[i + 1]
            role = {ids["<user>"]: "user", ids["<assistant>"]: "assistant"}.get(token, role)
            if role == "user" and token not in ids.values():
                assert learned == 0
    resumed = [[part.numpy() for part in batch] for batch in
               chat_task.train_batches(config.train, tokenizer, texts, start_step=6, steps=10, end_step=8)]
    assert len(resumed) == 2
    for ours, theirs in zip(resumed, batches[6:8]):
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


def test_the_run_reports_the_model_its_memory_and_the_baselines_in_both_languages(chat_run):
    metrics = chat_run.metrics
    best = json.load(open(os.path.join(chat_run.run_dir, "checkpoints", "best.json")))
    assert os.path.exists(os.path.join(chat_run.run_dir, "checkpoints", best["weights"]))
    report = metrics["chat"]
    assert metrics["train_conversations"] == len(load_dialogs(chat_run.config.data.corpus, split="train"))
    assert set(report["held_out"]) == {"model", "memory", "retrieval", "most_common"}
    for scores in report["held_out"].values():
        assert 0 <= scores["all"]["chrf"] <= 100 and scores["all"]["count"] == report["test_exchanges"]
    assert report["held_out"]["model"]["all"]["well_formed"] is None or 0 <= report["held_out"]["model"]["all"][
        "well_formed"] <= 1
    assert report["training_questions"]["count"] > 0
    assert 0 <= report["training_questions"]["exact_match"]["memory"] <= 1
    assert [example["question"] for example in report["examples"]][0] == "天气如何？"


def test_the_saved_model_chats_with_its_template(chat_run):
    model = load_run(chat_run.run_dir).model
    assert model.prompt_template == CHAT_TEMPLATE
    messages = [{"role": "user", "content": "What comes after two (2)?"}]
    assert model.chat(messages, max_new_tokens=4) == chat_run.model.chat(messages, max_new_tokens=4)
    # Ten steps leave a greedy reply that may end at once, empty: a draw that goes on past <end> shows that the
    # trained weights came back.
    drawn = {"sampler": "top_p", "top_p": 0.9, "seed": 3, "stop_token_ids": []}
    reply = model.chat(messages, max_new_tokens=6, **drawn)
    assert reply and reply == chat_run.model.chat(messages, max_new_tokens=6, **drawn)
