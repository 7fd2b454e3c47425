"""The two baselines a translation model must beat: the most common training target, and the target of the most
similar training source (character n-gram TF-IDF retrieval, a translation memory).

Both are built from parallel pairs, dicts such as `{"en": "How is the weather?", "zh": "天气如何？", "ref": ...}`,
and a direction given by two of their keys (`source="zh", target="en"`), and both answer `translate(queries)`.
A model that scores no better than `MostCommonTarget` has learnt nothing of its input; one no better than
`NearestNeighbourRetrieval` has learnt no more than to look up the closest training sentence.
"""

import collections
import math

import numpy as np

from tfllm.checks import require_int_at_least, require_positive_int


class MostCommonTarget:
    """Answers every query with the most common target text of the training pairs.

    Ties between equally common targets go to the shortest, then to the first in code-point order (`min` of
    Python strings), so the answer does not depend on the order of the pairs.

    Args:
        pairs: the training pairs, a non-empty list of dicts holding `source` and `target` keys.
        source: the key of the source texts (e.g. "zh"); the queries are in this language.
        target: the key of the target texts (e.g. "en").

    Attributes:
        answer: the target text every query gets.
        count: how many training pairs have it as their target.

    Example:

    >>> pairs = [{"zh": "你好", "en": "Hello."}, {"zh": "您好", "en": "Hello."}, {"zh": "谢谢", "en": "Thanks."}]
    >>> baseline = MostCommonTarget(pairs, source="zh", target="en")
    >>> baseline.translate(["再见", "谢谢"])
    ['Hello.', 'Hello.']
    >>> baseline.count
    2
    """

    def __init__(self, pairs, source, target):
        self.source = source
        self.target = target
        _, targets = _source_and_target_texts(pairs, source, target)
        counts = collections.Counter(targets)
        self.answer = min(counts, key=lambda text: (-counts[text], len(text), text))
        self.count = counts[self.answer]

    def translate(self, queries):
        """`answer` once for each of `queries` (a list of source texts), as a list of `str`."""
        return [self.answer] * len(_queries(queries))


class NearestNeighbourRetrieval:
    """Answers a query with the target of the training pair whose source is most similar to it: the cosine
    similarity of character n-gram TF-IDF vectors, a translation memory.

    A text is lowercased (which changes only cased letters: Chinese is left as it is) and its whitespace runs become
    one space, stripped at both ends; spaces stay characters, so English n-grams see word boundaries ("e c" in
    "the cat"). Its vector counts each character n-gram, `ngram_range=(1, 3)` by default, weighted by the smoothed
    inverse document frequency over the N training sources, `idf = log((1 + N) / (1 + df)) + 1`, and scaled to unit
    length, as scikit-learn's `TfidfVectorizer(analyzer="char", ngram_range=(1, 3))` does with its defaults on the
    normalized text. One difference: a query's n-grams that no training source has still count in its length (with
    `df = 0`), so a query made mostly of unknown n-grams scores low against every pair (a fuzzy-match score), where
    scikit-learn would drop them and score the few known n-grams as if they were the whole query. The ranking is the
    same.

    Equal similarities (identical sources have exactly equal ones) go to the lowest training index. A query that shares no n-gram with any training source (every similarity
    0, e.g. an empty query) gets the most common training target, `MostCommonTarget`'s answer.

    Args:
        pairs: the training pairs, a non-empty list of dicts holding `source` and `target` keys.
        source: the key of the source texts (e.g. "zh"); the queries are in this language.
        target: the key of the target texts (e.g. "en").
        ngram_range: `(min_n, max_n)`, the lengths of the character n-grams.

    Attributes:
        sources, targets: the texts of the training pairs (tuples, in the order of `pairs`).
        fallback: the answer to a query that shares no n-gram with any source, `MostCommonTarget(pairs, ...).answer`.

    Example:

    >>> pairs = [{"en": "Good morning.", "zh": "早上好。"}, {"en": "Thank you very much.", "zh": "非常感谢。"},
    ...          {"en": "Good night.", "zh": "晚安。"}, {"en": "Many thanks!", "zh": "非常感谢。"}]
    >>> memory = NearestNeighbourRetrieval(pairs, source="en", target="zh")
    >>> memory.translate(["Good night", "zzz"])  # "zzz" shares nothing: the most common target
    ['晚安。', '非常感谢。']
    >>> indices, scores = memory.nearest(["Good night", "zzz"], k=2)
    >>> indices.tolist(), scores.round(3).tolist()
    ([[2, 0], [0, 1]], [[0.946, 0.482], [0.0, 0.0]])
    """

    def __init__(self, pairs, source, target, ngram_range=(1, 3)):
        self.source = source
        self.target = target
        self.ngram_range = _ngram_range(ngram_range)
        self.sources, self.targets = _source_and_target_texts(pairs, source, target)
        self.fallback = MostCommonTarget(pairs, source, target).answer
        self._build_index([collections.Counter(char_ngrams(text, self.ngram_range)) for text in self.sources])

    def _build_index(self, counts):
        # The TF-IDF matrix, stored by column: the rows having n-gram `column` are
        # `self._rows[self._starts[column]:self._starts[column + 1]]`, with their weights in `self._weights`.
        self._columns = {}
        rows, columns, values = [], [], []
        for row, row_counts in enumerate(counts):
            for ngram, count in row_counts.items():
                rows.append(row)
                columns.append(self._columns.setdefault(ngram, len(self._columns)))
                values.append(count)
        rows, columns = np.asarray(rows, np.int64), np.asarray(columns, np.int64)
        document_frequency = np.bincount(columns, minlength=len(self._columns))
        self._idf = np.log((1 + len(counts)) / (1 + document_frequency)) + 1
        self._unknown_idf = math.log(1 + len(counts)) + 1  # df = 0
        weights = np.asarray(values, np.float64) * self._idf[columns]
        norms = np.sqrt(np.bincount(rows, weights=weights**2, minlength=len(counts)))  # (N,)
        weights /= np.where(norms > 0, norms, 1.0)[rows]  # an empty source stays a zero vector
        order = np.argsort(columns, kind="stable")
        self._rows, self._weights = rows[order], weights[order]
        self._document_frequency = document_frequency
        self._starts = np.concatenate([[0], np.cumsum(document_frequency)])

    def similarities(self, query):
        """The cosine similarity of `query` (one source text) with every training source: an `(N,)` float array."""
        counts = collections.Counter(char_ngrams(query, self.ngram_range))
        known = [(self._columns[ngram], count) for ngram, count in counts.items() if ngram in self._columns]
        unknown = [count for ngram, count in counts.items() if ngram not in self._columns]
        columns = np.asarray([column for column, _ in known], np.int64)
        query_weights = np.asarray([count for _, count in known], np.float64) * self._idf[columns]
        if not known:
            return np.zeros(len(self.sources))
        norm = math.sqrt(np.sum(query_weights**2) + sum((count * self._unknown_idf) ** 2 for count in unknown))
        spans = [slice(self._starts[column], self._starts[column + 1]) for column in columns]
        rows = np.concatenate([self._rows[span] for span in spans])
        weights = np.concatenate([self._weights[span] for span in spans])
        weights *= np.repeat(query_weights / norm, self._document_frequency[columns])
        return np.bincount(rows, weights=weights, minlength=len(self.sources))

    def nearest(self, queries, k=1):
        """The `k` training pairs whose sources are most similar to each query, best first (ties: lowest index).

        Args:
            queries: a list of source texts.
            k: how many pairs to return per query, at most the number of training pairs.

        Returns:
            `(indices, scores)`: two `(len(queries), k)` arrays, the indices into `pairs` (int64) and their cosine
            similarities in [0, 1] (float64).
        """
        queries = _queries(queries)
        k = require_positive_int("k", k)
        if k > len(self.sources):
            raise ValueError(f"k={k} is invalid: expected at most the {len(self.sources)} training pairs.")
        indices = np.zeros((len(queries), k), np.int64)
        scores = np.zeros((len(queries), k), np.float64)
        for row, query in enumerate(queries):
            similarity = self.similarities(query)
            indices[row] = np.argsort(-similarity, kind="stable")[:k]  # stable: equal scores keep index order
            scores[row] = similarity[indices[row]]
        return indices, scores

    def translate(self, queries):
        """The target of the nearest training pair for each of `queries`, or `fallback` when a query shares no
        n-gram with any training source, as a list of `str`."""
        indices, scores = self.nearest(queries, k=1)
        return [self.targets[index] if score > 0 else self.fallback for index, score in
                zip(indices[:, 0], scores[:, 0])]


