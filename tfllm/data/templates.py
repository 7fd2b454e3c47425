"""Prompt templates: how a task's fields, or a chat's messages, become the text a model reads and learns.

A template renders a record as segments of text, each marked as prompt (read, not learned) or completion (learned):
`sft_dataset` tokenizes the segments and puts the loss on the completions; `generate` renders the prompt alone and
lets the model write the rest. Special tokens of the tokenizer (`<en>`, `<user>`, ...) are written in the formats as
text: the tokenizer reads each one as its single id. A template is saved with the model (its `.keras` file and the
run directory), so the command line and a SavedModel apply it without the user retyping the format.
"""

import dataclasses
import re
import string
import warnings

import tensorflow as tf

from tfllm.checks import is_chat_message
from tfllm.utf8 import utf8_bytes

KINDS = ("fields", "chat", "translation")
CHAT_ROLES = ("system", "user", "assistant")


def _fields_of(template_format, what):
    """The field names of a format string, in order of first use; a `ValueError` names a malformed one."""
    if not isinstance(template_format, str):
        raise ValueError(f"{what}={template_format!r} is invalid: expected a format string such as '<en>{{source}}<zh>'")
    try:
        parsed = list(string.Formatter().parse(template_format))
    except ValueError as error:
        raise ValueError(f"{what}={template_format!r} is not a valid format string: {error}") from None
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"{what}={template_format!r} has the field {{{name}}}: expected plain names such as "
                             "{source}, without format specs or indexing")
        if name not in names:
            names.append(name)
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
    """A task's fields -> prompt and completion, each a format string with `{field}` placeholders.

    Args:
        prompt: what the model reads, e.g. `"<en>{source}<zh>"`.
        completion: what it learns to write after it, e.g. `"{target}"`; the sequence ends with eos.

    Example:

    >>> template = PromptTemplate("<en>{en}<zh>", "{zh}")
    >>> template.fields, template.prompt_fields
    (('en', 'zh'), ('en',))
    >>> template.format_prompt({"en": "How is the weather?"})
    '<en>How is the weather?<zh>'
    >>> template.format_prompt("How is the weather?")  # one prompt field: a plain string fills it
    '<en>How is the weather?<zh>'
    >>> template.segments({"en": "How is the weather?", "zh": "天气如何？"})
    [('<en>How is the weather?<zh>', False), ('天气如何？', True)]
    >>> PromptTemplate.from_config(template.get_config()) == template
    True
    >>> template.format_prompt({"fr": "Quel temps fait-il ?"})
    Traceback (most recent call last):
    ...
    ValueError: the record has no field 'en' that the template's prompt '<en>{en}<zh>' names (its fields: ['fr'])
    """

    prompt: str = "{prompt}"
    completion: str = "{completion}"

    def __post_init__(self):
        if not self.prompt_fields:
            raise ValueError(f"prompt={self.prompt!r} names no field: expected at least one, e.g. '{{question}}'")
        _fields_of(self.completion, "completion")

    kind = "fields"

    @property
    def prompt_fields(self):
        return _fields_of(self.prompt, "prompt")

    @property
    def fields(self):
        """Every field a training record needs, prompt fields first."""
        return tuple(dict.fromkeys(self.prompt_fields + _fields_of(self.completion, "completion")))

    def format_prompt(self, record):
        """The prompt text of `record`: a dict of fields, or a string when the prompt has exactly one field."""
        return _format(self.prompt, self._as_record(record), "prompt")

    def format_prompt_tensor(self, texts):
        """`format_prompt` in graph code, for a prompt with one field: (B,) strings -> (B,) prompts.

        >>> PromptTemplate("<en>{en}<zh>", "{zh}").format_prompt_tensor(tf.constant(["Hi"])).numpy().tolist()
        [b'<en>Hi<zh>']
        """
        if len(self.prompt_fields) != 1:
            raise ValueError(f"the prompt {self.prompt!r} has the fields {list(self.prompt_fields)}: only a prompt "
                             "with one field can be filled from one string input")
        return _join_format(self.prompt, {self.prompt_fields[0]: texts})

    def segments(self, record):
        """`[(prompt text, False), (completion text, True)]`: what `sft_dataset` reads and learns."""
        record = self._as_record(record)
        return [(_format(self.prompt, record, "prompt"), False), (_format(self.completion, record, "completion"), True)]

    def get_config(self):
        return {"kind": self.kind, "prompt": self.prompt, "completion": self.completion}

    @classmethod
    def from_config(cls, config):
        return template_from_config(config)

    def _as_record(self, record):
        if isinstance(record, str):
            if len(self.prompt_fields) != 1:
                raise ValueError(f"a plain string cannot fill the prompt {self.prompt!r}, which has the fields "
                                 f"{list(self.prompt_fields)}: pass a dict")
            return {self.prompt_fields[0]: record}
        if not isinstance(record, dict):
            raise ValueError(f"record={record!r:.60} is invalid: expected a dict of fields {list(self.fields)}")
        return record


