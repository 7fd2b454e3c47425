"""English-Chinese sentence pairs for machine translation: the HSK sentences, or the user's own parallel files.

Every source is read completely when `load_parallel_corpus` is called, so a missing file or a broken line is
reported (with the file and the line) before any training starts.

The split keeps test and validation sentences out of training on both sides. Pairs that share their English text
or their Chinese text, directly or through a chain of such pairs, form one group, and a whole group goes to one
split: that of the group's smallest `zh + "\\t" + en` (by code point; `tfllm.data.splits.linked_splits`). So no
English and no Chinese text of the validation or test split appears in training, and a pair's split depends only on
the texts of its group, never on the order of the lines or on the other groups.
"""

import hashlib
import os

from tfllm.checks import require_choice, require_positive_int
from tfllm.data.hsk import hsk_sentences, word_gloss
from tfllm.data.files import is_unicode_text, jsonl_objects, names_a_path, read_utf8_text, text_lines
from tfllm.data.splits import check_split, linked_splits

PARALLEL_CORPUS_NAMES = ("hsk",)
LANGUAGES = ("en", "zh")
TABLE_SUFFIXES = (".tsv", ".txt")
JSONL_SUFFIX = ".jsonl"
GLOSS_PREFIX = "gloss:"  # a word gloss's `ref` is "gloss:WORD" (`include_glosses`)


def load_parallel_corpus(name_or_path="hsk", split=None, include_glosses=False, fields=LANGUAGES, train_pairs=None):
    """English-Chinese pairs as a list of `{"en": ..., "zh": ..., "ref": ...}` dicts, in the order of the source.

    Texts are stripped of surrounding whitespace and otherwise kept as they are (no change to the Chinese script,
    punctuation or spacing).

    Args:
        name_or_path: A corpus name or the user's parallel data.
            - `"hsk"` (the default): the 4,274 HSK graded sentences with a real translation (see `tfllm.data.hsk`);
              `ref` is the sentence id, such as `"hsk1-0141"`.
            - The path of a `.tsv` or `.txt` file of `english<TAB>chinese` lines (the Tatoeba/Anki "cmn-eng" format;
              further columns, such as the attribution, are ignored).
            - The path of a `.jsonl` file: one JSON object a line, with the English and Chinese under `fields`.
            - A pair `(english_path, chinese_path)` of line-aligned text files: line n of one translates line n of
              the other.
            For a file, `ref` is `"FILE:LINE"` (the English file's, for a pair). Blank lines are skipped.
        split: None for everything, or `"train"`, `"validation"` or `"test"`: about 90/5/5 by a stable hash of each
            group of pairs that share a text (see the module docstring).
        include_glosses: `"hsk"` only. Adds a pair `{"en": gloss, "zh": word, "ref": "gloss:WORD"}` for each word of
            the training sentences that has a gloss (`tfllm.data.hsk.word_gloss`: its first dictionary sense),
            once per word, after the sentences, leaving out any whose text is a validation or test sentence. Only
            for `split=None` and `"train"`: validation and test measure sentence translation and get none.
        fields: The English and the Chinese field of a `.jsonl` file, such as `("english", "chinese")`.
        train_pairs: None for the whole training split, or a number of its pairs to keep (for a learning curve):
            those whose `"zh\ten"` text has the smallest SHA-256, a sample that is the same on every machine and
            holds every smaller one. The glosses then come from the words of these pairs only. Validation and test
            are unchanged.

    Returns:
        A non-empty list of dicts with `str` values.

    Raises:
        ValueError: an unknown corpus name (the message lists the known ones) or split, glosses or `fields` asked of
            a source without them, an unsupported suffix, an empty file or split, a line with one side or an empty
            side, a JSONL line that is not JSON or lacks a field, line-aligned files of different lengths.
        FileNotFoundError: a path that does not exist.
        ModuleNotFoundError: `"hsk"` without the package `hsk-sentences-audio`.

    >>> pairs = load_parallel_corpus("hsk")
    >>> len(pairs), pairs[140]
    (4274, {'en': 'The weather is very nice today.', 'zh': '今天天气很好。', 'ref': 'hsk1-0141'})
    >>> [len(load_parallel_corpus(split=split)) for split in ("train", "validation", "test")]
    [3853, 222, 199]
    >>> is_gloss(load_parallel_corpus(split="train", include_glosses=True)[-1])
    True
    >>> len(load_parallel_corpus(split="train", train_pairs=1000)), len(load_parallel_corpus(train_pairs=1000))
    (1000, 1421)
    """
    check_split(split)
    fields = _check_fields(fields, name_or_path)
    if _is_name(name_or_path):
        sentences = hsk_sentences()
        pairs = [{"en": s.en, "zh": s.zh, "ref": s.ref} for s in sentences]
        words = {s.ref: s.words for s in sentences}
    elif include_glosses:
        raise ValueError(
            f"include_glosses=True needs the corpus 'hsk' (its word glosses); {name_or_path!r} has no glosses"
        )
    else:
        pairs, words = _read_pairs(name_or_path, fields), {}
    if train_pairs is not None:
        train_pairs = require_positive_int("train_pairs", train_pairs)
    splits = _group_splits(pairs)
    if train_pairs is not None:
        splits = _sample_training(pairs, splits, train_pairs)
    chosen = [pair for pair, pair_split in zip(pairs, splits) if pair_split and split in (None, pair_split)]
    if include_glosses and split in (None, "train"):
        training = [pair for pair, pair_split in zip(pairs, splits) if pair_split == "train"]
        held_out = [pair for pair, pair_split in zip(pairs, splits) if pair_split in ("validation", "test")]
        chosen += _gloss_pairs(training, words, held_out)
    if not chosen:
        raise ValueError(
            f"the {split!r} split of the parallel corpus {name_or_path!r} is empty; it has too few groups of pairs "
            "for a 90/5/5 split by hash: use split=None, or more pairs"
        )
    return chosen


