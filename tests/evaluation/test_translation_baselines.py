"""The translation baselines: the most common target, and nearest-neighbour retrieval by character n-gram TF-IDF."""

import math

import numpy as np
import pytest

from tfllm.evaluation import MostCommonTarget, NearestNeighbourRetrieval

PAIRS = [
    {"en": "Good morning.", "zh": "早上好。", "ref": 0},
    {"en": "Thank you very much.", "zh": "非常感谢。", "ref": 1},
    {"en": "Good night.", "zh": "晚安。", "ref": 2},
    {"en": "Many thanks!", "zh": "非常感谢。", "ref": 3},
]


def test_most_common_target_answers_the_commonest_target_and_breaks_ties_by_length_then_code_points():
    baseline = MostCommonTarget(PAIRS, source="en", target="zh")
    assert (baseline.answer, baseline.count) == ("非常感谢。", 2)
    assert baseline.translate(["Good night.", "", "anything"]) == ["非常感谢。"] * 3
    # All once: the shortest wins, then the first in code-point order, whatever the order of the pairs.
    tied = [{"zh": "x", "en": text} for text in ("Hello there.", "Hi!", "Bye.", "Ok.")]
    assert MostCommonTarget(tied, "zh", "en").answer == "Hi!"
    assert MostCommonTarget(tied[::-1], "zh", "en").answer == "Hi!"
    assert MostCommonTarget(tied + [tied[0]], "zh", "en").answer == "Hello there."


def test_retrieval_answers_the_target_of_the_source_sharing_most_ngrams():
    memory = NearestNeighbourRetrieval(PAIRS, source="en", target="zh")
    assert memory.translate(["good night!", "thank you", "morning"]) == ["晚安。", "非常感谢。", "早上好。"]
    memory = NearestNeighbourRetrieval(PAIRS, source="zh", target="en")
    assert memory.translate(["晚安", "早上好", "感谢"]) == ["Good night.", "Good morning.", "Thank you very much."]


def test_similarities_match_a_hand_computed_tfidf_cosine():
    # Unigrams of "aab" and "bc": idf(a) = idf(c) = log(3/2) + 1 = u, idf(b) = log(3/3) + 1 = 1.
    memory = NearestNeighbourRetrieval([{"s": "aab", "t": "0"}, {"s": "bc", "t": "1"}], "s", "t", ngram_range=(1, 1))
    u = math.log(1.5) + 1
    want = [(2 * u * u + 1) / math.sqrt((4 * u * u + 1) * (u * u + 1)), 1 / (u * u + 1)]  # "ab" = (u, 1, 0)
    np.testing.assert_allclose(memory.similarities("ab"), want, rtol=1e-12)
    np.testing.assert_allclose(want, [0.9619850746657785, 0.3360969272762574], rtol=1e-12)  # golden
    # "z" is in no source: it counts in the query's length with df = 0, idf = log(3) + 1.
    scale = math.sqrt((u * u + 1) / (u * u + 1 + (math.log(3) + 1) ** 2))
    np.testing.assert_allclose(memory.similarities("abz"), np.multiply(want, scale), rtol=1e-12)


def test_similarities_match_scikit_learns_char_tfidf():
    # TfidfVectorizer(analyzer="char", ngram_range=(1, 3)) of scikit-learn 1.9.1 on the lowercased sources (every
    # n-gram of these queries is in a source, so the two agree on scores as well as on ranking).
    memory = NearestNeighbourRetrieval(PAIRS, source="en", target="zh")
    np.testing.assert_allclose(
        memory.similarities("good night"),
        [0.4818880896382971, 0.09630775199605825, 0.946455344306465, 0.06884519168623328], rtol=1e-12)
    np.testing.assert_allclose(
        memory.similarities("thank you"),
        [0.09066244613081866, 0.6649775820935182, 0.10977812581803362, 0.4233598171889315], rtol=1e-12)


def test_text_is_lowercased_and_whitespace_runs_become_one_space():
    memory = NearestNeighbourRetrieval(PAIRS, source="en", target="zh")
    np.testing.assert_array_equal(memory.similarities("  GOOD \t\n night "), memory.similarities("good night"))
    assert not np.array_equal(memory.similarities("goodnight"), memory.similarities("good night"))


def test_nearest_ranks_best_first_and_ties_go_to_the_lowest_index():
    pairs = [*PAIRS, {"en": "Good night.", "zh": "晚安！", "ref": 4}]  # the same source as pair 2
    indices, scores = NearestNeighbourRetrieval(pairs, "en", "zh").nearest(["good night", "MANY thanks!"], k=3)
    assert indices.shape == scores.shape == (2, 3)
    assert indices.dtype == np.int64 and scores.dtype == np.float64
    assert indices[0].tolist() == [2, 4, 0]
    assert scores[0, 0] == scores[0, 1] > scores[0, 2] > 0
    assert indices[1, 0] == 3 and scores[1, 0] == pytest.approx(1.0)  # pair 3's source, once lowercased
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_a_query_sharing_no_ngram_scores_zero_everywhere_and_gets_the_most_common_target():
    memory = NearestNeighbourRetrieval(PAIRS, source="en", target="zh")
    indices, scores = memory.nearest(["zzz", ""], k=2)
    assert indices.tolist() == [[0, 1], [0, 1]]
    assert scores.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert memory.fallback == MostCommonTarget(PAIRS, "en", "zh").answer == "非常感谢。"
    assert memory.translate(["zzz", "", "good night"]) == ["非常感谢。", "非常感谢。", "晚安。"]


@pytest.mark.parametrize("baseline", [MostCommonTarget, NearestNeighbourRetrieval])
def test_errors_name_the_pair_the_key_and_the_direction(baseline):
    with pytest.raises(ValueError, match="pairs is empty"):
        baseline([], source="zh", target="en")
    with pytest.raises(ValueError, match=r"pairs\[1\] has no 'zh' key \(its keys: 'en', 'ref'\): expected source="):
        baseline([PAIRS[0], {"en": "Hi.", "ref": 9}], source="en", target="zh")
    with pytest.raises(ValueError, match="source='en' and target='en' are the same"):
        baseline(PAIRS, source="en", target="en")
    with pytest.raises(ValueError, match=r"pairs\[0\]\['en'\] is a NoneType: expected a str"):
        baseline([{"en": None, "zh": "你好"}], source="zh", target="en")
    with pytest.raises(ValueError, match="queries is one string"):
        baseline(PAIRS, source="zh", target="en").translate("你好")


def test_retrieval_rejects_a_bad_k_or_ngram_range():
    memory = NearestNeighbourRetrieval(PAIRS, source="en", target="zh")
    with pytest.raises(ValueError, match="k=5 is invalid: expected at most the 4 training pairs"):
        memory.nearest(["good night"], k=5)
    with pytest.raises(ValueError, match="k=0 is invalid"):
        memory.nearest(["good night"], k=0)
    with pytest.raises(ValueError, match=r"ngram_range\[1\]=1 is invalid: expected an integer >= 2"):
        NearestNeighbourRetrieval(PAIRS, "en", "zh", ngram_range=(2, 1))
    with pytest.raises(ValueError, match=r"ngram_range=3 is invalid: expected a pair"):
        NearestNeighbourRetrieval(PAIRS, "en", "zh", ngram_range=3)
