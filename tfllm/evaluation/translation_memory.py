"""A translation memory used with a translation model: the nearest training pairs' targets, chosen by the model.

A small model trained on a few thousand pairs writes broken sentences; the training pairs are whole human ones,
and the target of a pair whose source is close to the text often translates it, or much of it (the retrieval
baseline, `tfllm.evaluation.NearestNeighbourRetrieval`, returns the nearest one's). Together: the candidates for a
text are the targets of its `k` most similar training sources, and each is scored by how well the model can read
the text back from it, and by how similar its source is to the text:

    score(candidate) = mean log p(text | candidate) + SIMILARITY_WEIGHT * log similarity(text, candidate's source)
                       [+ FORWARD_WEIGHT * mean log p(candidate | text)]

the means taken over tokens (eos included), so that length does not decide. The weights and `k` were chosen on the
validation split of the default `tfllm train --task translate` run, over forward weights 0/0.5/1, similarity
weights 0-8 (and infinity: retrieval), k of 1/2/4/8, and the model's own translation as a further candidate with a
bias of -2 to +1 or left out. What the search found: the model's own translation never helped (its broken
sentences score well forward, the sequence it chose by its likeliest tokens, and lose chrF), the forward likelihood
did not help either, and the backward one ("does this candidate say what the text says?", the "noisy channel"
of reranking in machine translation) with the similarity beat the similarity alone by about half a chrF point:
see the README's Translation section for the figures.
"""

import numpy as np
import tensorflow as tf

from tfllm.checks import require_positive_int
from tfllm.data.templates import model_translation_template
from tfllm.evaluation import scoring
from tfllm.evaluation.translation_baselines import NearestNeighbourRetrieval

K = 8  # training pairs retrieved per text
SIMILARITY_WEIGHT = 1.0
FORWARD_WEIGHT = 0.0
SMALLEST_SIMILARITY = 1e-6  # for log(0): a pair (or a chat memory's question) sharing no n-gram


def candidate_log_likelihoods(model, sources, candidates, target, source=None):
    """The mean log-likelihood per token of each candidate translation, both ways: `(forward, backward)`, two
    `(len(sources), C)` float64 arrays, `forward[i, j]` of `candidates[i][j]` given `sources[i]` and `backward[i, j]`
    of `sources[i]` given `candidates[i][j]` (the candidate as a text in `target`, translated back).

    Args:
        model: a `CausalLM` with a `TranslationTemplate` trained on both directions.
        sources: texts in the source language.
        candidates: for each source, C candidate translations into `target` (the same C for every source).
        target: the candidates' language; `source` the sources' (None: the template's other language).

    Example (an untrained model: every candidate about as likely):

    >>> from tfllm.data import TranslationTemplate
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> template = TranslationTemplate(("en", "zh"))
    >>> model = LSTMLM(261, hidden_dim=8, tokenizer=ByteTokenizer(special_tokens=template.special_tokens),
    ...                prompt_template=template)
    >>> forward, backward = candidate_log_likelihoods(model, ["Good night", "Thanks"], [["晚安。", "谢谢！"]] * 2, "zh")
    >>> forward.shape, backward.shape, bool(np.all(forward < 0) and np.all(backward < 0))
    ((2, 2), (2, 2), True)
    >>> bool(np.all(np.abs(forward + np.log(261)) < 0.5))  # about a uniform guess over 261 ids, per token
    True
    """
    template = model_translation_template(model, "candidate_log_likelihoods")
    source = template.source_language(target, source)
    counts = {len(row) for row in candidates}
    if len(candidates) != len(sources) or len(counts) != 1:
        raise ValueError("candidates must hold the same number of candidate translations for each source, "
                         f"got {len(candidates)} rows of {sorted(counts)} for {len(sources)} sources")
    flat_candidates = [text for row in candidates for text in row]
    repeated_sources = [text for text, row in zip(sources, candidates) for _ in row]
    forward = _mean_log_likelihoods(model, template, repeated_sources, flat_candidates, source, target)
    backward = _mean_log_likelihoods(model, template, flat_candidates, repeated_sources, target, source)
    shape = (len(sources), counts.pop())
    return forward.reshape(shape), backward.reshape(shape)


def _mean_log_likelihoods(model, template, texts, translations, source, target):
    """Mean log p(translation token | prompt of text, translation so far) over each translation's tokens and eos."""
    tokenizer = model.tokenizer
    prompts = [template.format_prompt({"source": text, "source_language": source, "target_language": target})
               for text in texts]
    prompt_ids = tokenizer.tokenize(tf.constant(prompts)).to_list()
    translation_ids = tokenizer.tokenize(tf.constant(translations)).to_list()
    limit = model.max_sequence_length
    sequences = []
    for prompt, translation in zip(prompt_ids, translation_ids):
        if limit is not None:  # a candidate longer than the context is judged on its first tokens
            translation = translation[: max(limit - len(prompt) - 2, 1)]
        sequences.append([tokenizer.bos_id, *prompt, *translation, tokenizer.eos_id])
    values = scoring.token_log_likelihoods(model, sequences)  # each predicted token's, after the bos
    return np.asarray([np.mean(row[len(prompt):]) for row, prompt in zip(values, prompt_ids)])


