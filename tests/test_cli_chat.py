"""`tfllm chat` through a pipe and a pseudo-terminal, the runs it refuses, and `tfllm generate` on a chat run."""

import fcntl
import io
import json
import os
import pathlib
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time
import warnings

import keras
import pytest

import tfllm.training
from tests.test_cli import ENV, SCRIPT
from tfllm import cli
from tfllm.data import load_dialogs, sft_dataset
from tfllm.data.templates import CHAT_TEMPLATE, TranslationTemplate
from tfllm.evaluation import ChatMemory
from tfllm.models import TransformerLM
from tfllm.tokenizers import ByteTokenizer
from tfllm.training import RunConfig, load_run
from tfllm.training.run_directory import CONFIG, HISTORY, LOSS_CURVE, METRICS, SAMPLES, RunDirectory

DIALOGS = [
    {"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"},
                  {"role": "user", "content": "how are you"}, {"role": "assistant", "content": "very well, thanks"}],
     "language": "en"},
    {"messages": [{"role": "user", "content": "how are you"}, {"role": "assistant", "content": "fine"}],
     "language": "en"},
    {"messages": [{"role": "user", "content": "天气如何"}, {"role": "assistant", "content": "今天天气很好"}],
     "language": "zh"},
]
REPLY_TOKENS = 24  # --max-new-tokens of every chat below: with the context of 64, one padded length for XLA
LONG = "tell me " * 10  # 80 bytes: more than the context of 64 tokens holds with the reply


def save_run(path, model, corpus):
    """`model` as a complete pretraining run in `path`, which `load_run` reads back: the files a run writes."""
    run = RunDirectory(path)
    run.start(RunConfig.default("transformer", data={"corpus": corpus, "tokenizer": "byte"}), "new")
    run.save_model(model)
    for name in (LOSS_CURVE, SAMPLES):
        run.write_text(name, "")
    for name in (HISTORY, METRICS):
        run.write_json(name, {})
    return str(path)


def tiny_model(prompt_template):
    tokenizer = ByteTokenizer(special_tokens=CHAT_TEMPLATE.special_tokens)
    return TransformerLM(tokenizer.vocab_size, num_layers=1, num_heads=2, hidden_dim=32, intermediate_dim=64,
                         max_sequence_length=64, tokenizer=tokenizer, prompt_template=prompt_template)


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory):
    """A run directory of a tiny chat model trained on `DIALOGS` until it answers them (greedy replies that end with
    `<end>`), and the run as `tfllm chat` loads it."""
    folder = tmp_path_factory.mktemp("chat")
    corpus = folder / "dialogs.jsonl"
    corpus.write_text("".join(json.dumps(dialog, ensure_ascii=False) + "\n" for dialog in DIALOGS), encoding="utf-8")
    keras.utils.set_random_seed(0)
    model = tiny_model(CHAT_TEMPLATE)
    model.compile(learning_rate=1e-2, warmup_steps=5, decay_steps=40)
    batches = sft_dataset(DIALOGS, model.tokenizer, sequence_length=64, batch_size=3, seed=0, template=CHAT_TEMPLATE)
    model.fit(batches.repeat(), steps_per_epoch=40, epochs=1, verbose=0, shuffle=False)
    path = save_run(folder / "run", model, str(corpus))
    return path, load_run(path)


@pytest.fixture
def loaded_once(chat_run, monkeypatch):
    """The commands run in this process read the chat run already loaded (its model compiled), not anew."""
    path, run = chat_run
    monkeypatch.setattr(tfllm.training, "load_run", lambda run_dir: run if str(run_dir) == path else load_run(run_dir))
    return path, run.model


@pytest.fixture(scope="module")
def replies(chat_run):
    """What `model.chat` answers in-process: to "hello", then "how are you" after it, and alone, then `LONG`."""
    model = chat_run[1].model
    first = quiet_chat(model, turns("hello"))
    second = quiet_chat(model, turns("hello", first, "how are you"))
    alone = quiet_chat(model, turns("how are you"))
    assert second != alone, "the fixture's model must answer by the history: train it more"
    return {"first": first, "second": second, "alone": alone, "long": quiet_chat(model, turns("how are you", alone,
                                                                                               LONG))}


def quiet_chat(model, messages):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.chat(messages, max_new_tokens=REPLY_TOKENS)


def turns(*contents):
    """Messages of alternating roles, user first."""
    return [{"role": ("user", "assistant")[index % 2], "content": text} for index, text in enumerate(contents)]


def test_piped_chat_prints_one_reply_per_line_with_the_history_and_a_warning_line_for_a_long_message(chat_run,
                                                                                                      replies):
    piped = subprocess.run(
        [SCRIPT, "chat", chat_run[0], "--max-new-tokens", str(REPLY_TOKENS)],
        input=f"hello\n\nhow are you\n/reset\nhow are you\n{LONG}\n/exit\nnever read\n", capture_output=True,
        text=True, timeout=300, env=ENV)
    assert piped.returncode == 0, piped.stderr[-3000:]
    assert piped.stdout.splitlines() == [replies[key] for key in ("first", "second", "alone", "long")]
    shown = [line for line in piped.stderr.splitlines() if line.startswith("tfllm chat: warning: ")]
    assert len(shown) == 1 and "Traceback" not in piped.stderr, piped.stderr


