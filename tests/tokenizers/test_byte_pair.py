"""BytePairTokenizer against the references: Hugging Face's GPT-2 tokenizer, GPT-2's own algorithm, KerasHub's."""

import functools
import json

import keras
import pytest
import regex
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tests.bpe_files import END_OF_TEXT, write_byte_level_bpe
from tests.tokenizers import common
from tfllm.tokenizers import BytePairTokenizer
from tfllm.tokenizers.byte_level import byte_to_code_point

EXTRA = ["<|im_start|>", "<|im_end|>"]
HARD_TEXTS = [
    "In the beginning God created the heaven and the earth.",
    "I'm sure they'll say it's 2024's best, isn't it? We've, you'd, they're",
    "I'M SURE IT'S THEIR'S; 'S 'T 'RE 'VE 'M 'LL 'D",
    "'s at the start, 'twas, rock'n'roll, ''s, '''",
    "3.14159 * 1000000 = 3141590, 2024-12-03 12345678901234567890 ١٢٣ ⅓ ²",
    "Wait!!! What?!... (yes) [no] {maybe} <tag> #hash @at $100 %50 ^_^ ~~~ ---",
    "emoji 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇨🇳 ❤️",
    "中文的句子，有标点。他说：“你好！”",
    "日本語の文章です。カタカナとひらがな、ｈａｌｆ",
    "العربية من اليمين إلى اليسار",
    "café naïve résumé Ångström",
    "cafe\u0301 nai\u0308ve",  # NFD: combining accents
    "\u00e9 vs e\u0301",  # NFC vs NFD
    "tabs\tand\t\ttabs\nnew\nlines\n\n\nand\r\nCRLF\r\n",
    "   leading spaces",
    "trailing spaces   ",
    "middle     spaces and  two",
    "a space before a newline \n and a tab before one\t\nend",
    " \n \n  x",
    "x" * 120 + " " + "abc" * 40,
    "",
    " ",
    "<|endoftext|>",
    "<|endoftext|>at the start",
    "at the end<|endoftext|>",
    "glued<|endoftext|>words and  <|endoftext|>  spaced<|endoftext|><|endoftext|>twice",
    "<|endoftext|",
    "control\x01\x07\x1b[31mred\x1b[0m\x7f characters\x1c\x1d\x1e\x1f",
    "unicode\u0085next\u00a0nbsp\u3000ideographic\u2028line\u2029para\u200bzwsp\ufeffbom\u1680ogham\u2003em",
    "\u3000\u3000lead and trail\u00a0\u00a0",
    "a \u00a0b\u00a0 c \u3000 d",
    "Ġ and Ċ are plain letters here",
    "surrogates are not text but U+FFFD is: \ufffd and noncharacters \uffff\U0010ffff",
    "new in Unicode 16: \u1c89\U000105c0\U00010d40 and 17: \U00016ea0",
]


# --- references ---------------------------------------------------------------------------------------------------


def gpt2_encode(text, vocabulary, merges):
    """GPT-2's original encoder (openai/gpt-2 `encoder.py`), written out here as the independent reference.

    It splits on `<|endoftext|>` first, as Hugging Face's added-token handling does.
    """
    pattern = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
    byte_encoder = {byte: chr(code_point) for byte, code_point in enumerate(byte_to_code_point())}
    ranks = {tuple(merge.split(" ")): rank for rank, merge in enumerate(merges)}
    ids = []
    for index, segment in enumerate(text.split(END_OF_TEXT)):
        if index:
            ids.append(vocabulary[END_OF_TEXT])
        for word in pattern.findall(segment):
            symbols = [byte_encoder[byte] for byte in word.encode("utf-8")]
            while len(symbols) > 1:
                first, second = min(zip(symbols, symbols[1:]), key=lambda pair: ranks.get(pair, float("inf")))
                if (first, second) not in ranks:
                    break
                merged, i = [], 0
                while i < len(symbols):
                    if i < len(symbols) - 1 and symbols[i] == first and symbols[i + 1] == second:
                        merged.append(first + second)
                        i += 2
                    else:
                        merged.append(symbols[i])
                        i += 1
                symbols = merged
            ids += [vocabulary[symbol] for symbol in symbols]
    return ids


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_byte_level_bpe(str(tmp_path_factory.mktemp("gpt2_bpe")))


@pytest.fixture(scope="module")
def tokenizer(files):
    return BytePairTokenizer.from_files(*files)


@pytest.fixture(scope="module")
def hugging_face(files):
    transformers = pytest.importorskip("transformers")
    return transformers.GPT2TokenizerFast.from_pretrained(files[0].rsplit("/", 1)[0])


