"""A chat memory used with a chat model: the replies to the nearest training questions, chosen by the model.

A small model trained on a few thousand exchanges writes broken replies; the training replies are whole human ones,
and the reply to a training question close to the user's often answers it (the retrieval baseline,
`tfllm.evaluation.RetrievalReply`, returns the nearest one's). Together: the candidates for a conversation are the
replies of its `k` nearest training exchanges (by the last user message, repeats removed), and each is scored by how
readily the model gives it after the conversation, and by how similar its question is to the user's:

    score(candidate) = mean log p(candidate + stop token | chat prompt) + similarity_weight * log similarity

the mean taken over the candidate's tokens and the template's stop token (`<end>`: the reply ends there), so that
length does not decide; the similarity is that of the exchange the candidate came from (its nearest, for a reply
given to several questions). A question the training dialogs ask word for word gets one of the replies it was taught.

`SIMILARITY_WEIGHT` was chosen on the validation split of the default run (`tfllm train --task chat`, 919 steps;
`benchmarks/chat_memory.py`, in the README): of 0, 1, 2, 4, 8, 16, 32 and infinity (retrieval alone), chrF rose
with the weight in English (17.1 at 0, 20.6 at 4, 30.1 at 8, 30.3 at 16) and peaked at 2 in Chinese (6.0, against
5.3 for retrieval): a model of two million parameters ranks replies worse than the n-grams of the question do, but
for a little in Chinese. 8 is the smallest weight within a fifth of a point of the best over both languages; the
model's share of the choice is then the tie-breaking among close questions. `K` = 8 is the translation memory's
(16 measured the same or worse).
"""

import numpy as np
import tensorflow as tf

from tfllm.checks import require_positive_int
from tfllm.evaluation import scoring
from tfllm.evaluation.chat_baselines import RetrievalReply
from tfllm.evaluation.chat_exchanges import conversation_list
from tfllm.evaluation.translation_memory import K, SMALLEST_SIMILARITY
from tfllm.generation.chat import chat_template

SIMILARITY_WEIGHT = 8.0  # chosen on a validation split: the module docstring
KNOWN_QUESTION = 1 - 1e-6  # a similarity this high is the same question: only its own replies are candidates


def reply_log_likelihoods(model, conversations, candidates):
    """The mean log-likelihood per token of each candidate reply to each conversation: for conversation i, a
    `(len(candidates[i]),)` float64 array of mean log p(candidate tokens and the stop token | chat prompt).

    The chat prompt is the one `CausalLM.chat` replies to (`ChatTemplate.fit_prompt`: the conversation, then the
    assistant's prefix; a history too long for a Transformer's context loses its oldest exchanges, with the longest
    candidate, at most half the context, as the reply's room). The candidate is followed by the template's assistant
    suffix (`<end>` in a chat run), as in training, or by eos when the suffix is empty. Each prompt is tokenized
    once and each candidate's sequence scored once (`tfllm.evaluation.token_log_likelihoods`).

    Args:
        model: a `CausalLM` with a chat template (`tfllm.data.ChatTemplate`).
        conversations: message lists ending with a user message (or plain strings: one user message each).
        candidates: for each conversation, a list of candidate replies (as many as you like, none included).

    Example (an untrained model: every token about as likely):

    >>> from tfllm.data import ChatTemplate
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> template = ChatTemplate(assistant="<assistant>{content}<end>")
    >>> tokenizer = ByteTokenizer(special_tokens=template.special_tokens)  # 259 + 4 ids
    >>> model = LSTMLM(tokenizer.vocab_size, hidden_dim=8, tokenizer=tokenizer, prompt_template=template)
    >>> values = reply_log_likelihoods(model, ["Hi", "你好"], [["Hello.", "Hey!"], ["你好！"]])
    >>> [row.shape for row in values]
    [(2,), (1,)]
    >>> bool(np.all(np.abs(np.concatenate(values) + np.log(263)) < 0.5))  # about a uniform guess over 263 ids
    True
    """
    template = chat_template(model, caller="the chat memory")
    conversations = conversation_list(conversations)
    candidates = [_list(f"candidates[{index}]", row) for index, row in enumerate(_list("candidates", candidates))]
    if len(candidates) != len(conversations):
        raise ValueError(f"candidates has {len(candidates)} lists but conversations has {len(conversations)}: "
                         "expected one list of candidate replies per conversation")
    tokenizer = model.tokenizer
    _, suffix = template.assistant.split("{content}", 1)
    end = [] if suffix else [tokenizer.eos_id]  # no stop marker: the reply ends the sequence
    reply_ids = _token_ids(tokenizer, [text + suffix for row in candidates for text in row])
    rows, start = [], 0  # each conversation's candidates' token ids
    for row in candidates:
        rows.append([[*ids, *end] for ids in reply_ids[start : start + len(row)]])
        start += len(row)
    scored = [index for index, row in enumerate(rows) if row]
    prompts = [_prompt(model, template, conversations[index], _reply_room(model, rows[index])) for index in scored]
    prompt_ids = dict(zip(scored, _token_ids(tokenizer, prompts)))
    sequences = [[tokenizer.bos_id, *prompt_ids[index], *ids] for index in scored for ids in rows[index]]
    values = iter(scoring.token_log_likelihoods(model, sequences) if sequences else [])  # each token's, after bos
    return [np.asarray([np.mean(next(values)[len(prompt_ids[index]):]) for _ in row], np.float64)
            for index, row in enumerate(rows)]


