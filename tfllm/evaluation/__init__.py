"""Evaluation written once for every model: per-token scoring, exact perplexity and bits per byte, the memorization
check, the share of generated words that a corpus uses, translation and chat scores with the baselines to beat, and
the translation and chat memories the model chooses from.

A model is seen through its decode contract (`tokenizer`, `decode`, `generate`, ...), never its class, so this
package imports nothing of `tfllm.models`; `CausalLM.score`, training and export ask it.
"""

from tfllm.evaluation.chat_baselines import MostCommonReply, RetrievalReply
from tfllm.evaluation.chat_memory import ChatMemory, reply_log_likelihoods
from tfllm.evaluation.chat_metrics import accepted_replies, chat_scores, exact_match, reply_language
from tfllm.evaluation.memorization import MemorizationReport, memorization_rate, memorization_report
from tfllm.evaluation.perplexity import EvaluationResult, evaluate_corpus, evaluate_texts
from tfllm.evaluation.scoring import sliding_windows, token_log_likelihoods
from tfllm.evaluation.translation_baselines import MostCommonTarget, NearestNeighbourRetrieval
from tfllm.evaluation.translation_memory import TranslationMemory, candidate_log_likelihoods, memory_translations
from tfllm.evaluation.translation_metrics import TranslationScores, translation_scores
from tfllm.evaluation.word_share import corpus_words, known_word_share

__all__ = [
    # Exact perplexity and bits per byte over whole texts.
    "EvaluationResult",
    "evaluate_corpus",
    "evaluate_texts",
    # Does the model recite its training text?
    "MemorizationReport",
    "memorization_rate",
    "memorization_report",
    # The per-token scores behind `CausalLM.score` and the numbers above.
    "sliding_windows",
    "token_log_likelihoods",
    # Does generated text use the corpus's words?
    "corpus_words",
    "known_word_share",
    # How good is a translation, and what must a model beat?
    "TranslationScores",
    "translation_scores",
    "MostCommonTarget",
    "NearestNeighbourRetrieval",
    # The model and the training pairs together: retrieved candidates, chosen by the model both ways.
    "TranslationMemory",
    "candidate_log_likelihoods",
    "memory_translations",
    # Chat: how good is a reply, what must a model beat, and the training replies chosen by the model.
    "chat_scores",
    "exact_match",
    "accepted_replies",
    "reply_language",
    "MostCommonReply",
    "RetrievalReply",
    "ChatMemory",
    "reply_log_likelihoods",
]