@pytest.fixture(scope="module")
def keras_hub_tokenizer(files):
    keras_hub = pytest.importorskip("keras_hub")
    return keras_hub.models.GPT2Tokenizer(vocabulary=files[0], merges=files[1])


def hugging_face_ids(hugging_face, texts):
    return [hugging_face.encode(text) for text in texts]


# --- ids equal the references' ------------------------------------------------------------------------------------


def test_ids_equal_hugging_face_on_the_hard_suite(tokenizer, hugging_face):
    got = tokenizer.tokenize(HARD_TEXTS).to_list()
    for text, want, ids in zip(HARD_TEXTS, hugging_face_ids(hugging_face, HARD_TEXTS), got):
        assert ids == want, text


def test_ids_equal_gpt2s_own_algorithm_on_the_hard_suite(tokenizer, files):
    with open(files[0], encoding="utf-8") as file:
        vocabulary = json.load(file)
    merges = tokenizer.merges
    texts = [text for text in HARD_TEXTS if "Unicode 16" not in text]  # the `regex` module knows other letters
    for text, ids in zip(texts, tokenizer.tokenize(texts).to_list()):
        assert ids == gpt2_encode(text, vocabulary, merges), text


TRICKY_CHARACTERS = [*" \t\n\r\x0b\x0c\u0085\u00a0\u3000\u2028's'tdlmrve'SL1٣ aé\u0301!?.-😀\u200d🏽中", END_OF_TEXT]


@settings(max_examples=10, deadline=None, derandomize=True)
@given(st.lists(st.lists(st.sampled_from(TRICKY_CHARACTERS), max_size=30).map("".join), min_size=25, max_size=25))
def test_ids_equal_hugging_face_on_random_mixes_of_tricky_characters(tokenizer, hugging_face, texts):
    assert tokenizer.tokenize(texts).to_list() == hugging_face_ids(hugging_face, texts)


ANY_CHARACTER = st.characters(blacklist_categories=["Cs"], blacklist_characters=["\x00"])


@settings(max_examples=10, deadline=None, derandomize=True)
@given(st.lists(st.text(ANY_CHARACTER, max_size=40), min_size=25, max_size=25))
def test_ids_equal_hugging_face_on_random_unicode(tokenizer, hugging_face, texts):
    assert tokenizer.tokenize(texts).to_list() == hugging_face_ids(hugging_face, texts)


def test_text_with_nul_characters(tokenizer, hugging_face):
    texts = ["a\x00b", "\x00 x \x00\x00"]
    assert tokenizer.tokenize(texts).to_list() == hugging_face_ids(hugging_face, texts)


# Where KerasHub's GPT2Tokenizer (0.32) splits differently from GPT-2 and Hugging Face: text -> what it does.
KERAS_HUB_DISAGREES_ON = {
    "'s at the start, 'twas, rock'n'roll, ''s, '''": "`, 'twas` and `''s`: it cuts 't / 's off a punctuation run",
    "d'S?'s": "`?'s`: it cuts 's off the punctuation run `?'`",
    "it's  'sup": "`  'sup`: the space that GPT-2 gives to ` '` stays in the whitespace run",
    "\n\nx": "a run of newlines before text is one word; GPT-2 gives the last newline a word of its own",
}


def test_keras_hub_agrees_except_where_it_is_known_to_differ(tokenizer, hugging_face, keras_hub_tokenizer):
    texts = HARD_TEXTS + [text for text in KERAS_HUB_DISAGREES_ON if text not in HARD_TEXTS]
    ours = tokenizer.tokenize(texts).to_list()
    theirs = [list(map(int, ids)) for ids in keras_hub_tokenizer(texts)]
    disagreeing = {text for text, mine, other in zip(texts, ours, theirs) if mine != other}
    assert disagreeing == set(KERAS_HUB_DISAGREES_ON)  # a KerasHub fix shows here: update the list
    assert ours == hugging_face_ids(hugging_face, texts)


# --- the tokenizer interface ----------------------------------------------------------------------------------------

INTERFACE_TEXTS = ["Hello  world<|im_start|>", "<|endoftext|>中文 😀\n\n x", "", "it's  'sup<|im_end|>"]


@pytest.fixture(scope="module")
def with_extras(files):
    return BytePairTokenizer.from_files(*files, special_tokens=EXTRA)


@pytest.mark.parametrize("check", common.INTERFACE_CHECKS, ids=lambda check: check.__name__)
def test_interface(with_extras, check, tmp_path):
    check(with_extras, INTERFACE_TEXTS, tmp_path)