@dataclasses.dataclass(frozen=True)
class ChatTemplate:
    """A conversation (a list of `{"role", "content"}` messages) -> text, one format per role.

    The convention of OpenAI messages and Hugging Face chat templates: roles "system", "user", "assistant". A
    conversation is an optional first system message, then user and assistant messages in turn, starting with the
    user; every content is a non-empty string. The assistant's format is split at `{content}`: what comes before is
    read (it is also the generation prompt that asks the model to answer), the content and what follows it are
    learned, on every assistant turn. A marker after the content (`<end>` in `CHAT_TEMPLATE`) is thus learned, and
    generation stops there (`stop_tokens`).

    Args:
        user, assistant, system: formats with one `{content}` field, e.g. `"<user>{content}"`. Each `<name>` in
            them is meant as a special token of the tokenizer (`special_tokens` lists them).

    Example:

    >>> template = ChatTemplate("<user>{content}", "<assistant>{content}<end>")
    >>> template.special_tokens, template.stop_tokens
    (['<system>', '<user>', '<assistant>', '<end>'], ['<end>'])
    >>> messages = [{"role": "user", "content": "天气如何"}, {"role": "assistant", "content": "今天天气很好"}]
    >>> template.segments(messages)  # what sft_dataset reads: the answer and its <end> are learned
    [('<user>天气如何', False), ('<assistant>', False), ('今天天气很好<end>', True)]
    >>> template.format_prompt(messages[:1])  # the history, then the assistant's prefix
    '<user>天气如何<assistant>'
    >>> template.format_prompt("天气如何")  # a plain string is one user message
    '<user>天气如何<assistant>'
    >>> template.format_prompt(messages)
    Traceback (most recent call last):
    ...
    ValueError: message 1 is the last and has the role 'assistant': a prompt ends with a user message, for the assistant to answer
    """

    user: str = "<user>{content}"
    assistant: str = "<assistant>{content}"
    system: str = "<system>{content}"

    kind = "chat"
    fields = ("messages",)

    def __post_init__(self):
        for role in CHAT_ROLES:
            if _fields_of(getattr(self, role), role) != ("content",):
                raise ValueError(f"{role}={getattr(self, role)!r} is invalid: expected exactly one field, {{content}}")

    @property
    def special_tokens(self):
        """Every `<name>` marker of the formats (system, user, assistant), once each: train the tokenizer with them."""
        literals = [text for role in CHAT_ROLES for text in _split_at_content(getattr(self, role))]
        return list(dict.fromkeys(marker for text in literals for marker in _MARKER.findall(text)))

    @property
    def stop_tokens(self):
        """The markers after the assistant's content: the model learns to write them, and generation stops there."""
        return _MARKER.findall(_split_at_content(self.assistant)[1])

    def stop_token_ids(self, tokenizer):
        """The ids of `stop_tokens` in `tokenizer`, whose special tokens they must be: as text, a model would learn
        them as several tokens, and no single id would end its reply."""
        missing = [token for token in self.stop_tokens if token not in tokenizer.special_tokens]
        if missing:
            raise ValueError(f"the chat template's stop tokens {missing} are not special tokens of the tokenizer: "
                             "make it with special_tokens=template.special_tokens")
        return [tokenizer.special_tokens[token] for token in self.stop_tokens]

    def format_prompt(self, messages):
        """The text of the conversation so far, ending with the assistant's prefix: what the model continues.

        `messages` is a conversation that ends with a user message, or a plain string (one user message)."""
        messages = self.check_conversation(messages, last_role="user")
        return "".join(text for text, _ in self._message_segments(messages)) + _split_at_content(self.assistant)[0]

    def format_prompt_tensor(self, texts):
        """`format_prompt` in graph code for one user message per row: (B,) strings -> (B,) prompts."""
        return tf.strings.join([_join_format(self.user, {"content": texts}), _split_at_content(self.assistant)[0]])

    def fit_prompt(self, messages, tokenizer, max_tokens):
        """`format_prompt` in at most `max_tokens` tokens of `tokenizer` (a bos before it not counted): what a model
        with a limited context reads before its reply.

        The oldest user/assistant exchanges are left out until the prompt fits (a leading system message stays). A
        last user message too long alone keeps its first tokens (a question's start says most of what it asks),
        with a `UserWarning`, never an error; the system message goes too if it leaves no room for the question.

        >>> from tfllm.tokenizers import ByteTokenizer
        >>> template = ChatTemplate(assistant="<assistant>{content}<end>")
        >>> tokenizer = ByteTokenizer(special_tokens=template.special_tokens)  # a byte or a marker: one token
        >>> conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
        ...                 {"role": "user", "content": "天气如何"}]
        >>> template.fit_prompt(conversation, tokenizer, max_tokens=24)  # 3 + 7 + 13 + 1 tokens
        '<user>Hi<assistant>Hello<end><user>天气如何<assistant>'
        >>> template.fit_prompt(conversation, tokenizer, max_tokens=20)  # the oldest exchange goes
        '<user>天气如何<assistant>'
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     template.fit_prompt(conversation, tokenizer, max_tokens=10)  # 8 of the 12 bytes: 2 characters
        '<user>天气<assistant>'
        >>> str(caught[0].message)
        'the last message has 12 tokens, more than a prompt of 10 tokens holds: it keeps its first 8 tokens'
        """
        messages = self.check_conversation(messages, last_role="user")
        first_turn = int(messages[0]["role"] == "system")
        system, turns = messages[:first_turn], messages[first_turn:]
        # The candidates, shortest first: the last message alone, then with the exchange before it, ... An exchange
        # more never makes a prompt shorter, so the first that does not fit ends the search: a conversation of any
        # length costs the tokenizer only the exchanges that fit, not every suffix of its history.
        fitting = None
        for start in range(len(turns) - 1, -1, -2):
            prompt = self.format_prompt(system + turns[start:])
            if _token_counts(tokenizer, [prompt])[0] > max_tokens:
                break
            fitting = prompt
        if fitting is not None:
            return fitting
        return self._cut_question(system, turns[-1]["content"], tokenizer, max_tokens)

    def segments(self, messages):
        """`(text, learned)` segments of a conversation that ends with the assistant's answer (a list of messages,
        or a dict with them under "messages"): only the assistant turns' content and suffix are learned."""
        if isinstance(messages, dict) and "messages" in messages:
            messages = messages["messages"]
        return self._message_segments(self.check_conversation(messages, last_role="assistant"))

    @staticmethod
    def check_conversation(messages, last_role=None):
        """The messages of a valid conversation as a list (a plain string is one user message); a `ValueError`
        names the first message that is wrong: not a dict, an unknown role, content that is not a non-empty
        string, a turn out of order (an optional first system message, then user, assistant, user, ...), or a last
        message whose role is not `last_role` ("user" or "assistant"; None accepts either).

        >>> ChatTemplate.check_conversation("Hi")
        [{'role': 'user', 'content': 'Hi'}]
        >>> ChatTemplate.check_conversation([{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hi?"}])
        Traceback (most recent call last):
        ...
        ValueError: message 1 has the role 'user' where 'assistant' was expected: a conversation is an optional system message, then user and assistant messages in turn, starting with the user
        """
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not isinstance(messages, (list, tuple)):
            raise ValueError(f"messages={messages!r:.60} is invalid: expected a list of {{'role', 'content'}} dicts "
                             "or a string")
        if not messages:
            raise ValueError("messages is empty: expected at least one user message")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in CHAT_ROLES:
                role = message.get("role") if isinstance(message, dict) else None
                raise ValueError(f"message {index} ({message!r:.60}) has the role {role!r}: expected a dict with a "
                                 f"role in {list(CHAT_ROLES)} and a content string")
            content = message.get("content")
            if not isinstance(content, str) or not content.strip():
                raise ValueError(f"message {index} has the content {content!r:.40}: expected a non-empty string")
            if index == 0:
                first_turn = int(message["role"] == "system")  # the index of the first user message
            expected = "system" if index < first_turn else ("user", "assistant")[(index - first_turn) % 2]
            if message["role"] != expected:
                raise ValueError(f"message {index} has the role {message['role']!r} where {expected!r} was expected: "
                                 "a conversation is an optional system message, then user and assistant messages in "
                                 "turn, starting with the user")
        if last_role is not None and messages[-1]["role"] != last_role:
            ending = ("a prompt ends with a user message, for the assistant to answer" if last_role == "user" else
                      "a training conversation ends with the assistant's answer")
            raise ValueError(f"message {len(messages) - 1} is the last and has the role {messages[-1]['role']!r}: "
                             f"{ending}")
        return list(messages)

    def get_config(self):
        return {"kind": self.kind, "user": self.user, "assistant": self.assistant, "system": self.system}

    @classmethod
    def from_config(cls, config):
        return template_from_config(config)

    def _cut_question(self, system, question, tokenizer, max_tokens):
        """The prompt of the last user message alone (after the system message if there is room for both), the
        message cut to its first tokens to fit in `max_tokens`, with a warning."""
        question = question.strip()
        question_ids = tokenizer.tokenize(tf.constant([question.encode("utf-8")])).to_list()[0]
        for kept in (system, []):
            prompt = self.format_prompt(kept + [{"role": "user", "content": question}])
            keep = max_tokens - (_token_counts(tokenizer, [prompt])[0] - len(question_ids))  # less the template's
            while keep >= 1:
                # A cut inside a character drops its bytes (a U+FFFD in their place would take more tokens).
                text = tokenizer.detokenize(tf.ragged.constant([question_ids[:keep]], tf.int32)).numpy()[0]
                text = text.decode("utf-8", "ignore").strip() or question[:1]
                prompt = self.format_prompt(kept + [{"role": "user", "content": text}])
                excess = _token_counts(tokenizer, [prompt])[0] - max_tokens
                if excess <= 0:
                    dropped = ", and the system message is left out" if system and not kept else ""
                    warnings.warn(f"the last message has {len(question_ids)} tokens, more than a prompt of "
                                  f"{max_tokens} tokens holds: it keeps its first {keep} tokens{dropped}",
                                  UserWarning, stacklevel=3)
                    return prompt
                keep -= excess  # a tokenizer that reads the cut text otherwise than as its first tokens
        raise ValueError(f"a prompt of max_tokens={max_tokens} tokens cannot hold the chat template's tokens and "
                         "one token of the message: leave more room (fewer new tokens)")

    def _message_segments(self, messages):
        segments = []
        for message in messages:
            prefix, suffix = _split_at_content(getattr(self, message["role"]))
            if message["role"] != "assistant":
                segments.append((prefix + message["content"] + suffix, False))
            else:
                segments += [(prefix, False), (message["content"] + suffix, True)]
        return [(text, learned) for text, learned in segments if text]