def _as_from_a_shell():
    """In the child before it runs the command: the terminal (its standard input) becomes its controlling terminal,
    so that Ctrl-C typed there sends it SIGINT, and SIGINT is handled as by default (a process started in the
    background, as pytest-xdist's workers may be, ignores it, and so would the command)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    """`tfllm chat` on a pseudo-terminal: what it shows, and keys typed into it."""

    def __init__(self, run_dir):
        self.screen, self.terminal = b"", None
        terminal, child = pty.openpty()
        self.process = subprocess.Popen(
            [SCRIPT, "chat", run_dir, "--max-new-tokens", str(REPLY_TOKENS)], stdin=child, stdout=child, stderr=child,
            env=ENV, start_new_session=True, preexec_fn=_as_from_a_shell)
        os.close(child)
        self.terminal = terminal

    def read_until(self, text, seconds=300):
        """Reads the screen until `text` appears after what was read before; returns what came, as it shows (without
        the terminal's control sequences)."""
        start, deadline = len(self.screen), time.monotonic() + seconds
        while text not in self.shown(start):
            assert time.monotonic() < deadline, f"no {text!r} within {seconds} s: {self.screen.decode()!r}"
            if select.select([self.terminal], [], [], 1)[0]:
                try:
                    chunk = os.read(self.terminal, 1 << 16)
                except OSError:  # EIO: the command ended
                    chunk = b""
                assert chunk, f"ended before {text!r}: {self.screen.decode()!r}"
                self.screen += chunk
        return self.shown(start)

    def shown(self, start=0):
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.screen[start:].decode(errors="replace"))  # readline's modes
        return text.replace("\r\n", "\n").replace("\r", "")

    def type(self, keys):
        os.write(self.terminal, keys.encode())

    def exit_status(self, seconds=60):
        """Reads the screen until the command ends; returns its exit status."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if select.select([self.terminal], [], [], 1)[0]:
                try:
                    chunk = os.read(self.terminal, 1 << 16)
                except OSError:  # EIO: the command closed the terminal
                    break
                if not chunk:
                    break
                self.screen += chunk
        try:
            return self.process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {seconds} s: {self.shown()!r}") from None

    def close(self):
        self.process.kill()
        os.close(self.terminal)


@pytest.fixture
def terminal(chat_run):
    session = Terminal(chat_run[0])
    yield session
    session.close()


def test_interactive_chat_streams_replies_keeps_the_history_resets_and_leaves_on_ctrl_d(replies, terminal):
    first, second, alone = replies["first"], replies["second"], replies["alone"]
    assert "/reset" in terminal.read_until("you> ")  # the greeting says how to use it
    terminal.type("hello\n")
    assert terminal.read_until("you> ") == f"hello\n{first}\nyou> "  # the typed line echoed, then the reply
    terminal.type("\n")  # an empty line is ignored
    assert terminal.read_until("you> ") == "\nyou> "
    terminal.type("how are you\n")
    assert terminal.read_until("you> ") == f"how are you\n{second}\nyou> "
    terminal.type("/reset\n")
    assert "cleared" in terminal.read_until("you> ")
    terminal.type("how are you\n")
    assert terminal.read_until("you> ") == f"how are you\n{alone}\nyou> "
    terminal.type("\x04")  # Ctrl-D
    assert terminal.exit_status() == 0
    assert "Traceback" not in terminal.shown()


def test_ctrl_c_at_the_prompt_leaves_cleanly(terminal):
    terminal.read_until("you> ")
    # As a person would, a moment after the prompt shows: a SIGINT that lands between input()'s prompt and its
    # wait for a key is only seen at the next key (CPython's readline waits in select() without a timeout).
    time.sleep(1.0)
    terminal.type("\x03")  # Ctrl-C
    assert terminal.exit_status() == 0
    assert "Traceback" not in terminal.shown() and "KeyboardInterrupt" not in terminal.shown()


def run_command(argv, capsys):
    code = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_run_without_a_chat_model_is_refused_with_one_line_naming_the_command_that_fits(tmp_path, capsys):
    model = tiny_model(None)
    model(keras.ops.zeros((1, 2), "int32"))  # built, so that it saves its weights
    language_model = save_run(tmp_path / "lm", model, "kjv")
    model.prompt_template = TranslationTemplate(("en", "zh"))
    translation = save_run(tmp_path / "translation", model, "hsk")
    for run_dir, message in [(language_model, f"holds a language model without a chat template, not a chat model: "
                                              f"use tfllm generate {language_model} --prompt TEXT"),
                             (translation, f"holds a translation model, not a chat model: use tfllm translate "
                                           f"{translation} --to LANG TEXT")]:
        code, out, err = run_command(["chat", run_dir], capsys)
        assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err


def test_memory_replies_with_the_choice_of_the_runs_training_dialogs(loaded_once, monkeypatch, capsys):
    path, model = loaded_once
    memory = ChatMemory(load_dialogs(json.loads((pathlib.Path(path) / CONFIG).read_text())["data"]["corpus"],
                                     split="train"), k=2)
    expected = [model.chat(turns("how are you"), memory=memory), model.chat("天气如何", memory=memory)]
    monkeypatch.setattr(sys, "stdin", io.StringIO("how are you\n/reset\n天气如何\n"))  # piped: not a terminal
    code, out, err = run_command(["chat", path, "--memory", "--memory-candidates", 2], capsys)
    assert code == 0 and out.splitlines() == expected, err
    assert set(expected) <= {message["content"] for dialog in DIALOGS for message in dialog["messages"]}


def test_a_message_that_is_not_utf8_is_refused_and_the_chat_goes_on(loaded_once, monkeypatch, capsys):
    path, model = loaded_once
    memory = ChatMemory(load_dialogs(json.loads((pathlib.Path(path) / CONFIG).read_text())["data"]["corpus"],
                                     split="train"), k=2)
    stdin = io.TextIOWrapper(io.BytesIO(b"\xff?\n" + "天气如何\n".encode()), encoding="utf-8", errors="surrogateescape")
    monkeypatch.setattr(sys, "stdin", stdin)  # piped: not a terminal
    code, out, err = run_command(["chat", path, "--memory", "--memory-candidates", 2], capsys)
    assert code == 0 and out.splitlines() == ["", model.chat("天气如何", memory=memory)], err
    assert err == "tfllm chat: error: the message: not valid UTF-8 (byte 0xff at character 0)\n"


def test_settings_the_model_refuses_end_the_chat_before_the_first_message(loaded_once, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
    for flags, message in [(["--max-new-tokens", 64], "max_new_tokens=64 leaves no room for a prompt"),
                           (["--temperature", -1], "temperature=-1.0 is invalid")]:
        code, out, err = run_command(["chat", loaded_once[0], *flags], capsys)
        assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err


def test_memory_flags_are_checked_before_the_run_is_loaded(tmp_path, capsys):
    for flags, message in [
        (["--memory", "--temperature", "0.5", "--seed", "1"], "--memory chooses among the training replies and "
                                                              "generates nothing: drop --temperature, --seed"),
        (["--memory", "--max-new-tokens", "8"], "drop --max-new-tokens"),
        (["--memory", "--memory-candidates", "0"], "--memory-candidates 0: expected at least 1"),
        (["--memory-candidates", "2"], "--memory-candidates is for --memory"),
    ]:
        code, _, err = run_command(["chat", tmp_path / "nowhere", *flags], capsys)
        assert code == 2 and err.count("\n") == 1 and message in err, err


def test_chat_help_tells_how_a_session_works(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["chat", "--help"])
    shown = capsys.readouterr().out
    assert exit.value.code == 0
    for word in ("RUN_DIR", "/reset", "/exit", "Ctrl-D", "pipe", "--max-new-tokens", "--temperature", "--top-k",
                 "--top-p", "--seed", "--memory", "--memory-candidates"):
        assert word in shown, word


def test_chat_is_greedy_unless_the_flags_ask_for_a_draw():
    random = {"sampler": "random", "temperature": 1.0, "top_k": None, "top_p": None, "seed": None}
    for flags, expected in [
        ([], {"sampler": "greedy"}),
        (["--temperature", "0", "--top-k", "5"], {"sampler": "greedy"}),
        (["--top-p", "1"], {"sampler": "greedy"}),
        (["--temperature", "0.7", "--seed", "3"], {**random, "temperature": 0.7, "seed": 3}),
        (["--top-p", "0.9"], {**random, "top_p": 0.9}),
        (["--top-k", "5"], {**random, "top_k": 5}),
        (["--top-k", "5", "--top-p", "0.9", "--temperature", "0.5"], {**random, "top_k": 5, "top_p": 0.9,
                                                                       "temperature": 0.5}),  # get_sampler: both
    ]:
        args = cli.build_parser().parse_args(["chat", "runs/x", "--max-new-tokens", "9", *flags])
        assert cli._chat_sampling(args) == {"max_new_tokens": 9, **expected}, flags


def test_generate_on_a_chat_run_prints_the_reply_and_raw_continues_the_prompt_as_written(loaded_once, replies,
                                                                                       capsys):
    path, model = loaded_once
    greedy = ["--temperature", "0", "--max-new-tokens", REPLY_TOKENS]
    code, out, _ = run_command(["generate", path, "--prompt", "hello", *greedy], capsys)
    assert code == 0 and out.strip() == replies["first"]  # stopped at <end>, the prompt not repeated
    code, streamed, _ = run_command(["generate", path, "--prompt", "hello", "--stream", *greedy], capsys)
    assert code == 0 and streamed == out
    raw = "<user>hello<assistant>"
    code, out, _ = run_command(["generate", path, "--prompt", raw, "--raw", *greedy], capsys)
    expected = model.generate(raw, max_new_tokens=REPLY_TOKENS, apply_template=False)  # on past <end>, to eos
    assert code == 0 and out == expected + "\n"