def memory_translations(model, retrieval, sources, k=None, similarity_weight=None, forward_weight=None):
    """For each source, the target of one of its `k` nearest training pairs: the best by the module's score.

    Args:
        model: a `CausalLM` with a `TranslationTemplate` trained on both directions.
        retrieval: a `tfllm.evaluation.NearestNeighbourRetrieval` over the training pairs, from `retrieval.source`
            to `retrieval.target`.
        sources: texts in `retrieval.source`.
        k, similarity_weight, forward_weight: the score's settings; None takes `K`, `SIMILARITY_WEIGHT` and
            `FORWARD_WEIGHT`. A similarity weight of 0 lets the model alone choose among the `k`.

    Returns:
        a list of strings, one per source; a source sharing no character n-gram with any training source gets the
        retrieval's fallback (its most common target).

    Example (an untrained model chooses at random; a trained one, well):

    >>> from tfllm.data import TranslationTemplate
    >>> from tfllm.evaluation import NearestNeighbourRetrieval, memory_translations
    >>> from tfllm.models import TransformerLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> template = TranslationTemplate(("en", "zh"))
    >>> tokenizer = ByteTokenizer(special_tokens=template.special_tokens)
    >>> model = TransformerLM(tokenizer.vocab_size, num_layers=1, num_heads=1, hidden_dim=8, intermediate_dim=8,
    ...                       max_sequence_length=64, tokenizer=tokenizer, prompt_template=template)
    >>> pairs = [{"en": "Good night.", "zh": "晚安。"}, {"en": "Sleep well.", "zh": "晚安。"},
    ...          {"en": "Thanks!", "zh": "谢谢！"}]
    >>> memory = NearestNeighbourRetrieval(pairs, source="en", target="zh")
    >>> memory_translations(model, memory, ["Thanks a lot", "zzz"], k=2, similarity_weight=100.0)  # similarity decides
    ['谢谢！', '晚安。']
    """
    model_translation_template(model, "memory_translations")  # before the retrieval's work
    k = K if k is None else require_positive_int("k", k)
    similarity_weight = SIMILARITY_WEIGHT if similarity_weight is None else float(similarity_weight)
    forward_weight = FORWARD_WEIGHT if forward_weight is None else float(forward_weight)
    indices, similarities = retrieval.nearest(sources, k=min(k, len(retrieval.targets)))
    candidates = [[retrieval.targets[index] for index in row] for row in indices]
    forward, backward = candidate_log_likelihoods(model, sources, candidates, retrieval.target, retrieval.source)
    scores = backward + similarity_weight * np.log(np.maximum(similarities, SMALLEST_SIMILARITY))
    if forward_weight:
        scores = scores + forward_weight * forward
    return [row[int(np.argmax(row_scores))] if similarity[0] > 0 else retrieval.fallback
            for row, row_scores, similarity in zip(candidates, scores, similarities)]


class TranslationMemory:
    """Translation pairs a model translates with (`CausalLM.translate(..., memory=TranslationMemory(pairs))`): each
    text gets the target of one of its `k` most similar pairs, the one the model reads the text back from best,
    weighed with the similarity (`memory_translations`; the module docstring says why the model's own translation is
    not among the candidates). The retrieval index of each direction is built on first use and kept.

    Args:
        pairs: dicts with a text per language code, as `tfllm.data.load_parallel_corpus` gives them (the training
            split: never the pairs the model is tested on).
        k: pairs retrieved per text (None: `K`).

    Example (an untrained model chooses at random; `tfllm translate RUN --memory` uses the run's training pairs):

    >>> from tfllm.data import TranslationTemplate
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> template = TranslationTemplate(("en", "zh"))
    >>> model = LSTMLM(261, hidden_dim=8, tokenizer=ByteTokenizer(special_tokens=template.special_tokens),
    ...                prompt_template=template)
    >>> pairs = [{"en": "Good night.", "zh": "晚安。"}, {"en": "Thanks!", "zh": "谢谢！"}]
    >>> model.translate("Thanks a lot", target="zh", memory=TranslationMemory(pairs, k=1))  # the nearest pair's
    '谢谢！'
    >>> model.translate(["谢谢"], target="en", memory=TranslationMemory(pairs, k=2))[0] in ("Good night.", "Thanks!")
    True
    """

    def __init__(self, pairs, k=None):
        self.pairs = list(pairs)
        if not self.pairs:
            raise ValueError("a translation memory needs at least one pair")
        self.k = K if k is None else require_positive_int("k", k)
        self._retrievals = {}

    def retrieval(self, source, target):
        """The `NearestNeighbourRetrieval` from `source` to `target` over the pairs."""
        if (source, target) not in self._retrievals:
            self._retrievals[source, target] = NearestNeighbourRetrieval(self.pairs, source, target)
        return self._retrievals[source, target]

    def translate(self, model, texts, target, source):
        """`memory_translations` of `texts` (a list of `str`) from `source` into `target`."""
        return memory_translations(model, self.retrieval(source, target), texts, k=self.k)
