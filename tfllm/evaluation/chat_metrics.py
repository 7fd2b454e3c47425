"""How good is a chat reply? Its language, whether it ended by itself, chrF against the reference, exact matches.

A small chat model is judged against its reference replies (the training corpus's answers to held-out questions)
per language and over all: does it answer in the question's language (`language_right`), does it end its turn with
the template's stop token rather than running out of tokens (`well_formed`), how close it comes to the reference
(sacrebleu's corpus chrF2: character n-grams, so English and Chinese are read alike, with the same settings), and how
often it gives nothing. `exact_match` with `accepted_replies` asks the FAQ-bot question: does it give one of the
answers it was taught for that very question?
"""

from collections.abc import Iterable

from sacrebleu.metrics import CHRF

from tfllm.checks import require_texts
from tfllm.data import ChatTemplate
from tfllm.data.languages import written_language
from tfllm.data.parallel import LANGUAGES
from tfllm.evaluation.chat_exchanges import conversation_list, training_exchanges


def reply_language(text):
    """The language a text is written in: "zh" if mostly Chinese, "en" if mostly in Latin letters, None if it has
    neither (or an even mix): `tfllm.data.languages.written_language`, the rule that labels the dialogs of a file.

    "Mostly" counts units of meaning: each CJK ideograph is one, and so is each word of Latin letters (a run of
    them), so a Chinese sentence naming "Python" stays Chinese. Other characters (digits, punctuation, other
    scripts) do not count.

    >>> reply_language("Hello there!"), reply_language("你好！"), reply_language("我常使用 Python, Java 和 C++.")
    ('en', 'zh', 'zh')
    >>> reply_language("I love 中文 very much"), reply_language("OK 好"), reply_language("42!"), reply_language("")
    ('en', None, None, None)
    """
    if not isinstance(text, str):
        raise ValueError(f"text={text!r:.40} is invalid: expected a str")
    return written_language(text)


def chat_scores(replies, references, languages, finished=None):
    """Scores of chat replies per question language ("en", "zh", as present) and over "all" of them.

    Each group's dict holds:

    - `count`: its replies;
    - `language_right`: the share whose `reply_language` is the question's language (an empty reply is wrong);
    - `well_formed`: the share of its non-empty replies that finished with a stop token (None without `finished`,
      or without a non-empty reply);
    - `empty`: the share of empty (or whitespace-only) replies;
    - `chrf`, `chrf_signature`: sacrebleu's corpus chrF2 of the replies against the references (0-100), and how it
      was computed; Chinese gets the same settings, chrF being character-based.

    Args:
        replies: the model's replies, a list of `str`.
        references: one reference reply per reply.
        languages: the language of each question ("en" or "zh"), e.g. its dialog's.
        finished: optional, one bool per reply: did it end with a stop token (`ChatReply.finished`)?

    Example:

    >>> scores = chat_scores(["Hi there.", "", "晚安。"], ["Hello.", "Thanks.", "晚安。"], ["en", "en", "zh"],
    ...                      finished=[True, False, False])
    >>> scores["en"]["count"], scores["en"]["language_right"], scores["en"]["well_formed"], scores["en"]["empty"]
    (2, 0.5, 1.0, 0.5)
    >>> scores["zh"]["chrf"], scores["zh"]["well_formed"], scores["all"]["count"]
    (100.0, 0.0, 3)
    """
    replies = require_texts("replies", replies)
    references = require_texts("references", references)
    if isinstance(languages, str) or not isinstance(languages, Iterable):
        raise ValueError(f"languages is {languages!r:.40}: expected the language of each question, a list of "
                         f"{' or '.join(map(repr, LANGUAGES))}")
    languages = list(languages)
    finished = None if finished is None else [bool(value) for value in finished]
    for name, values in (("references", references), ("languages", languages), ("finished", finished)):
        if values is not None and len(values) != len(replies):
            raise ValueError(f"{name} has {len(values)} items but replies has {len(replies)}: expected one per reply")
    if not replies:
        raise ValueError("replies is empty: expected at least one reply to score")
    for index, language in enumerate(languages):
        if language not in LANGUAGES:
            raise ValueError(f"languages[{index}]={language!r} is invalid: expected one of {list(LANGUAGES)}")
    groups = {language: [i for i, code in enumerate(languages) if code == language] for language in LANGUAGES}
    groups = {**{language: rows for language, rows in groups.items() if rows}, "all": list(range(len(replies)))}
    return {name: _group_scores(rows, replies, references, languages, finished) for name, rows in groups.items()}