def parallel_texts(pairs, language):
    """One side of `pairs` (from `load_parallel_corpus`): the list of their `"en"` or `"zh"` texts, in order.

    For training a tokenizer or pretraining on the text of one language; repeated texts are kept.

    >>> pairs = [{"en": "Hello!", "zh": "你好！", "ref": "a:1"}, {"en": "Thanks.", "zh": "谢谢。", "ref": "a:2"}]
    >>> parallel_texts(pairs, "zh")
    ['你好！', '谢谢。']
    """
    require_choice("language", language, LANGUAGES)
    return [pair[language] for pair in pairs]


def is_gloss(pair):
    """Whether `pair` (from `load_parallel_corpus`) is a word gloss added by `include_glosses`, not a sentence pair.

    >>> is_gloss({"en": "weather", "zh": "天气", "ref": "gloss:天气"})
    True
    >>> is_gloss({"en": "Hello!", "zh": "你好！", "ref": "pairs.tsv:1"})
    False
    """
    return pair["ref"].startswith(GLOSS_PREFIX)


def _is_name(name_or_path):
    if isinstance(name_or_path, str) and name_or_path in PARALLEL_CORPUS_NAMES:
        return True
    if isinstance(name_or_path, (tuple, list)) or names_a_path(name_or_path):  # a pair of files, or one
        return False
    raise ValueError(
        f"unknown parallel corpus {name_or_path!r}: expected one of {', '.join(map(repr, PARALLEL_CORPUS_NAMES))}, "
        f"the path of a {'/'.join((*TABLE_SUFFIXES, JSONL_SUFFIX))} file, or a pair (english_path, chinese_path)"
    )


def _check_fields(fields, name_or_path):
    fields = tuple(fields) if isinstance(fields, (tuple, list)) else fields
    if not (isinstance(fields, tuple) and len(fields) == 2 and all(isinstance(f, str) and f for f in fields)):
        raise ValueError(f"fields={fields!r}: expected two field names (english, chinese), such as ('en', 'zh')")
    if fields[0] == fields[1]:
        raise ValueError(f"fields={fields!r}: the English and the Chinese field must differ")
    is_jsonl = isinstance(name_or_path, (str, os.PathLike)) and os.fspath(name_or_path).lower().endswith(JSONL_SUFFIX)
    if fields != LANGUAGES and not is_jsonl:
        raise ValueError(f"fields={fields!r} names the fields of a {JSONL_SUFFIX} file; {name_or_path!r} is not one")
    return fields


def _group_splits(pairs):
    """The split of each pair: pairs sharing a text, transitively, are one group hashed by its smallest pair."""
    return linked_splits([f"{pair['zh']}\t{pair['en']}" for pair in pairs],
                         [(("en", pair["en"]), ("zh", pair["zh"])) for pair in pairs])


