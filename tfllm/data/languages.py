"""Which of the two languages, English or Chinese, a text is written in: one rule for labelling dialogs and for
judging replies (`tfllm.evaluation.reply_language`), so a reference reply is never in the wrong language by its own
corpus's label.

"Mostly" counts units of meaning: each CJK ideograph (Chinese characters, Simplified or Traditional) is one, and so
is each word of Latin letters (a run of them), so a Chinese sentence naming "Python" stays Chinese and an English
question about "你好" stays English. Other characters (digits, punctuation, other scripts) do not count.
"""

import unicodedata


def written_language(text):
    """`"zh"` if `text` is mostly Chinese, `"en"` if mostly in Latin letters, None if it has neither (or an even mix).

    >>> written_language("Hello there!"), written_language("你好！"), written_language("我常使用 Python, Java 和 C++.")
    ('en', 'zh', 'zh')
    >>> written_language("What does 你好 mean?"), written_language("OK 好"), written_language("42!")
    ('en', None, None)
    """
    ideographs = words = 0
    in_word = False
    for character in text:
        kind = _script(character)
        ideographs += kind == "zh"
        words += kind == "en" and not in_word
        in_word = kind == "en"
    if ideographs == words:
        return None
    return "zh" if ideographs > words else "en"


def detect_language(text):
    """The language of a dialog whose file does not say: `written_language(text)`, and where that is undecided, `"zh"`
    if `text` holds a CJK ideograph, else `"en"`.

    >>> detect_language("今天天气很好。"), detect_language("The weather is fine."), detect_language("我用 Python")
    ('zh', 'en', 'zh')
    >>> detect_language("What does 你好 mean?"), detect_language("OK 好"), detect_language("42")
    ('en', 'zh', 'en')
    """
    language = written_language(text)
    if language is None:
        language = "zh" if any(_script(character) == "zh" for character in text) else "en"
    return language


def _script(character):
    if not character.isalpha():
        return None
    name = unicodedata.name(character, "")
    if name.startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH")):
        return "zh"
    return "en" if name.startswith("LATIN") else None
