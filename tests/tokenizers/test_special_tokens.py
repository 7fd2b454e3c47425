"""Extra special tokens in every tokenizer: one id each, through tf.data, `.keras` files and SavedModels."""

import pytest

from tests.tokenizers import common
from tfllm.tokenizers import ByteTokenizer, CharTokenizer, SentencePieceTokenizer, Tokenizer, WordPieceTokenizer

SPECIAL = ["<en>", "<zh>", "<|user|>"]
CORPUS = ["The weather is very nice today.", "今天天气很好。", "How is the weather?", "天气如何？"] * 10
TEXTS = ["<en>How is the weather?<zh>天气如何？", "no tags at all", "<|user|><|user|>x", "", "中<zh>"]
TRAINERS = {
    "byte": lambda: ByteTokenizer.train(CORPUS, special_tokens=SPECIAL, verbose=False),
    "char": lambda: CharTokenizer.train(CORPUS, special_tokens=SPECIAL, verbose=False),
    "wordpiece": lambda: WordPieceTokenizer.train(CORPUS, vocab_size=80, special_tokens=SPECIAL, verbose=False),
    "sentencepiece": lambda: SentencePieceTokenizer.train(CORPUS, vocab_size=300, special_tokens=SPECIAL,
                                                          verbose=False),
}


@pytest.fixture(scope="module", params=sorted(TRAINERS))
def tokenizer(request):
    return TRAINERS[request.param]()


@pytest.mark.parametrize("check", common.INTERFACE_CHECKS, ids=lambda check: check.__name__)
def test_interface_with_special_tokens(tokenizer, check, tmp_path):
    check(tokenizer, TEXTS, tmp_path)


def test_ids_follow_each_tokenizers_rule(tokenizer):
    ids = [tokenizer.special_tokens[token] for token in SPECIAL]
    first = 259 if isinstance(tokenizer, ByteTokenizer) else 4  # after the bytes, or after pad/bos/eos/unk
    assert ids == [first, first + 1, first + 2]
    assert tokenizer.tokenize("<zh>你好").numpy()[0] == first + 1
    assert tokenizer.get_config()["special_tokens"] == SPECIAL


def test_detokenize_drops_them_by_default(tokenizer):
    ids = tokenizer.tokenize(["<en>How<zh>", "How"])
    plain = tokenizer.detokenize(ids).numpy().tolist()
    assert plain[0] == plain[1]


@pytest.mark.parametrize("kind", sorted(TRAINERS))
@pytest.mark.parametrize(
    "special_tokens, message",
    [
        (["<en>", "<en>"], "repeats '<en>'"),
        (["<en>", ""], "expected non-empty strings"),
        ("<en>", "is one string"),
        (["weather"], "'weather' already appears as normal text in training text #0"),
    ],
)
def test_bad_special_tokens_are_named(kind, special_tokens, message):
    import tfllm.tokenizers as tokenizers

    cls = {"byte": tokenizers.ByteTokenizer, "char": tokenizers.CharTokenizer,
           "wordpiece": tokenizers.WordPieceTokenizer, "sentencepiece": tokenizers.SentencePieceTokenizer}[kind]
    kwargs = {"vocab_size": 300} if kind in ("wordpiece", "sentencepiece") else {}
    with pytest.raises(ValueError, match=message.replace("|", r"\|")):
        cls.train(CORPUS, special_tokens=special_tokens, verbose=False, **kwargs)


def test_a_role_token_is_not_an_extra_one():
    with pytest.raises(ValueError, match="already this tokenizer's own special token"):
        ByteTokenizer(special_tokens=["<eos>"])


def test_a_tokenizer_that_gives_a_special_token_no_id_is_told_what_is_expected():
    class ForgetfulTokenizer(Tokenizer):  # its vocabulary leaves out the extra special tokens
        special_token_roles = {"pad": "<pad>", "eos": "<eos>"}

        def get_vocabulary(self):
            return ["<pad>", "<eos>", "a"]

    with pytest.raises(ValueError) as error:
        ForgetfulTokenizer(special_tokens=["<en>"]).special_tokens
    assert str(error.value) == (
        "special tokens ['<en>'] are not in the vocabulary of this ForgetfulTokenizer: expected each token of "
        "`special_token_roles` and each extra special token in `get_vocabulary()`, one id each (a tokenizer gives "
        "the extra ones their ids, as `CharTokenizer` does after its role tokens)"
    )