# The template of chat runs: roles as special tokens, and `<end>` closing each answer (learned, and where generation
# stops), so that eos keeps its meaning of the end of a document.
CHAT_TEMPLATE = ChatTemplate(assistant="<assistant>{content}<end>")

_MARKER = re.compile(r"<[^<>\s{}]+>")  # a special token written in a format, e.g. <user>


def _token_counts(tokenizer, texts):
    """How many tokens each text has."""
    return tokenizer.tokenize(tf.constant(utf8_bytes(texts), tf.string)).row_lengths().numpy().tolist()


def _split_at_content(template_format):
    """`(prefix, suffix)`: the literal text before and after a format's one `{content}` field ("{{" read as "{")."""
    parsed = list(string.Formatter().parse(template_format))
    at = next(index for index, (_, name, _, _) in enumerate(parsed) if name is not None)
    prefix = "".join(literal for literal, _, _, _ in parsed[: at + 1])
    return prefix, "".join(literal for literal, _, _, _ in parsed[at + 1 :])


@dataclasses.dataclass(frozen=True)
class TranslationTemplate:
    """Translation by one model in every direction between `languages`, the language-model way: the source's
    language tag, the source, the target's tag; then the model writes the target (and eos).

    Each language code is written as the special token `<code>` (`special_tokens` lists them: train the tokenizer
    with them). A record is a pair with one field per language (`{"en": ..., "zh": ...}`, as
    `tfllm.data.load_parallel_corpus` gives them); `directed` turns pairs into one record per direction, with the
    fields `source`, `target`, `source_language` and `target_language` that `segments` and `format_prompt` read.

    Args:
        languages: the language codes, e.g. `("en", "zh")`; two or more.

    Example:

    >>> template = TranslationTemplate(("en", "zh"))
    >>> template.special_tokens
    ['<en>', '<zh>']
    >>> records = template.directed([{"en": "How is the weather?", "zh": "天气如何？"}])
    >>> [template.segments(record) for record in records]
    [[('<en>How is the weather?<zh>', False), ('天气如何？', True)], [('<zh>天气如何？<en>', False), ('How is the weather?', True)]]
    >>> template.format_prompt({"source": "今天天气很好。", "target_language": "en"})  # two languages: the source's is the other
    '<zh>今天天气很好。<en>'
    >>> template.format_prompt_tensor(tf.constant(["Hi", "你好"]), tf.constant(["zh", "en"])).numpy().tolist() == [
    ...     "<en>Hi<zh>".encode(), "<zh>你好<en>".encode()]
    True
    """

    languages: tuple = ("en", "zh")

    kind = "translation"
    fields = ("source", "target", "source_language", "target_language")

    def __post_init__(self):
        languages = self.languages
        if isinstance(languages, str) or len(languages) < 2 or len(set(languages)) != len(languages) or not all(
                isinstance(code, str) and code.isidentifier() for code in languages):
            raise ValueError(f"languages={languages!r} is invalid: expected two or more distinct codes such as "
                             "('en', 'zh')")
        object.__setattr__(self, "languages", tuple(languages))

    @property
    def special_tokens(self):
        """The language tags, one special token per language: `['<en>', '<zh>']`."""
        return [f"<{code}>" for code in self.languages]

    def check_language(self, language, what="target"):
        """Returns `language` if the template has it, else raises a `ValueError` naming the ones it has."""
        if language not in self.languages:
            raise ValueError(f"{what} language {language!r} is not one this model translates: expected one of "
                             f"{list(self.languages)}")
        return language

    def source_language(self, target_language, source_language=None):
        """The source's language: `source_language` when given, else the other one of a two-language template."""
        self.check_language(target_language)
        if source_language is not None:
            if self.check_language(source_language, "source") == target_language:
                raise ValueError(f"source and target language are both {target_language!r}: nothing to translate")
            return source_language
        if len(self.languages) != 2:
            raise ValueError(f"this model translates between {list(self.languages)}: name the source language too")
        return next(code for code in self.languages if code != target_language)

    def directed(self, pairs, directions=None):
        """One record per pair and direction (every ordered pair of languages that both sides have, by default).

        Args:
            pairs: dicts with a text per language code (other keys are kept out).
            directions: `(source, target)` tuples, e.g. `[("zh", "en")]`; None means every direction.
        """
        directions = directions or [(a, b) for a in self.languages for b in self.languages if a != b]
        for source, target in directions:
            self.check_language(source, "source"), self.check_language(target)
        records = []
        for index, pair in enumerate(pairs):
            for source, target in directions:
                if source not in pair or target not in pair:
                    raise ValueError(f"pair {index} ({pair!r:.60}) has no {source!r} or no {target!r} text")
                records.append({"source": pair[source], "target": pair[target], "source_language": source,
                                "target_language": target})
        return records

    def format_prompt(self, record):
        """`<source language>source<target language>`: a record with `source` and `target_language` (and
        `source_language`, which a two-language template can infer)."""
        if not isinstance(record, dict) or not isinstance(record.get("source"), str) or "target_language" not in record:
            raise ValueError(f"a translation prompt needs a dict with 'source' text and a 'target_language' (one "
                             f"of {list(self.languages)}), not {record!r:.60}: use model.translate(texts, target=...)")
        target = record["target_language"]
        source = self.source_language(target, record.get("source_language"))
        return f"<{source}>{record['source']}<{target}>"

    def format_prompt_tensor(self, texts, target_languages, source_languages=None):
        """`format_prompt` in graph code: (B,) texts and (B,) target codes (and source codes, which a
        two-language template infers) -> (B,) prompts. A code the template does not have, or a source code equal to
        its row's target, is an error at run time."""
        codes = tf.constant(list(self.languages))
        checks = [_assert_codes_in(codes, target_languages, "target")]
        if source_languages is None:
            if len(self.languages) != 2:
                raise ValueError(f"this model translates between {list(self.languages)}: pass source languages too")
            first, second = self.languages
            source_languages = tf.where(tf.equal(target_languages, first), second, first)
        else:
            checks += [_assert_codes_in(codes, source_languages, "source"), tf.debugging.Assert(
                tf.reduce_all(tf.not_equal(source_languages, target_languages)),
                ["a source language equals its target: nothing to translate; sources", source_languages])]
        with tf.control_dependencies(checks):
            return tf.strings.join(["<", source_languages, ">", texts, "<", target_languages, ">"])

    def segments(self, record):
        """`[(prompt text, False), (target text, True)]` of a directed record: the loss falls on the target."""
        for field in self.fields:
            if not isinstance(record.get(field) if isinstance(record, dict) else None, str):
                raise ValueError(f"a translation record needs the string fields {list(self.fields)}: "
                                 f"{record!r:.80} (turn pairs into records with TranslationTemplate.directed)")
        return [(self.format_prompt(record), False), (record["target"], True)]

    def get_config(self):
        return {"kind": self.kind, "languages": list(self.languages)}

    @classmethod
    def from_config(cls, config):
        return template_from_config(config)


