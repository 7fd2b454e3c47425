"""The HSK graded sentences: Chinese sentences with an English translation and a gloss per word, read offline.

The text comes from the PyPI package `hsk-sentences-audio` (code MIT; the packaged dataset CC-BY-SA-4.0, by the
hsk-sentences-audio contributors, https://github.com/no7z/hsk-sentences-audio), file `data/sentences.json`. What it
holds, found by reading the data:

- 4,354 records in HSK 3.0 levels 1-6 (281, 538, 727, 801, 965 and 1,042), ids `"hsk1-0001"` .. `"hsk6-1042"`.
  `chinese` is the sentence in simplified characters, `translation["en"]` its English, `tokens` its words in order,
  each with `pinyin` and `gloss_en` (a CC-CEDICT entry). No text has surrounding whitespace; none is empty.
- 80 translations are placeholders, not English: 65 read `"placeholder"` (HSK 5 and 6) and 15 read
  `"placeholder-p1"` .. `"placeholder-p14"` or `"placeholder-q1"` (HSK 4). They are dropped (`hsk_placeholders()`),
  which leaves 4,274 sentences.
- 40 English texts each translate two or three different Chinese sentences (81 sentences, e.g. "This road is
  closed."); 5 Chinese sentences occur twice, 2 of them with the same English as well. All are kept, with their ids.
- 5,340 distinct words, each with one gloss wherever it occurs. The gloss is often not the sense the sentence
  uses: 125 words have an empty gloss, and many have the gloss of another dictionary entry: a surname ("坐":
  "surname Zuo"), a place ("成功": "Chenggong or Chengkung town in Taitung County ..."), a brand ("全家":
  "FamilyMart"), a cross-reference ("血": "see 血[xue4]"). `word_gloss` keeps a short English gloss only where one
  can be read off (see there); some wrong entries still pass ("比": "Belgium"), so glosses are noisy.
"""

import functools
import json
import re
from typing import NamedTuple

from tfllm.data.packaged import packaged_file

_PLACEHOLDER = re.compile(r"placeholder(?:-[a-z]\d+)?")

# First senses that say what the word is called or where to look, rather than what it means.
_NOT_A_MEANING = re.compile(
    r"(?:surname|see|used (?:in|for)|abbr\.|short (?:name|for)|erhua form|(?:old )?variant of|also (?:written|pr\.)"
    r"|Taiwan pr\.|classifier)(?:\W|$)",
    re.IGNORECASE,
)
# CJK ideographs, their compatibility forms and extensions, and the pinyin brackets of CC-CEDICT ("[ni3]").
_CJK_OR_PINYIN = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\U00020000-\U0003ffff\[\]]")
_PARENTHESES = re.compile(r"\([^()]*\)")


class HSKSentence(NamedTuple):
    """One HSK sentence: its `ref` (`"hsk1-0141"`), `en` and `zh` texts and `words` (`(word, gloss_en)` pairs).

    Example:

    >>> sentence = next(s for s in hsk_sentences() if s.ref == "hsk1-0141")
    >>> sentence.zh, sentence.en
    ('今天天气很好。', 'The weather is very nice today.')
    >>> sentence.words[1]
    ('天气', 'weather')
    """

    ref: str
    en: str
    zh: str
    words: tuple


def hsk_sentences():
    """The HSK sentences with an English translation, in the order of their ids, as a tuple of `HSKSentence`.

    The 80 records whose translation is a placeholder are left out (`hsk_placeholders()`). The data is read once per
    process and kept in memory.

    Raises:
        ModuleNotFoundError: the package `hsk-sentences-audio` is not installed (the message says how to install it).

    >>> sentences = hsk_sentences()
    >>> len(sentences), sentences[0].ref, sentences[0].zh, sentences[0].en
    (4274, 'hsk1-0001', '老师，您好！', 'Hello, teacher!')
    """
    return _read_sentences(_dataset_file())[0]


def hsk_placeholders():
    """The records left out of `hsk_sentences()`: their translation is a placeholder such as "placeholder-p1".

    >>> dropped = hsk_placeholders()
    >>> len(dropped), dropped[0].ref, dropped[0].en
    (80, 'hsk4-0519', 'placeholder-p1')
    """
    return _read_sentences(_dataset_file())[1]


def word_gloss(gloss_en):
    """A short English gloss read off a CC-CEDICT definition, or None when it gives no meaning to translate.

    The rule: take the first sense (the text before the first `;` outside parentheses), drop the remarks in
    parentheses and fold spaces; there is no gloss when that is empty (grammar particles such as 了, "(completed
    action marker)"), when it names instead of meaning (a surname, "see ...", "used in ...", "abbr. for ...",
    "variant of ...", "erhua form of ...", a classifier) or when it still holds Chinese characters or pinyin.

    >>> word_gloss("very; quite; (also, often used before an adjective without intensifying its meaning)")
    'very'
    >>> word_gloss("(third-person singular) (since the early 20th century, usu. male) he; him; his")
    'he'
    >>> word_gloss("you (courteous, as opposed to informal 你[ni3])")
    'you'
    >>> [word_gloss(g) for g in ("surname Zuo", "see 血[xue4]", "(completed action marker); (modal particle)", "")]
    [None, None, None, None]
    """
    sense = _first_sense(gloss_en)
    while _PARENTHESES.search(sense):
        sense = _PARENTHESES.sub(" ", sense)
    sense = " ".join(sense.split()).strip(" ,:")
    if not sense or _NOT_A_MEANING.match(sense) or _CJK_OR_PINYIN.search(sense) or "(" in sense or ")" in sense:
        return None
    return sense


def _first_sense(gloss):
    depth = 0
    for index, character in enumerate(gloss):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if character == ";" and depth <= 0:
            return gloss[:index]
    return gloss


def _dataset_file():
    return packaged_file("hsk_sentences_audio", "hsk-sentences-audio", "data/sentences.json",
                         "the parallel corpus 'hsk'")


@functools.lru_cache(maxsize=None)
def _read_sentences(path):
    kept, dropped = [], []
    for record in json.loads(path.read_text(encoding="utf-8")):
        words = tuple((token["word"], token["gloss_en"]) for token in record["tokens"])
        sentence = HSKSentence(record["id"], record["translation"]["en"].strip(), record["chinese"].strip(), words)
        (dropped if _PLACEHOLDER.fullmatch(sentence.en) else kept).append(sentence)
    return tuple(sorted(kept)), tuple(sorted(dropped))
