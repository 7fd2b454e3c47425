"""The translation task of a training run (`data.task="translate"`, `tfllm train --task translate`).

One decoder-only model learns both directions between English and Chinese, the language-model way: each pair of
the parallel corpus (`tfllm.data.load_parallel_corpus`) becomes two records, `<en>source<zh>` -> target and
`<zh>source<en>` -> target, with the loss on the target only (`TranslationTemplate`), packed several to a row
(`pack_sequences`). The tokenizer
learns one joint vocabulary from both sides, with the language tags as special tokens. With the HSK corpus, the
training split's word glosses are extra pairs. Validation is the loss of the validation split's records; the
weights of the best validation are kept (`BestWeights`), since a few thousand short pairs overfit.

The figures of a run (`translation_report`) are the field's: chrF and BLEU (sacrebleu) of greedy translations of
the test split in each direction, beside the same metrics for two baselines on the same sentences, the most common
training target and nearest-neighbour retrieval (`tfllm.evaluation.translation_baselines`), so that the numbers
mean something, and the model with its translation memory (`tfllm.evaluation.TranslationMemory`: the nearest
training targets, chosen by the model).
"""

import dataclasses

import tensorflow as tf

from tfllm.data import TranslationTemplate, load_parallel_corpus, parallel_texts
from tfllm.data.parallel import LANGUAGES, is_gloss
from tfllm.evaluation import MostCommonTarget, TranslationMemory, translation_scores
from tfllm.training.builders import build_packed_rows, build_record_validation_batches

# The textbook's own example, both ways, translated in every report.
EXAMPLES = ({"source": "天气如何？", "target_language": "en"}, {"source": "今天天气很好。", "target_language": "en"},
            {"source": "How is the weather?", "target_language": "zh"},
            {"source": "The weather is very nice today.", "target_language": "zh"})


@dataclasses.dataclass(frozen=True)
class ParallelTexts:
    """The pairs of a translation run, by split (lists of `{"en", "zh", "ref"}` dicts); `train` holds the word
    glosses of the HSK corpus too (`tfllm.data.parallel.is_gloss`)."""

    train: list
    validation: list
    test: list

    @property
    def train_sentences(self):
        """The training pairs without the glosses: what the baselines look up."""
        return [pair for pair in self.train if not is_gloss(pair)]


def task_template():
    """The prompt template of every translation run: English and Chinese, both directions."""
    return TranslationTemplate(LANGUAGES)


def read_parallel_texts(data_config):
    """The train (with the glosses, for the HSK corpus; `data_config.train_pairs` of them), validation and test
    pairs of `data_config.corpus`."""
    corpus = data_config.corpus
    return ParallelTexts(
        train=load_parallel_corpus(corpus, "train", include_glosses=corpus == "hsk",
                                   train_pairs=data_config.train_pairs),
        validation=load_parallel_corpus(corpus, "validation"),
        test=load_parallel_corpus(corpus, "test"),
    )


def tokenizer_texts(texts):
    """What the joint vocabulary learns from: both sides of every training pair."""
    return [text for language in LANGUAGES for text in parallel_texts(texts.train, language)]


def train_batches(train_config, tokenizer, texts, start_step=0):
    """Batches `start_step + 1 .. train_config.steps` of the run: `(x, y, sample_weight)` int32/int32/float32
    (B, T), the records of both directions packed several to a row (`tfllm.data.pack_sequences`: a pair is about 20
    tokens), pass k over them in the order of the seed `train_config.seed * 100003 + k` (fixed, so a resumed run or
    another worker sees the same batches)."""
    config = train_config
    sequences, weights = _record_tokens(tokenizer, task_template().directed(texts.train))
    rows = build_packed_rows(config, sequences, weights, config.steps, tokenizer.fill_id)
    x, y, weight = (part[start_step * config.batch_size:] for part in rows)
    return tf.data.Dataset.from_tensor_slices((x, y, weight)).batch(config.batch_size, drop_remainder=True)


def _record_tokens(tokenizer, records):
    """Each record's `[bos, prompt..., target..., eos]` ids, and the loss weights: 1 on the target and eos."""
    template = task_template()
    segments = [template.segments(record) for record in records]
    prompts = tokenizer.tokenize(tf.constant([segment[0][0] for segment in segments])).to_list()
    targets = tokenizer.tokenize(tf.constant([segment[1][0] for segment in segments])).to_list()
    bos, eos = tokenizer.bos_id, tokenizer.eos_id
    sequences = [[bos, *prompt, *target, eos] for prompt, target in zip(prompts, targets)]
    weights = [[0.0] * (1 + len(prompt)) + [1.0] * (len(target) + 1) for prompt, target in zip(prompts, targets)]
    return sequences, weights


def validation_batches(train_config, tokenizer, texts):
    """The validation records of both directions, every one, in order (`ValidationData`)."""
    template = task_template()
    return build_record_validation_batches(train_config, template.directed(texts.validation), tokenizer, template)


def translation_report(model, texts, num_beams=None):
    """chrF and BLEU of `model`'s translations of the test split, each direction, beside the two baselines, and
    the textbook's examples: a JSON-ready dict.

    Args:
        model: a model with a `TranslationTemplate` (its `translate`).
        texts: the run's `ParallelTexts`.
        num_beams: also score beam search with this many beams (slower); None scores greedy decoding only.
    """
    report = {"test_sentences": len(texts.test), "directions": {}}
    memory = TranslationMemory(texts.train_sentences)
    for source, target in ((a, b) for a in LANGUAGES for b in LANGUAGES if a != b):
        sources = [pair[source] for pair in texts.test]
        references = [pair[target] for pair in texts.test]
        systems = {"greedy": model.translate(sources, target=target)}
        if num_beams:
            systems[f"beam{num_beams}"] = model.translate(sources, target=target, num_beams=num_beams)
        systems["memory"] = model.translate(sources, target=target, memory=memory)
        systems["most_common"] = MostCommonTarget(texts.train_sentences, source, target).translate(sources)
        systems["retrieval"] = memory.retrieval(source, target).translate(sources)
        scores = {name: translation_scores(hypotheses, references, target) for name, hypotheses in systems.items()}
        report["directions"][f"{source}->{target}"] = {
            "systems": {name: {"chrf": score.chrf, "bleu": score.bleu} for name, score in scores.items()},
            "signatures": {"chrf": scores["greedy"].chrf_signature, "bleu": scores["greedy"].bleu_signature},
            "samples": [{"source": s, "reference": r, "greedy": g, "memory": m}
                        for s, r, g, m in list(zip(sources, references, systems["greedy"], systems["memory"]))[:5]],
        }
    report["examples"] = [
        {**example, "translation": model.translate(example["source"], target=example["target_language"]),
         "with_memory": model.translate(example["source"], target=example["target_language"], memory=memory)}
        for example in EXAMPLES]
    return report


def report_lines(report):
    """The report as a few lines of text: one per direction and system, then the examples."""
    lines = [f"Test split: {report['test_sentences']} sentences; chrF2 / BLEU (sacrebleu)"]
    for direction, figures in report["directions"].items():
        figures = ", ".join(f"{name} {values['chrf']:.1f} / {values['bleu']:.1f}"
                            for name, values in figures["systems"].items())
        lines.append(f"  {direction}: {figures}")
    lines += [f"  {example['source']} -> {example['translation']} (with the memory: {example['with_memory']})"
              for example in report["examples"]]
    return lines