def template_kind(template):
    """The kind of a prompt template, "fields", "chat" or "translation"; None for no template.

    >>> template_kind(None), template_kind(CHAT_TEMPLATE)
    (None, 'chat')
    """
    return None if template is None else template.kind


def model_translation_template(model, caller="translate"):
    """The model's `TranslationTemplate`; a `ValueError` naming `caller` for a model that was not trained to
    translate (the one check of `CausalLM.translate` and of the translation memory's functions)."""
    template = getattr(model, "prompt_template", None)
    if template_kind(template) != "translation":
        raise ValueError(f"{caller} needs a model trained to translate (a TranslationTemplate as its prompt_template, "
                         f"as `tfllm train --task translate` makes); this one has {template!r}")
    return template


def _assert_codes_in(codes, languages, role):
    """A graph check that each of the (B,) `languages` is one of the (L,) `codes`."""
    known = tf.reduce_any(tf.equal(languages[:, None], codes[None, :]), axis=1)  # (B, L) -> (B,)
    return tf.debugging.Assert(tf.reduce_all(known), [f"{role} language must be one of", codes, "got", languages])


def template_from_config(config):
    """The `PromptTemplate`, `ChatTemplate` or `TranslationTemplate` of a `get_config()` dict (None gives None).

    >>> template_from_config({"kind": "chat", "user": "Q: {content}\\n", "assistant": "A: {content}\\n",
    ...                       "system": "{content}\\n"}).format_prompt("Hi")
    'Q: Hi\\nA: '
    """
    if config is None or isinstance(config, (PromptTemplate, ChatTemplate, TranslationTemplate)):
        return config
    if not isinstance(config, dict) or config.get("kind") not in KINDS:
        raise ValueError(f"template config {config!r:.80} is invalid: expected a dict with kind in {list(KINDS)}")
    values = {key: value for key, value in config.items() if key != "kind"}
    cls = {"fields": PromptTemplate, "chat": ChatTemplate, "translation": TranslationTemplate}[config["kind"]]
    known = {field.name for field in dataclasses.fields(cls)}
    if set(values) - known:
        raise ValueError(f"template config has unknown keys {sorted(set(values) - known)}: expected {sorted(known)}")
    return cls(**values)


