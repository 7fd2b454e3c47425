"""The three architectures behind one API: logits, the decode contract, generation, saving, compile defaults."""

import numpy as np
import keras
import pytest
import tensorflow as tf
from tensorflow.python.autograph.impl import api as autograph_api

from tfllm.data import PromptTemplate
from tfllm.generation import Sampler
from tfllm.models import LSTMLM, SimpleRNNLM, TransformerLM, WarmupCosineDecay
from tfllm.tokenizers import ByteTokenizer

VOCAB = 259  # the byte tokenizer's


def _model(name, **kwargs):
    tokenizer = ByteTokenizer()
    if name == "rnn":
        return SimpleRNNLM(VOCAB, hidden_dim=24, num_layers=2, tokenizer=tokenizer, **kwargs)
    if name == "lstm":
        return LSTMLM(VOCAB, hidden_dim=24, num_layers=2, tokenizer=tokenizer, **kwargs)
    position = "rotary" if name == "transformer_rotary" else "learned"
    return TransformerLM(
        VOCAB, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=32,
        position_embedding=position, tokenizer=tokenizer, **kwargs,
    )


ARCHITECTURES = ["rnn", "lstm", "transformer", "transformer_rotary"]


def _tokens(batch=2, length=12, seed=0):
    return np.random.RandomState(seed).randint(3, VOCAB, size=(batch, length)).astype("int32")


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_logits_have_the_vocabulary_size_and_are_float32(name):
    logits = _model(name)(_tokens())
    assert tuple(logits.shape) == (2, 12, VOCAB) and logits.dtype == "float32"


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_cached_decoding_gives_the_logits_of_a_full_pass(name):
    model = _model(name)
    tokens = _tokens()
    full = np.asarray(model(tokens))
    state = model.initial_state(2, 12)
    prefill, state = model.decode(tokens[:, :5], state, 0)
    steps = [np.asarray(prefill)]
    for index in range(5, 12):
        logits, state = model.decode(tokens[:, index : index + 1], state, index)
        steps.append(np.asarray(logits))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def _naive_greedy(model, prompt, new_tokens):
    """The reference: a full forward pass per new token, taking the argmax."""
    ids = list(prompt)
    for _ in range(new_tokens):
        ids.append(int(np.argmax(np.asarray(model(np.array([ids], "int32")))[0, -1])))
    return ids


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_greedy_generation_equals_a_naive_loop_for_prompts_of_different_lengths(name):
    model = _model(name)
    prompts = [[1, 40, 41, 42, 43], [1, 50], [1, 60, 61]]
    generated = model.generate(prompts, max_new_tokens=6, stop_token_ids=[])
    for prompt, ids in zip(prompts, generated):
        assert ids == _naive_greedy(model, prompt, 6)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_text_in_text_out_with_prompt_stripping_and_seeds(name):
    model = _model(name)
    full = model.generate(["In the beginning", "And"], max_new_tokens=4)
    new = model.generate(["In the beginning", "And"], max_new_tokens=4, strip_prompt=True)
    assert all(isinstance(text, str) for text in full)
    assert full[0].startswith("In the beginning") and full[1].startswith("And")
    assert [f"In the beginning{new[0]}", f"And{new[1]}"] == full
    assert model.generate("And", max_new_tokens=4) == full[1]
    sampled = [model.generate(["And"], max_new_tokens=8, sampler="top_p", top_p=0.9, seed=s) for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] != sampled[2]


def test_a_row_ends_at_its_stop_token_and_the_stop_token_is_left_out():
    model = _model("transformer")
    prompt = [1, 70, 71]
    free = model.generate([prompt], max_new_tokens=8, stop_token_ids=[])[0]
    stop = free[5]  # the third new token
    stopped = model.generate([prompt], max_new_tokens=8, stop_token_ids=[stop])[0]
    assert stopped == free[: free.index(stop, 3)]
    # Stop ids in a tensor, as NumPy's are taken (its items were "not a token id": tensors, not integers).
    assert model.generate([prompt], max_new_tokens=8, stop_token_ids=tf.constant([stop]))[0] == stopped


