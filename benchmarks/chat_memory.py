"""How the chat memory's similarity weight was chosen: chrF on the validation conversations of a chat run.

`tfllm.evaluation.ChatMemory` scores each candidate reply (the replies of the 8 training exchanges whose questions
are most similar to the user's) by the model's mean log-likelihood of the reply plus `similarity_weight` times the
log similarity of its question. This script measures, on the validation split of a finished `tfllm train --task
chat` run (never its test split), chrF2 (sacrebleu) per language for a range of weights and candidate counts, and
the exact match on the run's 100 training questions; retrieval alone is the infinite weight.

    python benchmarks/chat_memory.py runs/transformer-chatterbot
    python benchmarks/chat_memory.py RUN_DIR --weights 0 2 8 --candidates 8

It prints one Markdown table. A run takes a minute or two on 2 CPU cores (the model scores every candidate).
"""

import argparse
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--weights", type=float, nargs="+", default=[0, 1, 2, 4, 8, 16, 32, math.inf])
    parser.add_argument("--candidates", type=int, nargs="+", default=[8, 16])
    args = parser.parse_args()

    from tfllm.data import dialog_exchanges
    from tfllm.evaluation import ChatMemory, accepted_replies, chat_scores, exact_match
    from tfllm.training import load_run
    from tfllm.training.chat_task import read_dialog_texts, training_questions

    run = load_run(args.run_dir)
    texts = read_dialog_texts(run.config.data)
    exchanges = dialog_exchanges(texts.validation)
    contexts = [exchange["context"] for exchange in exchanges]
    references = [exchange["reply"] for exchange in exchanges]
    languages = [exchange["language"] for exchange in exchanges]
    questions = [exchange["context"] for exchange in training_questions(texts.train)]
    accepted = accepted_replies(texts.train, questions)
    print(f"Validation: {len(exchanges)} replies of {args.run_dir}; chrF2 by sacrebleu\n")
    print("| candidates | similarity weight | en chrF | zh chrF | all chrF | training questions exact match |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k in args.candidates:
        for weight in args.weights:
            memory = ChatMemory(texts.train, k=k, similarity_weight=1e9 if math.isinf(weight) else weight)
            scores = chat_scores(memory.replies(run.model, contexts), references, languages)
            trained = exact_match(memory.replies(run.model, questions), accepted)
            cells = [f"{scores[language]['chrf']:.1f}" if language in scores else "-" for language in ("en", "zh")]
            name = "retrieval (infinite)" if math.isinf(weight) else f"{weight:g}"
            print(f"| {k} | {name} | {' | '.join(cells)} | {scores['all']['chrf']:.1f} | {trained:.0%} |", flush=True)


if __name__ == "__main__":
    main()
