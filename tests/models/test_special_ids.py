"""Models ask the tokenizer for its special ids: a vocabulary with bos 5, eos 7 and no pad trains and generates."""

import keras
import numpy as np
import pytest

from tests.helpers import OddIdsTokenizer
from tfllm.data import PromptTemplate, sft_dataset
from tfllm.models import LSTMLM, TransformerLM

PAIRS = [("a", "b"), ("cc", "d"), ("e", "f")] * 8


@pytest.fixture(scope="module", params=["lstm", "transformer"])
def trained(request):
    keras.utils.set_random_seed(1)
    tokenizer = OddIdsTokenizer()
    if request.param == "lstm":
        model = LSTMLM(tokenizer.vocab_size, hidden_dim=32, tokenizer=tokenizer)
    else:
        model = TransformerLM(tokenizer.vocab_size, num_layers=1, num_heads=2, hidden_dim=32, intermediate_dim=64,
                              max_sequence_length=16, tokenizer=tokenizer)
    model.compile(learning_rate=3e-2, warmup_steps=5, decay_steps=300)
    history = model.fit(sft_dataset(PAIRS, tokenizer, 6, 8, seed=0).repeat(), steps_per_epoch=50, epochs=3,
                        verbose=0)
    return model, history.history["loss"]


def test_the_model_uses_the_tokenizers_ids(trained):
    model, losses = trained
    assert model.pad_id == 7  # rows are filled with eos: there is no pad
    assert model.ignored_target_id is None  # so the loss masks by sample weight alone
    assert np.isfinite(losses).all() and losses[-1] < losses[0] / 5


def test_generation_starts_at_bos_and_stops_at_eos(trained):
    model, _ = trained
    a, b = 8 + ord("a"), 8 + ord("b")
    assert model.generate([[5, a]], max_new_tokens=6, strip_prompt=True) == [[b]]  # eos (7) ended the row
    assert model.generate(["a", "cc"], max_new_tokens=6, strip_prompt=True) == ["b", "d"]  # filled with eos


def test_template_and_tokenizer_survive_saving(trained, tmp_path):
    model, _ = trained
    model.prompt_template = PromptTemplate("{question}", "{answer}")
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.prompt_template == model.prompt_template
    assert (loaded.tokenizer.bos_id, loaded.tokenizer.eos_id, loaded.tokenizer.pad_id) == (5, 7, None)
    assert loaded.generate("e", max_new_tokens=6, strip_prompt=True) == "f"
    model.prompt_template = None


def test_generate_wraps_string_prompts_in_the_template(trained):
    model, _ = trained
    model.prompt_template = PromptTemplate("c{question}", "{answer}")  # "a" is read as "ca"
    try:
        assert model.generate("c", max_new_tokens=6).startswith("cc")
        assert model.generate(["c"], max_new_tokens=6, strip_prompt=True) == ["d"]  # "cc" -> "d"
        assert model.generate({"question": "c"}, max_new_tokens=6, strip_prompt=True) == "d"
        assert model.generate("a", max_new_tokens=6, strip_prompt=True, apply_template=False) == "b"
        assert "".join(model.stream("c", max_new_tokens=6)) == "d"
    finally:
        model.prompt_template = None