def test_prompts_longer_than_the_context_lose_their_beginning_with_a_warning():
    model = _model("transformer")
    prompt = list(_tokens(1, 40)[0])
    with pytest.warns(UserWarning, match="lose their beginning"):
        out = model.generate([prompt], max_new_tokens=4, stop_token_ids=[])[0]
    assert out[:28] == prompt[-28:] and len(out) == 32
    with pytest.raises(ValueError, match="max_new_tokens=32 leaves no room"):
        model.generate([prompt], max_new_tokens=32)
    with pytest.warns(UserWarning, match=r"prompts longer than 1 token \(max_sequence_length=32 - max_new_tokens=31\)"):
        model.generate([prompt], max_new_tokens=31, stop_token_ids=[])


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_saved_and_loaded_with_its_tokenizer_in_safe_mode(name, tmp_path):
    model = _model(name)
    tokens = _tokens()
    expected = np.asarray(model(tokens))
    text = model.generate(["Let there be"], max_new_tokens=5)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model) and isinstance(loaded.tokenizer, ByteTokenizer)
    np.testing.assert_allclose(np.asarray(loaded(tokens)), expected, atol=1e-6)
    assert loaded.generate(["Let there be"], max_new_tokens=5) == text
    assert_config_round_trip_model(model)


def assert_config_round_trip_model(model):
    config = model.get_config()
    rebuilt = type(model).from_config(config)
    assert rebuilt.get_config() == config


def test_score_is_the_sum_of_next_token_log_probabilities():
    model = _model("lstm")
    ids = [1] + [byte + 3 for byte in b"Amen."]
    log_probs = tf.nn.log_softmax(model(np.array([ids[:-1]], "int32")))[0].numpy()
    expected = sum(log_probs[i, ids[i + 1]] for i in range(len(ids) - 1))
    log_likelihood, count = model.score(["Amen."])
    assert count.tolist() == [5]
    np.testing.assert_allclose(log_likelihood[0], expected, rtol=1e-5)


def test_compile_defaults_train_a_language_model():
    model = _model("transformer")
    model.compile()
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.AdamW) and optimizer.global_clipnorm == 1.0
    assert isinstance(optimizer._learning_rate, WarmupCosineDecay)
    # The loss and the perplexity are means over the tokens that count: padding targets and zero-weight tokens
    # (an SFT prompt) are out of both.
    x, y = _tokens(2, 6), _tokens(2, 6, seed=1)
    y[0, 5] = 0  # a padding target
    weight = np.array([[1, 1, 1, 0, 0, 1], [1, 1, 1, 1, 1, 1]], "float32")
    result = model.evaluate(x, y, sample_weight=weight, return_dict=True, verbose=0)
    log_probs = tf.nn.log_softmax(model(x)).numpy()
    counted = (weight > 0) & (y != 0)
    expected = -np.mean(np.take_along_axis(log_probs, y[..., None], -1)[..., 0][counted])
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-4)
    np.testing.assert_allclose(result["perplexity"], np.exp(expected), rtol=1e-4)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_set_decay_steps_reaches_the_compiled_train_step_without_a_new_trace(jit_compile):
    # With decay_steps=1 the second step would run at a tenth of the peak rate; moved to 10,000 it runs at about
    # the peak. AdamW's first updates are about the learning rate in size, so the step shows which rate it used.
    x, y = _tokens(4, 8), _tokens(4, 8, seed=1)

    def second_update(moved):
        keras.utils.set_random_seed(0)
        model = _model("lstm")
        model.compile(learning_rate=1e-2, warmup_steps=0, decay_steps=1, weight_decay=0.0, jit_compile=jit_compile)
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
        compiled_step = model.train_function
        if moved:
            model.set_decay_steps(10_000)
        before = [w.numpy() for w in model.trainable_weights]
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
        assert model.train_function is compiled_step
        return max(np.abs(w.numpy() - b).max() for w, b in zip(model.trainable_weights, before))

    assert second_update(moved=True) > 5 * second_update(moved=False)


CPU_ONLY = pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="Keras's auto picks XLA on GPUs")


@CPU_ONLY
def test_auto_jit_compile_on_cpus_is_xla_for_float32_recurrent_models_and_the_plain_graph_otherwise():
    def resolved(model, **arguments):
        model.compile(**arguments)
        return model.jit_compile

    assert resolved(_model("lstm")) is True and resolved(_model("rnn")) is True
    assert resolved(_model("lstm", dtype="mixed_bfloat16")) is False
    assert resolved(_model("rnn", dtype="mixed_bfloat16")) is False
    assert resolved(_model("transformer")) is False
    assert resolved(_model("transformer", dtype="mixed_bfloat16"), jit_compile=True) is True
    assert resolved(_model("lstm"), jit_compile=False) is False
    assert resolved(_model("lstm"), run_eagerly=True) is False


