"""The conversations and exchanges the chat baselines, the chat memory and the chat metrics read: a conversation is
checked by the chat template's rule (`tfllm.data.ChatTemplate.check_conversation`) and must end with the user message
to reply to; the training exchanges are `tfllm.data.dialog_exchanges`'s, one per assistant turn."""

from tfllm.data import ChatTemplate, dialog_exchanges


def training_exchanges(dialogs):
    """`tfllm.data.dialog_exchanges` of the training dialogs (`{"context", "reply", "language"}` dicts), checked:
    every dialog a dict with a `messages` list and a `language` code, and at least one exchange in all.

    >>> dialog = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
    ...                        {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye!"}],
    ...           "language": "en"}
    >>> [(len(exchange["context"]), exchange["reply"]) for exchange in training_exchanges([dialog])]
    [(1, 'Hello.'), (3, 'Bye!')]
    """
    dialogs = list(dialogs)
    for index, dialog in enumerate(dialogs):
        if not isinstance(dialog, dict) or not isinstance(dialog.get("messages"), list):
            raise ValueError(f"dialogs[{index}]={dialog!r:.60} is invalid: expected a dict with a 'messages' list "
                             "and a 'language', as tfllm.data.load_dialogs gives them")
        if not isinstance(dialog.get("language"), str):
            raise ValueError(f"dialogs[{index}] has the language {dialog.get('language')!r}: expected a language "
                             "code such as 'en' or 'zh'")
    exchanges = dialog_exchanges(dialogs)
    if not exchanges:
        raise ValueError("the dialogs hold no assistant reply: expected at least one exchange to learn from")
    return exchanges


def last_user_message(conversation):
    """The content of the conversation's last message, the user's question (a plain string is one user message);
    a `ValueError` for a conversation that is not one or does not end with a user message.

    >>> last_user_message([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
    ...                    {"role": "user", "content": "How are you?"}])
    'How are you?'
    """
    return ChatTemplate.check_conversation(conversation, last_role="user")[-1]["content"]


def conversation_list(conversations):
    """`conversations` as a list, refusing one conversation passed alone (a string, or a list of messages).

    >>> conversation_list(("Hi", [{"role": "user", "content": "Bye"}]))
    ['Hi', [{'role': 'user', 'content': 'Bye'}]]
    """
    if isinstance(conversations, str) or (isinstance(conversations, (list, tuple)) and conversations
                                          and isinstance(conversations[0], dict)):
        raise ValueError("conversations is one conversation: expected a list of them (wrap a single one as "
                         "[conversation])")
    return list(conversations)
