"""The two baselines a chat model must beat: the most common reply of the question's language, and the reply to the
most similar training question (character n-gram TF-IDF retrieval, `NearestNeighbourRetrieval`).

Both are built from training dialogs (`tfllm.data.load_dialogs`) and answer `replies(conversations)`, each
conversation a list of messages ending with the user message to reply to (or a plain string, one user message). A
model no better than `MostCommonReply` has learnt nothing of the question but its language; one no better than
`RetrievalReply` has learnt no more than to look up the closest training question.
"""

import collections

from tfllm.evaluation.chat_exchanges import conversation_list, last_user_message, training_exchanges
from tfllm.evaluation.chat_metrics import reply_language
from tfllm.evaluation.translation_baselines import NearestNeighbourRetrieval


class MostCommonReply:
    """Answers every question with the most common assistant reply of the training dialogs in its language.

    The language of a question is `reply_language` of its last user message; a question with no language (digits,
    punctuation), or one the dialogs do not have, gets the dialogs' majority language. Ties between equally common
    replies, and between equally common languages, go to the first in corpus order.

    Args:
        dialogs: the training dialogs, `{"messages": [...], "language": "en" | "zh"}` dicts.

    Attributes:
        answers: the reply of each language, e.g. `{"en": "Hello.", "zh": "你好。"}`.
        language: the majority language of the dialogs.

    Example:

    >>> def dialog(question, reply, language):
    ...     return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reply}],
    ...             "language": language}
    >>> baseline = MostCommonReply([dialog("Hi", "Hello.", "en"), dialog("Hey", "Hello.", "en"),
    ...                             dialog("Bye", "Bye!", "en"), dialog("你好", "你好！", "zh")])
    >>> baseline.replies(["Good night", "晚安", "42"])
    ['Hello.', '你好！', 'Hello.']
    """

    def __init__(self, dialogs):
        dialogs = list(dialogs)
        exchanges = training_exchanges(dialogs)
        counts = collections.defaultdict(collections.Counter)  # language -> reply -> count, in corpus order
        for exchange in exchanges:
            counts[exchange["language"]][exchange["reply"]] += 1
        self.answers = {language: max(replies, key=replies.get) for language, replies in counts.items()}
        languages = collections.Counter(dialog["language"] for dialog in dialogs)
        self.language = max(languages, key=languages.get)

    def question_language(self, conversation):
        """The language whose reply `conversation` gets: its last user message's, else the majority language."""
        language = reply_language(last_user_message(conversation))
        return language if language in self.answers else self.language

    def replies(self, conversations):
        """The most common reply of each conversation's language, a list of `str`."""
        return [self.answers[self.question_language(conversation)] for conversation in conversation_list(conversations)]


class RetrievalReply:
    """Answers a question with the reply of the training exchange whose last user message is the most similar to
    the question's (the cosine similarity of character 1-3-gram TF-IDF vectors, `NearestNeighbourRetrieval`; ties go
    to the first in corpus order). A question sharing no n-gram with any training question gets `MostCommonReply`'s
    answer for its language.

    Args:
        dialogs: the training dialogs, `{"messages": [...], "language": "en" | "zh"}` dicts.
        ngram_range: `(min_n, max_n)`, the lengths of the character n-grams.

    Attributes:
        exchanges: the training exchanges, `{"context", "reply", "language"}` dicts (one per assistant turn).
        retrieval: the `NearestNeighbourRetrieval` from their last user messages to their replies.
        most_common: the `MostCommonReply` of the dialogs, for questions that share nothing.

    Example:

    >>> def dialog(question, reply, language):
    ...     return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reply}],
    ...             "language": language}
    >>> baseline = RetrievalReply([dialog("Good night", "Sleep well.", "en"), dialog("Thank you", "My pleasure.", "en"),
    ...                            dialog("谢谢你", "不客气。", "zh")])
    >>> baseline.replies(["good night!", [{"role": "user", "content": "谢谢"}], "zzz"])
    ['Sleep well.', '不客气。', 'Sleep well.']
    """

    def __init__(self, dialogs, ngram_range=(1, 3)):
        dialogs = list(dialogs)
        self.exchanges = training_exchanges(dialogs)
        pairs = [{"question": exchange["context"][-1]["content"], "reply": exchange["reply"]}
                 for exchange in self.exchanges]
        self.retrieval = NearestNeighbourRetrieval(pairs, source="question", target="reply", ngram_range=ngram_range)
        self.most_common = MostCommonReply(dialogs)

    def nearest(self, conversations, k=1):
        """The `k` training exchanges whose last user messages are the most similar to each conversation's, best
        first: `(indices, similarities)`, two `(len(conversations), k)` arrays (int64 indices into `exchanges`,
        float64 cosine similarities in [0, 1])."""
        questions = [last_user_message(conversation) for conversation in conversation_list(conversations)]
        return self.retrieval.nearest(questions, k=k)

    def replies(self, conversations):
        """The reply of the nearest training exchange for each conversation (`MostCommonReply`'s when it shares no
        n-gram with any), a list of `str`."""
        conversations = conversation_list(conversations)
        indices, similarities = self.nearest(conversations, k=1)
        return [self.exchanges[index]["reply"] if similarity > 0 else self.most_common.replies([conversation])[0]
                for conversation, index, similarity in zip(conversations, indices[:, 0], similarities[:, 0])]