@CPU_ONLY
def test_auto_jit_compile_keeps_keras_rule_on_machines_with_accelerators_and_under_strategies(monkeypatch):
    from tfllm.models import causal_lm

    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        model = _model("lstm")
        model.compile()
    assert model.jit_compile is False
    # With a GPU, Keras's own rule decides (here, with no GPU really present, it picks the plain graph).
    monkeypatch.setattr(causal_lm, "accelerators", lambda: ["/device:GPU:0"])
    model = _model("rnn")
    model.compile()
    assert model.jit_compile is False


@CPU_ONLY
@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_a_recurrent_model_trains_under_auto_xla_as_in_the_plain_graph(name):
    tokens = _tokens(batch=4, length=13, seed=3)
    batches = tf.data.Dataset.from_tensors((tokens[:, :-1], tokens[:, 1:])).repeat()
    models = []
    for jit_compile in ("auto", False):
        keras.utils.set_random_seed(0)
        model = _model(name)
        model.compile(learning_rate=1e-2, warmup_steps=0, jit_compile=jit_compile)
        history = model.fit(batches, steps_per_epoch=3, epochs=1, verbose=0).history
        models.append((model, history["loss"][0]))
    (xla, xla_loss), (graph, graph_loss) = models
    assert (xla.jit_compile, graph.jit_compile) == (True, False)
    np.testing.assert_allclose(xla_loss, graph_loss, rtol=1e-5)
    for ours, theirs in zip(xla.get_weights(), graph.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_set_decay_steps_needs_the_default_optimizer():
    model = _model("lstm")
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="compiled with the default optimizer"):
        model.set_decay_steps(100)


@pytest.mark.parametrize("name", ["rnn", "lstm", "transformer"])
def test_fit_with_the_defaults_learns_a_repeating_text(name):
    model = _model(name)
    model.compile(learning_rate=1e-2, warmup_steps=10, decay_steps=200)
    text = np.array([byte + 3 for byte in b"abcdefgh" * 40], "int32")
    windows = np.stack([text[i : i + 17] for i in range(0, 300, 3)])
    history = model.fit(windows[:, :-1], windows[:, 1:], batch_size=10, epochs=20, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] / 4
    assert history["perplexity"][-1] < 3.0  # chance is 259


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SimpleRNNLM(0, 8), r"vocab_size=0 is invalid"),
        (lambda: LSTMLM(10, -8), r"hidden_dim=-8 is invalid"),
        (lambda: LSTMLM(10, 8, dropout=1.5), r"dropout=1.5 is invalid"),
        (lambda: TransformerLM(10, 2, 3, 16, 32, 8), r"hidden_dim=16 is not divisible by num_heads=3"),
        (lambda: TransformerLM(10, 2, 2, 16, 32, 8, position_embedding="alibi"), r"position_embedding='alibi'"),
        # Once an error of the first call, which Keras wraps ("Exception encountered when calling ...").
        (lambda: TransformerLM(10, 1, 2, 6, 32, 8, position_embedding="rotary"),
         r"^hidden_dim=6 over num_heads=2 gives heads of width 3: rotary position embeddings turn pairs"),
        (lambda: SimpleRNNLM(100, 8, tokenizer=ByteTokenizer()), r"vocab_size=100 is smaller than the tokenizer"),
    ],
)
def test_bad_configurations_name_the_argument(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_sequence_longer_than_the_context_is_refused():
    with pytest.raises(ValueError, match="sequence length 40 is longer than max_sequence_length=32"):
        _model("transformer")(_tokens(1, 40))


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"prompts": []}, r"prompts is empty"),
        ({"max_new_tokens": 0}, r"max_new_tokens=0 is invalid"),
        ({"temperature": -0.5}, r"temperature=-0.5 is invalid"),
        ({"top_p": 2.0}, r"top_p=2.0 is invalid"),
        ({"temperature": float("inf"), "sampler": "random"}, r"temperature=inf is invalid"),
        ({"prompts": [[1, 5], [1, VOCAB]]}, rf"a prompt holds {VOCAB}, which is not a token id of this model: "
                                           rf"expected integers in \[0, {VOCAB}\)"),
        ({"prompts": [[1, -1]]}, r"a prompt holds -1, which is not a token id"),
        ({"stop_token_ids": [2, VOCAB + 5]}, rf"stop_token_ids holds {VOCAB + 5}, which is not a token id"),
        ({"stop_token_ids": 2}, r"stop_token_ids=2 is invalid: expected a list of token ids \(\[2\] for one\)"),
        ({"seed": 2**31, "sampler": "random"}, r"seed=2147483648 is invalid: expected an integer in \[-2\*\*31, "),
        ({"seed": 1.5, "sampler": "random"}, r"seed=1.5 is invalid"),
        # Ids that are not ints, once made ints without a word (5.5 became 5, True 1).
        ({"prompts": [[1, 5.5]]}, r"a prompt holds 5.5, which is not a token id"),
        ({"prompts": [[1, 5.0]]}, r"a prompt holds 5.0, which is not a token id"),
        ({"prompts": [[True, 5]]}, r"a prompt holds True, which is not a token id"),
        # Prompts of no form generate reads, once TypeErrors from deep inside ("'int' object is not iterable").
        ({"prompts": [1, 5]}, r"prompts\[0\] is 1, not a prompt's token ids: token ids go in a list of lists"),
        # Conversations, once "a prompt holds {'role': ...}, which is not a token id".
        ({"prompts": [{"role": "user", "content": "Hi"}]}, r"prompts hold a conversation \(chat messages, dicts with "
                                                           r"a role and content\): .* model.chat\(messages\)"),
        ({"prompts": [[{"role": "user", "content": "Hi"}]] * 2}, r"prompts hold a conversation"),
        # Text and ids mixed, once "texts[1] is a list" (of an argument named prompts).
        ({"prompts": ["And", [1, 5]]}, r"prompts\[1\] is a list, and prompts\[0\] a string: prompts are all text "
                                       r"or all token ids"),
        # "false" ran XLA: a string is true.
        ({"jit_compile": "false"}, r"jit_compile='false' is invalid: expected True, False or \"auto\""),
        ({"prompts": None}, r"prompts=None is invalid: expected a string, a list of strings, or token ids"),
        ({"prompts": 7}, r"prompts=7 is invalid"),
        ({"prompts": np.array([1, 5], "int32")}, r"token-id prompts must be \(B, T\), one row per prompt; got shape "
                                                 r"\(2,\)"),
        ({"prompts": tf.constant([["And"]])}, r"text prompts as a tensor or array must be a scalar or a vector"),
        # Positions are int32: a recurrent model (no context) once tried to allocate 8 GiB per row, or was killed.
        ({"max_new_tokens": 2**31 - 64}, r"max_new_tokens=2147483584 after a prompt of 4 tokens is more positions "
                                         r"than generation counts \(int32, padded for XLA\): expected at most "
                                         r"2147483583 in all"),
    ],
)
def test_bad_generation_arguments_name_the_argument(arguments, message):
    call = {"prompts": ["And"], "max_new_tokens": 3}
    call.update(arguments)
    with pytest.raises(ValueError, match=message):
        _model("rnn").generate(**call)


