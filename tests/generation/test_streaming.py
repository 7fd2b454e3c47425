"""Streaming: chunks of a paused compiled loop that add up to what `generate` gives, whatever the tokenizer."""

import warnings

import keras
import numpy as np
import pytest

from tfllm.generation import text_generation
from tfllm.generation.sampler_settings import get_sampler
from tfllm.generation.text_generation import TextStream, continuation_bytes
from tfllm.models import LSTMLM, TransformerLM
from tfllm.tokenizers import ByteTokenizer, SentencePieceTokenizer

CORPUS = ["In the beginning God created the heaven and the earth.", "And God said, Let there be light."] * 20


@pytest.fixture(scope="module")
def sentencepiece():
    return SentencePieceTokenizer.train(CORPUS, vocab_size=300, model_type="bpe", verbose=False)


def _transformer(tokenizer):
    return TransformerLM(tokenizer.vocab_size, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
                         max_sequence_length=64, tokenizer=tokenizer)


@pytest.mark.parametrize("make", [lambda: _transformer(ByteTokenizer()),
                                  lambda: LSTMLM(259, hidden_dim=16, tokenizer=ByteTokenizer())],
                         ids=["transformer", "lstm"])
def test_the_pieces_add_up_to_the_generated_text(make):
    model = make()
    prompts = ["In the beginning", "And"]  # of different lengths: the second starts generating first
    settings = {"max_new_tokens": 20, "sampler": "top_p", "top_p": 0.95, "seed": 3}
    chunks = list(model.stream(prompts, chunk_tokens=6, **settings))
    assert all(isinstance(chunk, list) and len(chunk) == 2 for chunk in chunks)
    assert len(chunks) >= 3  # 20 new tokens (unless a row stops early), 6 positions per chunk
    joined = ["".join(chunk[row] for chunk in chunks) for row in range(2)]
    assert joined == model.generate(prompts, strip_prompt=True, **settings)


def test_a_character_is_never_split_between_pieces():
    model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())
    new_ids = [byte + 3 for byte in "é€!".encode()]  # 2 + 3 + 1 bytes, one token each
    stream = TextStream(model, [[1] + [byte + 3 for byte in b"A"]])
    pieces = [stream.update([new_ids[:count]])[0] for count in range(1, len(new_ids) + 1)]
    assert pieces == ["", "é", "", "", "€", "!"]
    cut = TextStream(model, [[1]])
    assert cut.update([new_ids[:1]]) == [""] and cut.update([new_ids[:1]], final=True) == ["\ufffd"]


@pytest.mark.parametrize("text", [" 今天 God", "¿ 今", "天"])
def test_a_character_of_several_byte_pieces_streams_whole_and_the_rest_follows(sentencepiece, text):
    # SentencePiece spells a character it has not seen in byte pieces, and detokenizes a cut one as U+FFFD. Streamed,
    # that U+FFFD went out, no later text started with what was sent, and every later piece was empty.
    model = _transformer(sentencepiece)
    prompt, new_ids = [1, *sentencepiece.tokenize("God").numpy().tolist()], sentencepiece.tokenize(text).numpy().tolist()
    assert len(new_ids) > len(text.split())  # byte pieces
    stream = TextStream(model, [prompt])
    pieces = [stream.update([new_ids[:count]])[0] for count in range(1, len(new_ids) + 1)]
    pieces += stream.update([new_ids], final=True)
    assert "\ufffd" not in "".join(pieces)
    assert "".join(pieces) == continuation_bytes(model, [prompt], [new_ids])[0].decode()  # what generate gives


def test_token_id_prompts_stream_new_ids_and_a_single_prompt_streams_strings(sentencepiece):
    model = _transformer(sentencepiece)
    ids = [[1, 40, 41], [1, 50]]
    chunks = list(model.stream(ids, max_new_tokens=7, chunk_tokens=3, stop_token_ids=[]))
    assert [sum((chunk[row] for chunk in chunks), []) for row in range(2)] == model.generate(
        ids, max_new_tokens=7, stop_token_ids=[], strip_prompt=True)
    pieces = list(model.stream("In the", max_new_tokens=5, chunk_tokens=2))
    assert all(isinstance(piece, str) for piece in pieces)


