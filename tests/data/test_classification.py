"""classification_dataset: padded ids, stable label numbering, CSV and JSONL input, label errors."""

import json

import numpy as np
import pytest

from tfllm.data.classification import classification_dataset
from tfllm.tokenizers import ByteTokenizer

TOKENIZER = ByteTokenizer()
EXAMPLES = [("a fine day", "good"), ("awful", "bad"), ("so-so", "meh"), ("lovely", "good")]


def _all(dataset):
    xs, labels = zip(*[(np.asarray(x), np.asarray(label)) for x, label in dataset])
    return np.concatenate(xs), np.concatenate(labels)


def test_texts_are_truncated_or_padded_and_labels_numbered_in_sorted_order():
    dataset, names = classification_dataset(EXAMPLES, TOKENIZER, sequence_length=6, batch_size=3, shuffle=False)
    assert names == ["bad", "good", "meh"]
    x, labels = _all(dataset)
    assert x.shape == (4, 6) and x.dtype == np.int32
    assert labels.tolist() == [1, 0, 2, 1]
    assert TOKENIZER.detokenize(x).numpy().tolist() == [b"a fine", b"awful", b"so-so", b"lovely"]
    assert x[1].tolist()[-1] == TOKENIZER.pad_id


def test_given_label_names_fix_the_numbering_and_reject_strangers():
    dataset, names = classification_dataset(EXAMPLES, TOKENIZER, 4, 4, label_names=["meh", "good", "bad"], shuffle=False)
    assert _all(dataset)[1].tolist() == [1, 2, 0, 1]
    with pytest.raises(ValueError, match=r"labels \['meh'\] are not in label_names=\['bad', 'good'\]"):
        classification_dataset(EXAMPLES, TOKENIZER, 4, 4, label_names=["bad", "good"])
    with pytest.raises(ValueError, match="fewer than two classes"):
        classification_dataset([("x", "only")], TOKENIZER, 4, 4)


def test_csv_and_jsonl_give_the_same_data(tmp_path):
    csv_path = tmp_path / "labelled.csv"
    csv_path.write_text("text,label\n" + "".join(f'"{text}",{label}\n' for text, label in EXAMPLES))
    jsonl_path = tmp_path / "labelled.jsonl"
    jsonl_path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in EXAMPLES))
    results = [classification_dataset(str(p), TOKENIZER, 8, 2, shuffle=False) for p in (csv_path, jsonl_path)]
    (csv_data, csv_names), (jsonl_data, jsonl_names) = results
    assert csv_names == jsonl_names == ["bad", "good", "meh"]
    for got, want in zip(_all(csv_data), _all(jsonl_data)):
        np.testing.assert_array_equal(got, want)


def test_a_csv_row_without_a_label_is_named(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("text,label\nfine,good\nno label here\n")
    with pytest.raises(ValueError, match=r"broken.csv, line 3: the field 'label' is missing"):
        classification_dataset(str(path), TOKENIZER, 8, 2)


def test_a_list_of_texts_is_not_read_as_labelled_texts():
    # It was: "good" became the text "g" with the label "o".
    with pytest.raises(ValueError, match=r"the list of labelled texts, record 0: 'good' is not a record: expected a "
                                         r"dict with the keys text, label"):
        classification_dataset(["good", "bad"], TOKENIZER, 4, 2)


def test_integer_labels_are_numbered_in_numeric_order_from_a_list_or_a_csv(tmp_path):
    # They were numbered in text order: label 10 got class 2, label 2 class 3.
    examples = [(f"text {label}", label) for label in (10, 2, 0, 1, 2)]
    dataset, names = classification_dataset(examples, TOKENIZER, 4, 5, shuffle=False)
    assert names == ["0", "1", "2", "10"]
    assert next(iter(dataset))[1].numpy().tolist() == [3, 2, 0, 1, 2]
    path = tmp_path / "labelled.csv"
    path.write_text("text,label\n" + "".join(f"text {label},{label}\n" for label in (10, 2, 0, 1, 2)))
    assert classification_dataset(str(path), TOKENIZER, 4, 5, shuffle=False)[1] == names
    assert classification_dataset([("a", "10"), ("b", "x")], TOKENIZER, 4, 2)[1] == ["10", "x"]  # text order


def test_a_label_that_is_no_class_name_is_refused():
    # 1, "1", 1.0 and true were three classes, and a list was taken as the class "['x']".
    for label, kind in ((1.0, "float"), (True, "bool"), (["x"], "list"), ({"a": 1}, "dict")):
        with pytest.raises(ValueError, match=rf"record 1: the label .* is a {kind}: expected a class's name, a string "
                                             r"or an integer\.$"):
            classification_dataset([("a", 1), ("b", label)], TOKENIZER, 4, 2)
    with pytest.raises(ValueError, match=r"record 1: the label is empty: expected a class's name\.$"):
        classification_dataset([("good", "pos"), ("bad", " ")], TOKENIZER, 4, 2)  # a class '' (an empty CSV cell)


def test_a_text_that_is_not_a_string_or_a_label_named_twice_is_refused():
    with pytest.raises(ValueError, match=r"record 1: the field 'text' is 5, not text: expected a string"):
        classification_dataset([("a", "x"), (5, "y")], TOKENIZER, 4, 2)
    with pytest.raises(ValueError, match=r"label_names=\['a', 'a', 'b'\] names \['a'\] more than once"):
        classification_dataset([("x", "a"), ("y", "b")], TOKENIZER, 4, 2, label_names=["a", "a", "b"])