def _prompt(model, template, messages, reply_room):
    """What `tfllm.generation.chat_prompt` gives for a reply of `reply_room` tokens: the conversation fitted to
    the context (the oldest exchanges dropped first), then the assistant's prefix."""
    messages = template.check_conversation(messages, last_role="user")
    if model.max_sequence_length is None:
        return template.format_prompt(messages)
    return template.fit_prompt(messages, model.tokenizer, model.max_sequence_length - 1 - reply_room)


def _reply_room(model, rows):
    """The room `chat_prompt` keeps for the reply: the longest candidate's tokens, at most half a context (a longer
    candidate is still scored whole, through the sliding window of `token_log_likelihoods`)."""
    longest = max(len(ids) for ids in rows)
    limit = model.max_sequence_length
    return longest if limit is None else max(1, min(longest, limit // 2))


class ChatMemory:
    """Training dialogs a chat model replies with (`CausalLM.chat(..., memory=ChatMemory(dialogs))`): each
    conversation gets the reply of one of its `k` nearest training exchanges, the one the model gives most readily,
    weighed with the similarity of its question (the module docstring has the score).

    A question the training dialogs ask (the same n-grams: similarity 1) is a known question: its candidates are
    only the replies it was taught, so a FAQ bot answers what it was taught. A conversation whose last user message
    shares no character n-gram with any training question has no candidate: it gets `RetrievalReply`'s answer (the
    most common reply of its language).

    Args:
        dialogs: the training dialogs, `{"messages": [...], "language": "en" | "zh"}` dicts (the training split:
            never the dialogs the model is tested on).
        k: training exchanges retrieved per conversation (None: `K`).
        similarity_weight: the weight of log similarity in the score (None: `SIMILARITY_WEIGHT`); 0 lets the model
            alone choose among the candidates, a huge one makes the memory `RetrievalReply`.

    Attributes:
        retrieval: the `RetrievalReply` of the dialogs, which finds the candidates.

    Example (an untrained model chooses at random; with k=1 the nearest exchange's reply is the only candidate):

    >>> from tfllm.data import ChatTemplate
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> template = ChatTemplate(assistant="<assistant>{content}<end>")
    >>> tokenizer = ByteTokenizer(special_tokens=template.special_tokens)
    >>> model = LSTMLM(tokenizer.vocab_size, hidden_dim=8, tokenizer=tokenizer, prompt_template=template)
    >>> def dialog(question, reply, language):
    ...     return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reply}],
    ...             "language": language}
    >>> dialogs = [dialog("Good night", "Sleep well.", "en"), dialog("Thanks", "My pleasure.", "en"),
    ...            dialog("谢谢你", "不客气。", "zh")]
    >>> ChatMemory(dialogs, k=1).replies(model, ["thanks a lot", "谢谢"])
    ['My pleasure.', '不客气。']
    >>> ChatMemory(dialogs, k=2).replies(model, ["Good"])[0] in ("Sleep well.", "My pleasure.")
    True
    """

    def __init__(self, dialogs, k=None, similarity_weight=None):
        self.k = K if k is None else require_positive_int("k", k)
        self.similarity_weight = SIMILARITY_WEIGHT if similarity_weight is None else float(similarity_weight)
        self.retrieval = RetrievalReply(dialogs)

    def candidates(self, conversations):
        """`(replies, similarities)`: for each conversation, the distinct replies of its `k` nearest training
        exchanges that share an n-gram with it, best first, and the similarity of the nearest exchange of each; for
        a known question, only the replies of the exchanges that ask it."""
        exchanges = self.retrieval.exchanges
        indices, similarities = self.retrieval.nearest(conversations, k=min(self.k, len(exchanges)))
        replies, reply_similarities = [], []
        for row, row_similarities in zip(indices, similarities):
            nearest = {}  # reply -> the similarity of its nearest exchange (rows are sorted best first)
            known = row_similarities[0] >= KNOWN_QUESTION
            for index, similarity in zip(row, row_similarities):
                if similarity > 0 and (similarity >= KNOWN_QUESTION or not known):
                    nearest.setdefault(exchanges[index]["reply"], float(similarity))
            replies.append(list(nearest))
            reply_similarities.append(np.asarray(list(nearest.values()), np.float64))
        return replies, reply_similarities

    def replies(self, model, conversations):
        """The chosen reply of each conversation (a list of messages ending with a user message, or a plain
        string), a list of `str`: the model scores a conversation's candidates only when it has two or more."""
        conversations = conversation_list(conversations)
        candidates, similarities = self.candidates(conversations)
        chosen = [row[0] if len(row) == 1 else None for row in candidates]
        undecided = [index for index, row in enumerate(candidates) if len(row) > 1]
        likelihoods = reply_log_likelihoods(model, [conversations[index] for index in undecided],
                                            [candidates[index] for index in undecided])
        for index, values in zip(undecided, likelihoods):
            scores = values + self.similarity_weight * np.log(np.maximum(similarities[index], SMALLEST_SIMILARITY))
            chosen[index] = candidates[index][int(np.argmax(scores))]
        return [reply if reply is not None else self.retrieval.replies([conversation])[0]
                for reply, conversation in zip(chosen, conversations)]


def _token_ids(tokenizer, texts):
    if not texts:
        return []
    return tokenizer.tokenize(tf.constant(texts, tf.string)).to_list()


def _list(name, values):
    if isinstance(values, str):
        raise ValueError(f"{name} is one string: expected a list (wrap a single one as [{name}])")
    return list(values)