def test_end_of_text_is_bos_and_eos_and_there_is_no_pad_or_unk(tokenizer):
    end_of_text = tokenizer.vocab_size - 1  # as GPT-2's 50256
    assert tokenizer.special_tokens == {END_OF_TEXT: end_of_text}
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.fill_id) == (end_of_text,) * 3
    assert (tokenizer.pad_id, tokenizer.unk_id) == (None, None)
    assert tokenizer.id_to_token(end_of_text) == END_OF_TEXT


def test_extra_special_tokens_follow_the_vocabulary_like_hugging_faces(files, with_extras, hugging_face, tokenizer):
    transformers = pytest.importorskip("transformers")
    reference = transformers.GPT2TokenizerFast.from_pretrained(files[0].rsplit("/", 1)[0])
    in_vocabulary = tokenizer.id_to_token(300)  # a token the vocabulary has keeps its id
    reference.add_special_tokens({"additional_special_tokens": [*EXTRA, in_vocabulary]})
    ours = BytePairTokenizer.from_files(*files, special_tokens=[*EXTRA, in_vocabulary])
    assert ours.vocab_size == len(reference) == tokenizer.vocab_size + 2
    assert ours.special_tokens == {END_OF_TEXT: 2999, "<|im_start|>": 3000, "<|im_end|>": 3001, in_vocabulary: 300}
    texts = ["<|im_start|>user\nhi<|im_end|>", f"x{in_vocabulary}y <|endoftext|><|im_end|>"]
    assert ours.tokenize(texts).to_list() == [reference.encode(text) for text in texts]


def test_detokenize_gives_the_text_back(tokenizer):
    ids = tokenizer.tokenize(HARD_TEXTS)
    assert tokenizer.detokenize(ids).numpy().tolist() == [text.replace(END_OF_TEXT, "").encode() for text in HARD_TEXTS]
    written = tokenizer.detokenize(ids, skip_special_tokens=False).numpy().tolist()
    assert written == [text.encode() for text in HARD_TEXTS]


def test_detokenize_of_a_cut_character_gives_u_fffd_like_hugging_face(tokenizer, hugging_face):
    ids = tokenizer.tokenize("ok 😀 中").numpy().tolist()  # 😀 is two tokens
    for end in range(len(ids) + 1):
        want = hugging_face.decode(ids[:end])
        assert tokenizer.detokenize(ids[:end]).numpy().decode("utf-8") == want
    assert tokenizer.detokenize(ids[:-3]).numpy().decode("utf-8") == "ok \ufffd"


def test_invalid_utf8_is_read_as_u_fffd(tokenizer):
    assert tokenizer.tokenize(b"a\xffb").numpy().tolist() == tokenizer.tokenize("a\ufffdb").numpy().tolist()


def test_golden_ids(tokenizer):
    ids = tokenizer.tokenize(["In the beginning", "  中文\n"]).to_list()
    assert [[tokenizer.id_to_token(token_id) for token_id in row] for row in ids] == [
        ["In", "Ġthe", "Ġbegin", "ning"], ["Ġ", "Ġ", "ä¸Ń", "æĸĩ", "Ċ"]]  # 中文 is "ä¸Ńæĸĩ" in the byte alphabet


# --- files and bad input ------------------------------------------------------------------------------------------

BYTES = [chr(code_point) for code_point in byte_to_code_point()]
TOY_VOCABULARY = {token: token_id for token_id, token in enumerate(BYTES + ["##", "ab", "abc", END_OF_TEXT])}


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_from_files_skips_the_version_header_and_blank_lines_only(tmp_path):
    vocabulary = write(tmp_path / "vocabulary.json", json.dumps(TOY_VOCABULARY))
    merges = write(tmp_path / "merges.txt", "#version: 0.2\n\n# #\na b\r\n\nab c\n")
    tokenizer = BytePairTokenizer.from_files(vocabulary, merges)
    assert tokenizer.merges == ("# #", "a b", "ab c")
    assert [tokenizer.id_to_token(i) for i in tokenizer.tokenize("abc ##").numpy()] == ["abc", "Ġ", "##"]
    without_header = write(tmp_path / "plain.txt", "# #\na b\nab c")
    assert BytePairTokenizer.from_files(vocabulary, without_header).merges == tokenizer.merges


