"""Chat with a causal language model: a conversation in the model's chat template, the assistant's reply generated.

A chat model has a `tfllm.data.ChatTemplate` as its `prompt_template` (`tfllm.data.CHAT_TEMPLATE` for the runs of
`tfllm train --task chat`): the conversation so far is rendered as `<user>...<assistant>...<end><user>...`, then the
assistant's prefix, and the model writes the answer until a stop token, the marker it learned to end each answer with
(`<end>`), or eos. A conversation too long for a Transformer's context loses its oldest exchanges first (a leading
system message stays); a last user message too long alone keeps its beginning, with a warning, never an error: a
question's start says most of what it asks.
"""

import typing

from tfllm.checks import require_positive_int
from tfllm.defaults import MAX_NEW_TOKENS
from tfllm.generation.text_generation import continuation_bytes, prompt_token_ids
from tfllm.utf8 import utf8_strings

# The longest reply by default, in tokens; less when the prompt and the reply would not fit in the context.


class ChatReply(typing.NamedTuple):
    """One reply of `chat_replies`.

    Attributes:
        text: the reply, special tokens not shown, surrounding whitespace stripped.
        finished: the model ended it with a stop token; False when `max_new_tokens` cut it off.
    """

    text: str
    finished: bool


def chat_stop_token_ids(model):
    """The ids that end a reply: the tokenizer's eos, then the ids of the chat template's `stop_tokens`.

    >>> from tfllm.data import ChatTemplate
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> template = ChatTemplate(assistant="<assistant>{content}<end>")
    >>> tokenizer = ByteTokenizer(special_tokens=template.special_tokens)  # <system> 259, ..., <end> 262
    >>> chat_stop_token_ids(LSTMLM(263, hidden_dim=8, tokenizer=tokenizer, prompt_template=template))
    [2, 262]
    """
    return [model.tokenizer.eos_id] + chat_template(model).stop_token_ids(model.tokenizer)