def test_strip_prompt_keeps_what_joins_the_new_text_to_the_prompt(sentencepiece):
    # SentencePiece drops the space that starts a text: the new text alone would lose the space after the prompt.
    model = _transformer(sentencepiece)
    full = model.generate("In the beginning", max_new_tokens=8, sampler="random", seed=1, stop_token_ids=[])
    new = model.generate("In the beginning", max_new_tokens=8, sampler="random", seed=1, stop_token_ids=[],
                         strip_prompt=True)
    assert full == "In the beginning" + new


def test_streaming_refuses_beam_search_and_bad_chunks_when_called():
    # Checked at the first next(), not at the call, before: a generator runs nothing until then.
    model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())
    with pytest.raises(ValueError, match="cannot stream"):
        model.stream("And", sampler="beam")
    with pytest.raises(ValueError, match="chunk_tokens=0 is invalid"):
        model.stream("And", chunk_tokens=0)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_a_new_prompt_length_costs_no_tracing(jit_compile):
    # The shortest prompt's length went into the compiled steps as a Python int: every new length traced them again
    # (about 1.5 s a prompt for the default Transformer; tfllm chat streams every reply).
    model = _transformer(ByteTokenizer())
    settings = {"max_new_tokens": 4, "chunk_tokens": 2, "jit_compile": jit_compile}
    for prompts in ("A", ["Am", "Amen"]):  # traced for the first shapes, then for any batch size and length
        list(model.stream(prompts, **settings))
    steps = text_generation.compiled(model, get_sampler(), [model.tokenizer.eos_id], jit_compile)["steps"]
    traced = steps.experimental_get_tracing_count()
    for prompts in ("Ame", "Amen", "Amen.", ["A", "Amen, amen", "And"]):
        list(model.stream(prompts, **settings))
    assert steps.experimental_get_tracing_count() == traced


def test_with_strip_prompt_false_the_pieces_add_up_to_generate_s_whole_text(sentencepiece):
    # tfllm generate --stream printed the prompt as given, and generate the prompt as the model read it: templated,
    # cut to the context, spelled by the tokenizer.
    model = _transformer(sentencepiece)  # a context of 64
    long = " ".join(["In the beginning God created the heaven and the earth."] * 8)
    settings = {"max_new_tokens": 10, "sampler": "top_p", "top_p": 0.95, "seed": 2}
    for prompts in (" In the", [long, "And God"], [[1, 40, 41], [1, 50]]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the long prompt loses its beginning, with a warning
            chunks = list(model.stream(prompts, chunk_tokens=3, strip_prompt=False, **settings))
            whole = model.generate(prompts, strip_prompt=False, **settings)
        if isinstance(prompts, str):
            assert "".join(chunks) == whole and whole.startswith("In the")  # SentencePiece drops the first space
        else:
            assert [_joined([chunk[row] for chunk in chunks]) for row in range(2)] == whole
            assert not isinstance(whole[0], str) or not whole[0].startswith("In the beginning")  # its end only


def _joined(pieces):
    return sum(pieces, []) if isinstance(pieces[0], list) else "".join(pieces)


def test_score_gives_per_token_log_likelihoods_of_each_text_of_a_ragged_batch():
    # tests/evaluation/test_scoring.py checks one text through a Transformer's windows; here the rows of a batch of
    # two lengths through a recurrent model, each against one forward pass over its own tokens.
    keras.utils.set_random_seed(0)
    model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())
    texts = ["Amen.", "Let there be light"]
    totals, counts, per_token = model.score(texts, per_token=True)
    assert counts.tolist() == [5, 18]
    for text, total, values in zip(texts, totals, per_token):
        ids = np.array([1, *(byte + 3 for byte in text.encode("utf-8"))], np.int32)  # bos, bytes; no eos scored
        log_probs = np.asarray(keras.ops.log_softmax(model(ids[None, :-1]))[0])  # (T - 1, V)
        np.testing.assert_allclose(values, log_probs[np.arange(len(ids) - 1), ids[1:]], rtol=1e-5, atol=1e-6)
        assert float(total) == pytest.approx(values.sum(), rel=1e-5)