@pytest.mark.parametrize(
    "vocabulary_text, merges_text, message",
    [
        (None, "a b\n", "vocabulary file .*missing.json does not exist"),
        ("{\"a\": 0,", "a b\n", r"vocabulary file .*vocab.json is not valid JSON: line 1 column 9"),
        ("[\"a\", \"b\"]", "a b\n", r"vocab.json holds a JSON array: expected an object"),
        ("TOY", "#version: 0.2\na b\na b c\n", r"merges file .*merges.txt line 3 is 'a b c': expected two symbols"),
        ("TOY", "#version: 0.2\nab\n", r"merges.txt line 2 is 'ab': expected two symbols"),
        ("TOY", "a b\nab z\n", r"merges.txt line 2 is 'ab z', but 'abz' is not in the vocabulary"),
        ("TOY", "a b\nx# c\n", r"line 2 is 'x# c', but 'x#' is not in the vocabulary"),
        ("TOY", "a b\n\na b\n", r"merges.txt line 3 repeats the merge 'a b' of merges file .*merges.txt line 1"),
        ("{\"a\": 1}", "", r"vocabulary gives 'a' the id 1: expected ids 0 .. 0"),
        ("{\"a\": 0}", "", r"vocabulary lacks 255 byte symbols"),
    ],
)
def test_from_files_errors_name_the_file_and_line(tmp_path, vocabulary_text, merges_text, message):
    vocabulary = str(tmp_path / "missing.json")
    if vocabulary_text is not None:
        text = json.dumps(TOY_VOCABULARY) if vocabulary_text == "TOY" else vocabulary_text
        vocabulary = write(tmp_path / "vocab.json", text)
    merges = write(tmp_path / "merges.txt", merges_text)
    with pytest.raises(ValueError, match=message):
        BytePairTokenizer.from_files(vocabulary, merges)
    if vocabulary_text is not None:
        with pytest.raises(ValueError, match="merges file .*no.txt does not exist"):
            BytePairTokenizer.from_files(write(tmp_path / "v.json", json.dumps(TOY_VOCABULARY)), tmp_path / "no.txt")


@pytest.mark.parametrize(
    "vocabulary, merges, message",
    [
        (["a"], [], "vocabulary is a list: expected a dict token -> id"),
        ({**TOY_VOCABULARY, "x": 0}, [], "vocabulary gives the id 0 to both"),
        (TOY_VOCABULARY, "a b", "merges is one string"),
        (TOY_VOCABULARY, ["a  b"], r"merges\[0\] is 'a  b': expected two symbols"),
    ],
)
def test_bad_constructor_arguments(vocabulary, merges, message):
    with pytest.raises(ValueError, match=message):
        BytePairTokenizer(vocabulary, merges)


def gpt2_sized_tokenizer():
    """50,257 tokens and 50,000 merges, like GPT-2's: every pair of byte symbols (in a fixed order) merged."""
    pairs = [(left, right) for left in BYTES for right in BYTES][:50_000]
    tokens = BYTES + [left + right for left, right in pairs] + [END_OF_TEXT]
    vocabulary = {token: token_id for token_id, token in enumerate(tokens)}
    return BytePairTokenizer(vocabulary, [f"{left} {right}" for left, right in pairs])


def test_a_gpt2_sized_tokenizer_saves_and_loads(tmp_path):
    # A vocabulary of GPT-2's size survives the `.keras` file (how fast belongs in benchmarks/, not in a timed test).
    tokenizer = gpt2_sized_tokenizer()
    assert tokenizer.vocab_size == 50_257 and tokenizer.eos_id == 50_256
    model = common.TokenizerHolder(tokenizer)
    model(tf.constant([[0]]))  # builds the embedding
    path = tmp_path / "gpt2_sized.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.tokenizer.get_vocabulary() == tokenizer.get_vocabulary()
    assert loaded.tokenizer.tokenize("Hello").numpy().tolist() == tokenizer.tokenize("Hello").numpy().tolist()


def test_without_end_of_text_there_are_no_role_tokens_and_its_spelling_is_plain_text():
    vocabulary = {token: token_id for token_id, token in enumerate(BYTES + ["ab"])}
    tokenizer = BytePairTokenizer(vocabulary, ["a b"])
    assert tokenizer.special_tokens == {} and (tokenizer.bos_id, tokenizer.eos_id, tokenizer.fill_id) == (None,) * 3
    assert len(tokenizer.tokenize("<|endoftext|>ab").numpy()) == len("<|endoftext|>") + 1


def test_zero_merges_keep_every_byte_a_token(tmp_path):
    tokenizer = BytePairTokenizer({token: token_id for token_id, token in enumerate(BYTES)}, [])  # id = byte value
    texts = ["In the beginning, God's words", "中文的句子。", "emoji 😀 👨‍👩‍👧‍👦", ""]
    ids = tokenizer.tokenize(texts)
    assert ids.to_list() == [list(text.encode()) for text in texts]
    assert tokenizer.detokenize(ids).numpy().tolist() == [text.encode() for text in texts]
    assert tokenizer.get_config()["merges"] == []
    common.assert_rebuilt_from_config(tokenizer, texts, tmp_path)
    common.assert_keras_file_round_trip(tokenizer, texts, tmp_path)