def _sample_training(pairs, splits, count):
    """`splits` with the training pairs beyond the `count` of smallest hash marked None (in no split)."""
    training = [index for index, pair_split in enumerate(splits) if pair_split == "train"]
    if count > len(training):
        raise ValueError(f"train_pairs={count} is more than the {len(training)} pairs of the training split")
    digest = {index: hashlib.sha256(f"{pairs[index]['zh']}\t{pairs[index]['en']}".encode()).digest()
              for index in training}
    kept = set(sorted(training, key=digest.__getitem__)[:count])
    return [pair_split if pair_split != "train" or index in kept else None for index, pair_split in enumerate(splits)]


def _gloss_pairs(training, words, held_out):
    held_out_texts = {pair[side] for pair in held_out for side in LANGUAGES}
    glosses = {}
    for pair in training:
        for word, gloss_en in words[pair["ref"]]:
            gloss = word_gloss(gloss_en)
            if gloss and word not in glosses and word not in held_out_texts and gloss not in held_out_texts:
                glosses[word] = gloss
    return [{"en": gloss, "zh": word, "ref": f"{GLOSS_PREFIX}{word}"} for word, gloss in glosses.items()]


def _read_pairs(source, fields):
    if isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise ValueError(f"a pair of line-aligned files is (english_path, chinese_path); got {len(source)} paths")
        english, chinese = (_existing(path) for path in source)
        return _aligned_pairs(english, chinese)
    path = _existing(source)
    suffix = os.path.splitext(path)[1].lower()
    if suffix in TABLE_SUFFIXES:
        return _table_pairs(path)
    if suffix == JSONL_SUFFIX:
        return _jsonl_pairs(path, fields)
    raise ValueError(
        f"{path!r}: unsupported suffix {suffix or '(none)'!r}; a parallel corpus file is a .tsv/.txt file of "
        "english<TAB>chinese lines or a .jsonl file"
    )


def _existing(path):
    text = os.path.expanduser(os.fspath(path))
    if not os.path.exists(text):
        raise FileNotFoundError(f"the parallel corpus file {text!r} does not exist")
    if os.path.isdir(text):
        raise ValueError(f"{text!r} is a folder; a parallel corpus is a file, or a pair of line-aligned files")
    return text


def _lines(path):
    """The lines of a UTF-8 file (without line breaks or a byte order mark), or a ValueError naming a bad byte."""
    lines = text_lines(read_utf8_text(path))
    if not any(line.strip() for line in lines):
        raise ValueError(f"the parallel corpus file {path!r} is empty: it holds no pairs")
    return lines


def _pair(path, number, en, zh):
    en, zh = en.strip(), zh.strip()
    for name, text in (("English", en), ("Chinese", zh)):
        if not text:
            raise ValueError(f"{path}, line {number}: the {name} side is empty")
        if not is_unicode_text(text):
            raise ValueError(f"{path}, line {number}: the {name} side holds a lone surrogate (half of a UTF-16 pair, "
                             "as a JSON escape such as \\ud800 writes it), which is not text")
    return {"en": en, "zh": zh, "ref": f"{path}:{number}"}


def _table_pairs(path):
    pairs = []
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 2:
            raise ValueError(f"{path}, line {number}: one column; expected english<TAB>chinese")
        pairs.append(_pair(path, number, columns[0], columns[1]))
    return pairs


def _jsonl_pairs(path, fields):
    pairs = []
    for number, record in jsonl_objects(path, "\n".join(_lines(path))):
        for field in fields:
            if field not in record:
                raise ValueError(f"{path}, line {number}: no {field!r} field; expected an object with {list(fields)}")
            if not isinstance(record[field], str):
                raise ValueError(f"{path}, line {number}: {field!r} is {type(record[field]).__name__}, not a string")
        pairs.append(_pair(path, number, record[fields[0]], record[fields[1]]))
    return pairs


def _aligned_pairs(english, chinese):
    english_lines, chinese_lines = _lines(english), _lines(chinese)
    if len(english_lines) != len(chinese_lines):
        raise ValueError(
            f"line-aligned files of different lengths: {english!r} has {len(english_lines)} lines, {chinese!r} has "
            f"{len(chinese_lines)}"
        )
    pairs = []
    for number, (en, zh) in enumerate(zip(english_lines, chinese_lines), start=1):
        if not en.strip() and not zh.strip():
            continue
        for path, text, other in ((english, en, chinese), (chinese, zh, english)):
            if not text.strip():
                raise ValueError(f"{path}, line {number}: empty, but line {number} of {other} is not")
        pairs.append(_pair(english, number, en, zh))
    return pairs
