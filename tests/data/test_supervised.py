"""sft_dataset: the loss falls on the completion only; truncation and padding; JSONL input and its errors."""

import json

import numpy as np
import pytest

from tfllm.data.supervised import sft_dataset
from tfllm.tokenizers import ByteTokenizer

TOKENIZER = ByteTokenizer()


def _ids(text):
    return [byte + 3 for byte in text.encode()]


def _only_batch(dataset):
    x, y, weight = next(iter(dataset))
    return np.asarray(x), np.asarray(y), np.asarray(weight)


def test_weights_cover_the_completion_and_eos_only():
    pairs = [("Q: hi\nA: ", "hello"), ("Q: 1+1?\nA: ", "2")]
    x, y, weight = _only_batch(sft_dataset(pairs, TOKENIZER, sequence_length=20, batch_size=2, shuffle=False))
    for row, (prompt, completion) in enumerate(pairs):
        sequence = [1] + _ids(prompt) + _ids(completion) + [2]
        length = len(sequence) - 1
        assert x[row, :length].tolist() == sequence[:-1]
        assert y[row, :length].tolist() == sequence[1:]
        assert (x[row, length:] == 0).all() and (y[row, length:] == 0).all()  # padding
        expected_weight = [0.0] * (len(_ids(prompt))) + [1.0] * (len(_ids(completion)) + 1)
        assert weight[row, :length].tolist() == expected_weight
        assert (weight[row, length:] == 0).all()
        # The weighted targets are exactly the completion and eos.
        assert y[row][weight[row] == 1].tolist() == _ids(completion) + [2]


def test_long_pairs_lose_the_beginning_of_the_prompt():
    prompt, completion = "a long question about many things: ", "yes"
    x, y, weight = _only_batch(sft_dataset([(prompt, completion)], TOKENIZER, sequence_length=8, batch_size=1))
    full = [1] + _ids(prompt) + _ids(completion) + [2]
    assert x[0].tolist() == full[-9:-1]
    assert y[0].tolist() == full[-8:]
    assert weight[0].tolist() == [0.0] * 4 + [1.0] * 4


def test_dicts_and_jsonl_give_the_same_batches_as_tuples(tmp_path):
    pairs = [("x = ", "1"), ("y = ", "22")]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": p, "completion": c}) for p, c in pairs) + "\n")
    sources = [pairs, [{"prompt": p, "completion": c} for p, c in pairs], str(path)]
    batches = [_only_batch(sft_dataset(source, TOKENIZER, 6, 2, shuffle=False)) for source in sources]
    for batch in batches[1:]:
        for got, want in zip(batch, batches[0]):
            np.testing.assert_array_equal(got, want)


def test_files_written_on_windows_give_the_same_batches(tmp_path):
    # A byte order mark and CRLF line ends; the mark once became part of a CSV's first field name ("\ufeffprompt").
    pairs = [("x = ", "1"), ("y = ", "22")]
    jsonl, csv = tmp_path / "pairs.jsonl", tmp_path / "pairs.csv"
    jsonl.write_bytes(("\ufeff" + "".join(json.dumps({"prompt": p, "completion": c}) + "\r\n" for p, c in pairs)).encode())
    csv.write_bytes(("\ufeffprompt,completion\r\n" + "".join(f"{p},{c}\r\n" for p, c in pairs)).encode())
    expected = _only_batch(sft_dataset(pairs, TOKENIZER, 6, 2, shuffle=False))
    for path in (jsonl, csv):
        for got, want in zip(_only_batch(sft_dataset(str(path), TOKENIZER, 6, 2, shuffle=False)), expected):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n', r"pairs.jsonl, line 2: the field 'completion' is missing"),
        ('{"prompt": "a", "completion": "b"}\nnot json\n', r"pairs.jsonl, line 2: not valid JSON"),
        ("", r"pairs.jsonl holds no prompt/completion pairs"),
        (b'{"prompt": "a", "completion": "b"}\n{"prompt": "\xff"}\n', r"pairs.jsonl, line 2: not valid UTF-8 \(byte 0xff\)"),
    ],
)
def test_bad_jsonl_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=message):
        sft_dataset(str(path), TOKENIZER, 8, 2)


def test_a_csv_error_names_the_line_of_the_file_whatever_its_suffix_case(tmp_path):
    # The line was counted in rows: blank lines and a cell of two lines put it 2 lines early; "PAIRS.CSV" was
    # read as JSON lines.
    path = tmp_path / "PAIRS.CSV"
    path.write_text('prompt,completion\n\na,b\n"two\nlines",c\n\nd\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"PAIRS\.CSV, line 7: the field 'completion' is missing"):
        sft_dataset(str(path), TOKENIZER, 8, 2)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl does not exist"):
        sft_dataset(str(tmp_path / "nowhere.jsonl"), TOKENIZER, 8, 2)


@pytest.mark.parametrize(
    "records, message",
    [
        # A list of texts, once read as pairs of characters ("hello": prompt "h", completion "e", the rest dropped).
        (["hello", "world"], r"the list of prompt/completion pairs, record 0: 'hello' is not a record: expected a dict "
                             r"with the keys prompt, completion, or a tuple of them in that order"),
        ([("a", "b"), b"cd"], r"record 1: b'cd' is not a record"),
        ([("a", "b"), 7], r"record 1: 7 is not a record"),
        ([("q", "a", "extra")], r"record 0: 3 values for 2 fields"),
        ([("q",)], r"the list, record 0: the field 'completion' is missing"),
        # One dict, once read as its keys: prompt "p" and completion "r" from "prompt".
        ({"prompt": "2+2=", "completion": "4"}, r"the prompt/completion pairs are one dict: expected a list of "
                                                r"records \(\[record\] for one\)"),
        # A number, once "Can't convert Python sequence with mixed types to Tensor".
        ([("2+2=", 4)], r"the list, record 0: the field 'completion' is 4, not text: expected a string"),
    ],
)
def test_records_that_are_not_pairs_are_named(records, message):
    with pytest.raises(ValueError, match=message):
        sft_dataset(records, TOKENIZER, 8, 2)