def char_ngrams(text, ngram_range=(1, 3)):
    """The character n-grams of `text` after `NearestNeighbourRetrieval`'s normalization (lowercase, one space per
    whitespace run, stripped), shortest first, in text order.

    >>> char_ngrams("  The\\tcat ", (1, 2))
    ['t', 'h', 'e', ' ', 'c', 'a', 't', 'th', 'he', 'e ', ' c', 'ca', 'at']
    >>> char_ngrams("谢谢你", (2, 3))
    ['谢谢', '谢你', '谢谢你']
    """
    min_n, max_n = _ngram_range(ngram_range)
    text = " ".join(text.lower().split())
    return [text[start : start + n] for n in range(min_n, max_n + 1) for start in range(len(text) - n + 1)]


def _source_and_target_texts(pairs, source, target):
    """The `source` and `target` texts of the parallel `pairs` (dicts), as two tuples of `str`.

    Raises:
        ValueError: no pairs, `source == target`, or a pair missing a key or holding a text that is not a `str`.

    >>> _source_and_target_texts([{"en": "Thanks.", "zh": "谢谢。", "ref": 7}], source="zh", target="en")
    (('谢谢。',), ('Thanks.',))
    """
    if source == target:
        raise ValueError(f"source={source!r} and target={target!r} are the same: expected two different keys.")
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs is empty: expected at least one training pair.")
    texts = {source: [], target: []}
    for index, pair in enumerate(pairs):
        for key in (source, target):
            if key not in pair:
                raise ValueError(
                    f"pairs[{index}] has no {key!r} key (its keys: {', '.join(map(repr, pair))}): expected "
                    f"source={source!r} and target={target!r} in every pair."
                )
            if not isinstance(pair[key], str):
                raise ValueError(f"pairs[{index}][{key!r}] is a {type(pair[key]).__name__}: expected a str.")
            texts[key].append(pair[key])
    return tuple(texts[source]), tuple(texts[target])


def _ngram_range(ngram_range):
    if not isinstance(ngram_range, (tuple, list)) or len(ngram_range) != 2:
        raise ValueError(f"ngram_range={ngram_range!r} is invalid: expected a pair (min_n, max_n), e.g. (1, 3).")
    min_n, max_n = ngram_range
    require_positive_int("ngram_range[0]", min_n)
    require_int_at_least("ngram_range[1]", max_n, min_n, f" (ngram_range[0]={min_n})")
    return int(min_n), int(max_n)


def _queries(queries):
    if isinstance(queries, str):
        raise ValueError("queries is one string: expected a list of source texts (wrap a single one as [query]).")
    queries = list(queries)
    for index, query in enumerate(queries):
        if not isinstance(query, str):
            raise ValueError(f"queries[{index}] is a {type(query).__name__}: expected a str.")
    return queries