def test_text_as_bytes_or_in_a_string_tensor_or_array_is_text_to_generate_and_score():
    # It was read as token ids: tf.constant(["In the"]) generated from the ids 73, 110, ... (the bytes of "In the").
    model = _model("transformer")
    expected = model.generate(["In the", "And"], max_new_tokens=4)
    assert model.generate(tf.constant(["In the", "And"]), max_new_tokens=4) == expected
    assert model.generate(np.array(["In the", "And"]), max_new_tokens=4) == expected
    assert model.generate(tf.constant("In the"), max_new_tokens=4) == expected[0]
    assert list(model.stream(tf.constant(["And"]), max_new_tokens=4)) == list(model.stream(["And"], max_new_tokens=4))
    np.testing.assert_array_equal(model.score(tf.constant(["In the", "And"]))[0], model.score(["In the", "And"])[0])
    model.prompt_template = PromptTemplate("Q: {question}\nA: ", "{answer}")  # wrapped as Python strings are
    assert model.generate(tf.constant(["Why?"]), max_new_tokens=4) == model.generate(["Why?"], max_new_tokens=4)
    assert model.generate(["Why?"], max_new_tokens=4)[0].startswith("Q: Why?\nA: ")
    # Bytes were text to the tokenizer but not to the template: b"Why?" generated from "Why?" unwrapped.
    assert model.generate(b"Why?", max_new_tokens=4) == model.generate("Why?", max_new_tokens=4)
    assert model.generate([b"Why?", "And"], max_new_tokens=4) == model.generate(["Why?", "And"], max_new_tokens=4)
    with pytest.raises(ValueError, match=r"prompts\[1\] is not UTF-8 text: byte 0xff at offset 0"):
        model.generate(tf.constant([b"a", b"\xff"]), max_new_tokens=4)
    with pytest.raises(ValueError, match=r"texts=None is invalid: expected a string or a list of strings"):
        model.score(None)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_a_vocabulary_padded_past_the_tokenizer_s_generates_only_the_tokenizer_s_ids(jit_compile):
    # The constructor takes vocab_size=320 for a tokenizer of 259 ids; generating drew ids past 258, which the
    # tokenizer refused ("token id >= vocab_size").
    model = LSTMLM(320, hidden_dim=8, tokenizer=ByteTokenizer())
    settings = {"max_new_tokens": 30, "sampler": "random", "seed": 0, "stop_token_ids": [], "jit_compile": jit_compile}
    ids = model.generate([[1, 40, 41]] * 4, **settings)
    assert max(max(row) for row in ids) < 259 and min(len(row) for row in ids) == 33
    assert len(model.generate("In the", **settings).encode()) >= len("In the")
    assert max(max(row) for row in model.generate([[1, 40]], max_new_tokens=5, sampler="beam")) < 259