def wrap_prompts(template, prompts):
    """What `generate` reads: string prompts, records (dicts) or one conversation (a list of messages) wrapped in
    `template`, one string or a list of them; token ids, and anything when `template` is None, as they are.

    >>> template = PromptTemplate("Q: {question}\\nA: ", "{answer}")
    >>> wrap_prompts(template, "Why?"), wrap_prompts(template, [{"question": "Why?"}, "How?"])
    ('Q: Why?\\nA: ', ['Q: Why?\\nA: ', 'Q: How?\\nA: '])
    >>> wrap_prompts(template, [[1, 5, 6]]), wrap_prompts(None, "Why?")  # token ids; no template
    ([[1, 5, 6]], 'Why?')
    >>> wrap_prompts(ChatTemplate(), [{"role": "user", "content": "Hi"}])  # one conversation, one prompt
    '<user>Hi<assistant>'
    """
    if template is None:
        return prompts
    is_conversation = template.kind == "chat" and isinstance(prompts, list) and bool(prompts) and all(
        is_chat_message(message) for message in prompts)
    if isinstance(prompts, (str, dict)) or is_conversation:
        return template.format_prompt(prompts)
    if isinstance(prompts, (list, tuple)) and prompts and all(isinstance(prompt, (str, dict)) for prompt in prompts):
        return [template.format_prompt(prompt) for prompt in prompts]
    return prompts


def _join_format(template_format, tensors):
    """A format string filled with (B,) string tensors, by `tf.strings.join` of its literal parts and fields."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template_format):
        if literal:
            parts.append(literal)  # Formatter.parse has already turned "{{" into "{"
        if name is not None:
            parts.append(tensors[name])
    return tf.strings.join(parts) if parts else tf.constant("")


def _format(template_format, record, what):
    for name in _fields_of(template_format, what):
        if name not in record:
            raise ValueError(f"the record has no field {name!r} that the template's {what} {template_format!r} "
                             f"names (its fields: {sorted(record)})")
        if not isinstance(record[name], str):
            raise ValueError(f"the record's field {name!r} is {record[name]!r:.40}: expected a string")
    return template_format.format(**record)