def _group_scores(rows, replies, references, languages, finished):
    empty = [not replies[row].strip() for row in rows]
    language_right = [not is_empty and reply_language(replies[row]) == languages[row]
                      for row, is_empty in zip(rows, empty)]
    ended = None if finished is None else [finished[row] for row, is_empty in zip(rows, empty) if not is_empty]
    chrf = CHRF()
    score = chrf.corpus_score([replies[row] for row in rows], [[references[row] for row in rows]])
    return {
        "count": len(rows),
        "language_right": sum(language_right) / len(rows),
        "well_formed": sum(ended) / len(ended) if ended else None,
        "empty": sum(empty) / len(rows),
        "chrf": score.score,
        "chrf_signature": str(chrf.get_signature()),
    }


def normalize_whitespace(text):
    """The text with each whitespace run made one space, stripped: how `exact_match` compares replies.

    >>> normalize_whitespace("  Good\\n  night. ")
    'Good night.'
    """
    return " ".join(text.split())


def exact_match(replies, accepted):
    """The share of replies equal to one of the accepted answers of their question, whitespace normalized.

    Args:
        replies: the model's replies, a list of `str`.
        accepted: for each reply, the list of answers that count as right (e.g. `accepted_replies(...)`). Each entry
            is a list even when it holds one answer: a bare string is refused, not read as a set of characters.

    Raises:
        ValueError: a bare string for `replies`, `accepted` or an entry of it, or not one entry per reply.

    >>> exact_match(["Good  night.", "Hi", "再见"], [["Good night.", "Sleep well."], ["Hello."], []])
    0.3333333333333333
    """
    replies = require_texts("replies", replies)
    if isinstance(accepted, str):
        raise ValueError("accepted is one string: expected one list of accepted answers per reply.")
    accepted = [require_texts(f"accepted[{index}]", answers) for index, answers in enumerate(accepted)]
    if len(accepted) != len(replies):
        raise ValueError(f"accepted has {len(accepted)} lists but replies has {len(replies)}: expected one list of "
                         "accepted answers per reply")
    if not replies:
        raise ValueError("replies is empty: expected at least one reply to score")
    hits = [normalize_whitespace(reply) in {normalize_whitespace(answer) for answer in answers}
            for reply, answers in zip(replies, accepted)]
    return sum(hits) / len(hits)


def accepted_replies(train_dialogs, conversations):
    """For each conversation, every reply the training dialogs give to the very same context (the same messages,
    whitespace normalized), in corpus order, without repeats: what a FAQ bot was taught for that question.

    Args:
        train_dialogs: the training dialogs (`{"messages": [...], "language": ...}`).
        conversations: message lists ending with a user message (or plain strings: one user message each).

    >>> train = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
    ...           "language": "en"},
    ...          {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey!"}],
    ...           "language": "en"}]
    >>> accepted_replies(train, ["Hi", [{"role": "user", "content": "Bye"}]])
    [['Hello.', 'Hey!'], []]
    """
    taught = {}
    for exchange in training_exchanges(train_dialogs):
        answers = taught.setdefault(_context_key(exchange["context"]), [])
        if exchange["reply"] not in answers:
            answers.append(exchange["reply"])
    return [list(taught.get(_context_key(ChatTemplate.check_conversation(conversation, last_role="user")), []))
            for conversation in conversation_list(conversations)]


def _context_key(messages):
    return tuple((message["role"], normalize_whitespace(message["content"])) for message in messages)