def test_a_model_compiled_with_the_defaults_loads_compiled_with_its_precision(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = _model("lstm")
    model.compile(learning_rate=5e-3, warmup_steps=3, decay_steps=50)
    model.fit(_tokens(4, 8), _tokens(4, 8, seed=1), verbose=0)
    model.save(tmp_path / "model.keras")
    keras.config.set_dtype_policy("float32")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert loaded.dtype_policy.name == "mixed_bfloat16"
    assert loaded.optimizer is not None and int(loaded.optimizer.iterations) == 1
    schedule = loaded.optimizer._learning_rate
    assert isinstance(schedule, WarmupCosineDecay) and schedule.peak_learning_rate == 5e-3


def test_trying_many_sampler_settings_does_not_warn_of_retracing(caplog):
    model = _model("lstm")
    with caplog.at_level("WARNING", logger="tensorflow"):
        for temperature in (0.5, 0.6, 0.7, 0.8, 0.9, 1.1, 1.2):  # each setting has its own compiled functions
            model.generate("In the", max_new_tokens=2, sampler="random", temperature=temperature, seed=0)
    assert not [record for record in caplog.records if "retracing" in record.getMessage()]


def test_a_sampler_s_compiled_loop_is_kept_for_its_class_and_exact_settings_only():
    # The loops were kept by the class's name and the repr of its settings: a class defined again under the same
    # name (a notebook cell run again after an edit), or an array setting differing where its repr shows "...",
    # ran the old sampler's loop and gave its tokens.
    model = _model("lstm")

    def constant_sampler(token):
        class Constant(Sampler):  # the same name each time, as in a cell run twice
            def __call__(self, logits, seed):
                return tf.fill(tf.shape(logits)[:1], token)

        return Constant()

    assert model.generate([[1]], max_new_tokens=2, sampler=constant_sampler(100)) == [[1, 100, 100]]
    assert model.generate([[1]], max_new_tokens=2, sampler=constant_sampler(200)) == [[1, 200, 200]]

    class Favourite(Sampler):  # the token of the largest of 2,000 biases (modulo the vocabulary)
        def __init__(self, biases):
            self.biases = biases

        def __call__(self, logits, seed):
            return tf.fill(tf.shape(logits)[:1], tf.cast(tf.argmax(self.biases), tf.int32) % VOCAB)

    for favourite in (700, 1200):  # both in the middle, which the repr of an array of 2,000 elides
        biases = np.zeros(2000, np.float32)
        biases[favourite] = 1.0
        assert model.generate([[1]], max_new_tokens=1, sampler=Favourite(biases)) == [[1, favourite % VOCAB]]


def test_generation_is_traced_without_autograph(monkeypatch):
    # Its functions are plain graph code; AutoGraph converting them took about 0.8 s of a process's first generate
    # (benchmarks/first_generate.py).
    converted = []
    real = autograph_api.converted_call

    def recorded(function, *args, **kwargs):  # where a tf.function with AutoGraph on enters its conversion
        converted.append(function)
        return real(function, *args, **kwargs)

    monkeypatch.setattr(autograph_api, "converted_call", recorded)
    model = _model("transformer")
    for options in ({"sampler": "greedy"}, {"top_p": 0.9, "seed": 0}):  # the prefill, loop and streaming steps
        model.generate(["In the", "And"], max_new_tokens=3, jit_compile=False, **options)
        list(model.stream("In the", max_new_tokens=3, jit_compile=False, **options))
    assert converted == []
    tf.function(lambda x: x + 1)(tf.constant(1))  # a function with AutoGraph on does enter it
    assert len(converted) == 1
