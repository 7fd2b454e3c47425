"""How good is a translation? Corpus-level chrF and BLEU, computed by sacrebleu's reference implementations.

chrF (Popović, 2015; sacrebleu's default chrF2: character n-grams up to 6, recall weighted twice as much as
precision) needs no word segmentation, so it reads English and Chinese alike. BLEU (Papineni et al., 2002) counts
word n-grams, so it needs a tokenizer: sacrebleu's `13a` (the WMT standard) splits English on spaces and
punctuation, but it leaves unsegmented Chinese as one "word" per clause, so Chinese targets use sacrebleu's `zh`
tokenizer, which makes each Chinese character a token. Each score comes with sacrebleu's signature string, so a
report states exactly what was measured (Post, "A Call for Clarity in Reporting BLEU Scores", 2018).
"""

import dataclasses

from sacrebleu.metrics import BLEU, CHRF

from tfllm.checks import require_texts

# The sacrebleu BLEU tokenizer of each target language that tfllm translates into.
BLEU_TOKENIZERS = {"en": "13a", "zh": "zh"}


@dataclasses.dataclass(frozen=True)
class TranslationScores:
    """Corpus-level chrF and BLEU (0-100, higher is better) of `sentences` translations into `target_language`,
    with the sacrebleu signatures that say how each was computed.

    Example:

    >>> scores = TranslationScores(chrf=63.92, bleu=59.42, sentences=2, target_language="zh",
    ...                            chrf_signature="nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0",
    ...                            bleu_signature="nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:2.6.0")
    >>> print(scores)  # doctest: +NORMALIZE_WHITESPACE
    chrF2 63.92, BLEU 59.42 on 2 sentences into zh
    (chrF2 nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0;
    BLEU nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:2.6.0)
    """

    chrf: float
    bleu: float
    sentences: int
    target_language: str
    chrf_signature: str
    bleu_signature: str

    def __str__(self):
        return (
            f"chrF2 {self.chrf:.2f}, BLEU {self.bleu:.2f} on {self.sentences} sentences into {self.target_language} "
            f"(chrF2 {self.chrf_signature}; BLEU {self.bleu_signature})"
        )


def translation_scores(hypotheses, references, target_language):
    """Corpus-level chrF2 and BLEU of `hypotheses` against `references` (one reference each), as
    `TranslationScores`.

    chrF is sacrebleu's `CHRF()` with its defaults; BLEU is `BLEU(tokenize=BLEU_TOKENIZERS[target_language])`:
    `zh` for Chinese, `13a` for English. Both are corpus scores (n-gram statistics summed over all sentences, then
    combined), not means of sentence scores.

    Args:
        hypotheses: the system's translations, a list of `str`.
        references: the reference translations, a list of `str` as long as `hypotheses`.
        target_language: the language both are written in, one of `BLEU_TOKENIZERS` ("en", "zh").

    Returns:
        A `TranslationScores`.

    Raises:
        ValueError: an unknown `target_language`, empty lists, lists of different lengths, or a text that is not a
            `str`.

    Example:

    >>> scores = translation_scores(["天气很好。", "我喜欢喝茶。"], ["天气很好。", "我爱喝茶。"], "zh")
    >>> round(scores.chrf, 2), round(scores.bleu, 2), scores.sentences
    (63.92, 59.42, 2)
    >>> scores.bleu_signature.split("|")[3]
    'tok:zh'
    >>> translation_scores(["Hello."], [], "en")
    Traceback (most recent call last):
    ...
    ValueError: hypotheses has 1 sentences but references has 0: expected one reference per hypothesis.
    """
    tokenizer = _bleu_tokenizer(target_language)
    hypotheses = require_texts("hypotheses", hypotheses)
    references = require_texts("references", references)
    if len(hypotheses) != len(references):
        raise ValueError(
            f"hypotheses has {len(hypotheses)} sentences but references has {len(references)}: expected one "
            "reference per hypothesis."
        )
    if not hypotheses:
        raise ValueError("hypotheses and references are empty: expected at least one sentence to score.")
    chrf, bleu = CHRF(), BLEU(tokenize=tokenizer)
    return TranslationScores(
        chrf=chrf.corpus_score(hypotheses, [references]).score,
        bleu=bleu.corpus_score(hypotheses, [references]).score,
        sentences=len(hypotheses),
        target_language=target_language,
        chrf_signature=str(chrf.get_signature()),
        bleu_signature=str(bleu.get_signature()),
    )


def _bleu_tokenizer(target_language):
    if not isinstance(target_language, str) or target_language not in BLEU_TOKENIZERS:
        raise ValueError(
            f"target_language={target_language!r} is invalid: expected one of "
            f"{', '.join(map(repr, BLEU_TOKENIZERS))} (each has its BLEU tokenizer in BLEU_TOKENIZERS)."
        )
    return BLEU_TOKENIZERS[target_language]
