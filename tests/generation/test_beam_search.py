"""Beam search through the decode contract: exact on small cases, greedy with one beam, state reordered per beam."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tfllm.generation import BeamSampler, GreedySampler, get_sampler
from tfllm.models import LSTMLM, SimpleRNNLM, TransformerLM

VOCAB = 7


def _model(name):
    if name == "rnn":
        return SimpleRNNLM(VOCAB, hidden_dim=12, num_layers=2)
    if name == "lstm":
        return LSTMLM(VOCAB, hidden_dim=12, num_layers=2)
    return TransformerLM(VOCAB, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)


def _bigram_step(probabilities):
    """A decode contract whose next-token distribution depends on the last token only."""
    table = ops.convert_to_tensor(np.log(np.asarray(probabilities) + 1e-9).astype("float32"))  # (V, V)

    def step(token_ids, state, index):
        return ops.take(table, token_ids, axis=0), state  # (B, 1, V)

    return step


def test_beam_search_finds_the_likelier_sequence_that_greedy_misses():
    # From 0, greedy takes 1 (0.6) and then can only reach 0.6 * 0.4; the path through 2 is worth 0.3 * 0.9.
    step = _bigram_step([[0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.05, 0.05, 0.9]])
    prompts = ops.convert_to_tensor([[0, 0, 0], [2, 0, 0]], "int32")
    lengths = ops.convert_to_tensor([1, 1], "int32")
    greedy, _ = GreedySampler().run(step, prompts, lengths, (), 1, 0, 2)
    beam, ends = BeamSampler(num_beams=2, length_penalty=0.0).run(step, prompts, lengths, (), 1, 0, 2)
    assert ops.convert_to_numpy(greedy).tolist() == [[0, 1, 2], [2, 2, 2]]
    assert ops.convert_to_numpy(beam).tolist() == [[0, 2, 2], [2, 2, 2]]
    assert ops.convert_to_numpy(ends).tolist() == [3, 3]


def test_a_finished_beam_keeps_its_score_and_the_length_penalty_decides():
    # Token 2 stops. From 0: "0 2" stops at once (0.5); "0 1 1" goes on (0.5 * 0.9 = 0.45): raw log-probabilities
    # prefer the short text, their mean per token the long one.
    step = _bigram_step([[0.0, 0.5, 0.5], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]])
    prompts = ops.convert_to_tensor([[0, 0, 0]], "int32")
    lengths = ops.convert_to_tensor([1], "int32")
    raw, raw_end = BeamSampler(2, length_penalty=0.0).run(step, prompts, lengths, (), 1, 0, 2, stop_token_ids=[2])
    mean, mean_end = BeamSampler(2, length_penalty=1.0).run(step, prompts, lengths, (), 1, 0, 2, stop_token_ids=[2])
    assert ops.convert_to_numpy(raw)[0, : int(raw_end[0])].tolist() == [0, 2]
    assert ops.convert_to_numpy(mean)[0, : int(mean_end[0])].tolist() == [0, 1, 1]


@pytest.mark.parametrize("name", ["rnn", "lstm", "transformer"])
def test_with_as_many_beams_as_tokens_two_new_tokens_are_the_exact_best(name):
    # Beam search keeps every first token, so its second step ranks all V * V continuations: the exact argmax. The
    # second step reads the states of the beams it kept, reordered: a wrong reordering gives another answer.
    model = _model(name)
    prompts = [[1, 4, 5, 3], [1, 6], [2, 2, 5]]
    found = model.generate(prompts, max_new_tokens=2, num_beams=VOCAB, stop_token_ids=[], strip_prompt=True)
    for prompt, new in zip(prompts, found):
        pairs = list(itertools.product(range(VOCAB), repeat=2))
        sequences = np.array([prompt + list(pair) for pair in pairs], np.int32)  # (V*V, T + 2)
        log_probs = np.asarray(tf.nn.log_softmax(model(sequences)))  # (V*V, T + 2, V)
        totals = [log_probs[row, len(prompt) - 1, a] + log_probs[row, len(prompt), b]
                  for row, (a, b) in enumerate(pairs)]
        assert tuple(new) == pairs[int(np.argmax(totals))]


@pytest.mark.parametrize("name", ["rnn", "transformer"])
def test_one_beam_is_greedy_decoding(name):
    model = _model(name)
    prompts = [[1, 4, 5, 3], [1, 6], [2, 2, 5]]
    assert model.generate(prompts, 6, num_beams=1, stop_token_ids=[]) == model.generate(prompts, 6, stop_token_ids=[])


def test_beam_settings_are_checked():
    assert isinstance(get_sampler("beam"), BeamSampler) and get_sampler("beam").num_beams == 4
    with pytest.raises(ValueError, match="num_beams=0 is invalid"):
        get_sampler(num_beams=0)
    with pytest.raises(ValueError, match="length_penalty=-1 is invalid"):
        BeamSampler(2, length_penalty=-1)
    with pytest.raises(TypeError, match="whole sequences"):
        BeamSampler(2)(ops.zeros((1, 3)), None)