def chat_max_new_tokens(model, conversations, max_new_tokens=None):
    """The reply budget, in tokens, of a batch of conversations (lists of messages, or strings).

    `max_new_tokens` when given (it must leave room for a prompt in a Transformer's context); else
    `tfllm.defaults.MAX_NEW_TOKENS`, lowered so that the longest prompt and the reply fit in the context, but never
    below half of it (a longer prompt loses its oldest turns instead).

    >>> from tfllm.data import ChatTemplate
    >>> from tfllm.models import TransformerLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> template = ChatTemplate(assistant="<assistant>{content}<end>")
    >>> model = TransformerLM(263, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
    ...                       max_sequence_length=32, tokenizer=ByteTokenizer(special_tokens=template.special_tokens),
    ...                       prompt_template=template)
    >>> chat_max_new_tokens(model, ["Hi"])  # bos <user> H i <assistant>: 5 of the 32 positions
    27
    >>> chat_max_new_tokens(model, ["How is the weather today?"]), chat_max_new_tokens(model, ["Hi"], 8)
    (16, 8)
    >>> chat_max_new_tokens(model, ["Hi"], 29)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: max_new_tokens=29 leaves no room for a prompt ...: the shortest chat prompt takes 4 tokens (...), so expected at most 28
    """
    limit = model.max_sequence_length
    template = chat_template(model)
    if max_new_tokens is not None:
        max_new_tokens = require_positive_int("max_new_tokens", max_new_tokens)
        shortest = len(prompt_token_ids(model, [template.format_prompt("?")])[0])  # a user message of one token
        if limit is not None and max_new_tokens > limit - shortest:
            raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in "
                             f"max_sequence_length={limit}: the shortest chat prompt takes {shortest} tokens (the bos, "
                             f"the template's and one of the message), so expected at most {limit - shortest}")
        return max_new_tokens
    if limit is None:
        return MAX_NEW_TOKENS
    prompts = [template.format_prompt(messages) for messages in conversations]
    longest = max(len(ids) for ids in prompt_token_ids(model, prompts))  # with the bos
    return min(MAX_NEW_TOKENS, max(limit - longest, limit // 2))


def chat_prompt(model, messages, max_new_tokens):
    """The prompt text of a conversation, fitted to the model's context: what the model continues with its reply.

    The conversation (a list of `{"role", "content"}` messages ending with a user message, or a plain string: one
    user message) is checked by the template (`ChatTemplate.check_conversation`) and rendered with the assistant's
    prefix at the end. For a model with a `max_sequence_length`, the bos, the prompt's tokens and `max_new_tokens`
    must fit in it (`ChatTemplate.fit_prompt`): the oldest user/assistant exchanges are dropped until they do (a
    leading system message is kept); if the last user message still does not fit, it keeps its first tokens, with
    a `UserWarning` (and the system message goes too if it leaves no room for the question). Recurrent models keep
    everything. `max_new_tokens` None means `chat_max_new_tokens`'s default.

    >>> from tfllm.data import ChatTemplate
    >>> from tfllm.models import TransformerLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> template = ChatTemplate(assistant="<assistant>{content}<end>")
    >>> model = TransformerLM(263, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
    ...                       max_sequence_length=32, tokenizer=ByteTokenizer(special_tokens=template.special_tokens),
    ...                       prompt_template=template)
    >>> conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
    ...                 {"role": "user", "content": "天气如何"}]
    >>> chat_prompt(model, conversation, max_new_tokens=7)  # bos, 24 tokens and 7 new ones fit in 32
    '<user>Hi<assistant>Hello<end><user>天气如何<assistant>'
    >>> chat_prompt(model, conversation, max_new_tokens=16)  # they do not: the oldest exchange goes
    '<user>天气如何<assistant>'
    """
    template = chat_template(model)
    messages = template.check_conversation(messages, last_role="user")
    limit = model.max_sequence_length
    if limit is None:
        return template.format_prompt(messages)
    max_new_tokens = chat_max_new_tokens(model, [messages], max_new_tokens)
    return template.fit_prompt(messages, model.tokenizer, limit - 1 - max_new_tokens)  # the bos comes first


def chat_replies(model, conversations, max_new_tokens=None, **sampling):
    """One reply per conversation, generated in one batch: a list of `ChatReply(text, finished)`.

    Each conversation (a list of messages ending with a user message, or a plain string) becomes its `chat_prompt`;
    the model writes until a stop token (`chat_stop_token_ids`) or `max_new_tokens` (None: `chat_max_new_tokens`'s
    default, the same budget for the whole batch).

    Args:
        model: a model whose `prompt_template` is a `tfllm.data.ChatTemplate`.
        conversations: a list of conversations.
        max_new_tokens: the longest reply in tokens.
        **sampling: `CausalLM.generate`'s settings: `sampler`, `temperature`, `top_k`, `top_p`, `seed`, `num_beams`,
            `jit_compile`, and `stop_token_ids` to replace the chat's stop ids (None: eos only).

    Example:

    >>> from tfllm.data import ChatTemplate
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> template = ChatTemplate(assistant="<assistant>{content}<end>")
    >>> model = LSTMLM(263, hidden_dim=8, tokenizer=ByteTokenizer(special_tokens=template.special_tokens),
    ...                prompt_template=template)  # untrained: its replies are noise
    >>> replies = chat_replies(model, ["天气如何", [{"role": "user", "content": "Hi"}]], max_new_tokens=4,
    ...                        stop_token_ids=[])  # no stop token: every reply is cut off
    >>> [(type(reply.text), reply.finished) for reply in replies]
    [(<class 'str'>, False), (<class 'str'>, False)]
    """
    conversations = list(conversations) if isinstance(conversations, (list, tuple)) else conversations
    if not isinstance(conversations, list) or not conversations:
        raise ValueError(f"conversations={conversations!r:.60} is invalid: expected a non-empty list of "
                         "conversations (each a list of messages, or a string)")
    budget = chat_max_new_tokens(model, conversations, max_new_tokens)
    prompt_ids = prompt_token_ids(model, [chat_prompt(model, messages, budget) for messages in conversations])
    sampling.setdefault("stop_token_ids", chat_stop_token_ids(model))
    new_ids = model.generate(prompt_ids, max_new_tokens=budget, strip_prompt=True, apply_template=False, **sampling)
    texts = utf8_strings(continuation_bytes(model, prompt_ids, new_ids))
    # The stop token is not among the new ids: a row that stopped has fewer than `budget` of them.
    return [ChatReply(text.strip(), len(ids) < budget) for text, ids in zip(texts, new_ids)]


def stream_chat_reply(model, messages, max_new_tokens=None, **sampling):
    """The reply to one conversation, as text pieces while it is generated (`CausalLM.stream`, `chunk_tokens`
    positions at a time); the pieces joined equal `chat_replies(...)[0].text`: the whitespace that starts the reply
    is dropped, and whitespace is held back until text follows it (so the reply's trailing whitespace never comes).
    The conversation is checked and fitted to the context at the call, before the first piece.
    `CausalLM.chat(..., stream=True)` is this function (its example shows the pieces adding up to the reply).
    """
    budget = chat_max_new_tokens(model, [messages], max_new_tokens)
    prompt = chat_prompt(model, messages, budget)
    sampling.setdefault("stop_token_ids", chat_stop_token_ids(model))
    return _stripped(model.stream(prompt, max_new_tokens=budget, apply_template=False, **sampling))


def chat_template(model, caller="chat"):
    """The model's `ChatTemplate`; a `ValueError` naming `caller` for a model without one, which says what fits the
    model instead, or without a tokenizer (the one check of `CausalLM.chat` and of the chat memory's functions)."""
    template = model.prompt_template
    kind = None if template is None else template.kind
    if kind != "chat":
        instead = ("it translates: use model.translate (tfllm translate)" if kind == "translation" else
                   "use model.generate (tfllm generate) to continue a text")
        raise ValueError(f"{caller} needs a model trained to chat (a ChatTemplate as its prompt_template, as `tfllm "
                         f"train --task chat` makes); this one has prompt_template={template!r}: {instead}")
    if model.tokenizer is None:
        raise ValueError(f"{caller} needs a tokenizer: attach one with tokenizer=... when making the model")
    return template


def _stripped(pieces):
    """The pieces of a text without its surrounding whitespace: whitespace waits until text follows it."""
    started, held = False, ""
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
        text = held + piece
        shown = text.rstrip()
        held = text[len(shown) :]
        if shown:
            yield shown
