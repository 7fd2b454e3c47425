"""GPT-2-style byte-level BPE files (`vocab.json`, `merges.txt`) trained here, offline, with Hugging Face's `tokenizers`.

The real GPT-2 files cannot be downloaded on a machine without network, so the tests train a byte-level BPE the same
way GPT-2's was made (the same byte-to-unicode alphabet and pre-tokenization), on English and Chinese text of the
embedded corpora, with `<|endoftext|>` as its last id like GPT-2's 50256.
"""

import functools
import json
import os

END_OF_TEXT = "<|endoftext|>"


def training_texts():
    """English (King James Bible) and Chinese (HSK sentences) lines, with digits, punctuation and odd spacing."""
    from tfllm.data.corpus import load_texts
    from tfllm.data.hsk import hsk_sentences

    english = [text.decode("utf-8") for text in load_texts("kjv", split="train")[:300]]
    sentences = hsk_sentences()[:1500]
    chinese = [sentence.zh for sentence in sentences] + [sentence.en for sentence in sentences]
    extra = ["I'm sure they'll say it's 2024's best, isn't it?  Yes!!!", "tabs\tand\nnew lines\n\n  indented",
             "emoji 😀 and café naïve résumé", "x = f(a, b) + 3.14159 * 1000000"]
    return english + chinese + extra * 20


def write_byte_level_bpe(directory, vocab_size=3000):
    """Trains a byte-level BPE of `vocab_size` ids (its 256 byte symbols, the merges, then `<|endoftext|>` last) and
    writes `vocab.json` and `merges.txt` into `directory` in GPT-2's formats. Returns the two paths."""
    os.makedirs(directory, exist_ok=True)
    vocabulary, merges = _trained_bpe(vocab_size)
    vocab_path = os.path.join(directory, "vocab.json")
    merges_path = os.path.join(directory, "merges.txt")
    with open(vocab_path, "w", encoding="utf-8") as file:
        json.dump(vocabulary, file, ensure_ascii=False)
    with open(merges_path, "w", encoding="utf-8") as file:
        file.write("#version: 0.2\n" + "".join(f"{merge}\n" for merge in merges))
    return vocab_path, merges_path


@functools.lru_cache(maxsize=None)
def _trained_bpe(vocab_size):
    from tokenizers import ByteLevelBPETokenizer

    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(training_texts(), vocab_size=vocab_size - 1, min_frequency=2, show_progress=False)
    vocabulary = tokenizer.get_vocab()  # token -> id, ids 0 .. n-1
    vocabulary[END_OF_TEXT] = len(vocabulary)
    model = json.loads(tokenizer.to_str())["model"]
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in model["merges"]]
    ordered = dict(sorted(vocabulary.items(), key=lambda item: item[1]))
    return ordered, tuple(merges)
