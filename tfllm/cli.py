"""The `tfllm` command. Each subcommand parses its flags and calls one function of the library.

    tfllm train [--model transformer|lstm|rnn] [--corpus kjv|PATH] [--tokenizer ...] [--steps N] [--output-dir DIR]
    tfllm evaluate RUN_DIR [--corpus NAME|PATH] [--split validation] [--json]
    tfllm generate RUN_DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-p P] [--stream] [--json] [--raw]
    tfllm chat RUN_DIR [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--memory]
    tfllm finetune RUN_DIR --task sft|classify|continue --data PATH [--output-dir DIR]
    tfllm export RUN_DIR OUT_DIR
    tfllm convert SRC OUT_RUN_DIR [--overwrite]

The flags of `train` and `finetune` are made from the config sections (`tfllm.training.config`): every key of a
section has a flag named after it (`train.batch_size`: `--batch-size`; the few shorter names are `FLAG_NAMES`), typed
by its field and described by its section's docstring; `--set SECTION.KEY=VALUE` sets any key too, the value read as
YAML and checked by the config. Building the parser loads no TensorFlow, so `tfllm --help` answers at once.

Bad input (an unknown option, a missing run directory, a damaged file, a config with unknown keys) ends with exit
status 2 and one line naming the problem, before any long work. Any other failure ends with exit status 1 and one line
pointing to its traceback, written to `error.log` in the run directory. `--debug` shows the traceback instead.
"""

import argparse
import contextlib
import dataclasses
import inspect
import io
import itertools
import json
import os
import re
import shlex
import sys
import tempfile
import traceback
import types
import typing
import warnings

import yaml

import tfllm
from tfllm import xla_flags
from tfllm.checks import require_int32, require_int32_at_least, require_number_at_least, require_probability
from tfllm.choices import STRATEGIES
from tfllm.defaults import MAX_BATCH_SIZE, MAX_NEW_TOKENS, MAX_NEW_TOKENS_LIMIT
from tfllm.training.config import FinetuneConfig, RunConfig, absolute_data_path

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command whose reader went away (`| head -1`)
ERROR_LOG = "error.log"  # in the run directory: the traceback of a command that failed (exit status 1)
# How `tfllm generate` draws unless its flags say otherwise: as a run's samples do by default.
_SAMPLES = RunConfig.default().train
GENERATE_DRAW = {"temperature": _SAMPLES.sample_temperature, "top_p": _SAMPLES.sample_top_p}

# The flags not named after their key (every other key of a section has the flag `--key-name`).
FLAG_NAMES = {
    "model.architecture": "model",
    "model.num_layers": "layers",
    "model.num_heads": "heads",
    "model.max_sequence_length": "context",
    "train.gradient_accumulation_steps": "gradient-accumulation",
    "train.time_budget_minutes": "time-budget",
}
EVALUATE_NUM_BEAMS = 4  # the beams of the beam search a translation run's evaluation scores beside greedy decoding


class BadInput(ValueError):
    """A problem with what the user gave, reported as one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), pointing at --help."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _YAMLLoader(yaml.SafeLoader):
    """YAML as PyYAML reads it, but with YAML 1.2's floats: `1e-3` is a number, not a string."""


_YAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+.0123456789")
)


def build_parser():
    parser = _Parser(
        prog="tfllm",
        description="Train, evaluate, fine-tune, sample from and export language models with TensorFlow and Keras.",
        epilog="Start with `tfllm train`: a Transformer on the embedded King James Bible, within 10 minutes on a "
               "2-core CPU. `tfllm train --task translate` trains English <-> Chinese translation. `tfllm COMMAND "
               "--help` tells more.",
    )
    parser.add_argument("--version", action="version", version=f"tfllm {tfllm.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_train(commands)
    _add_evaluate(commands)
    _add_generate(commands)
    _add_translate(commands)
    _add_chat(commands)
    _add_finetune(commands)
    _add_export(commands)
    _add_convert(commands)
    return parser


def _strategy_flags(parser):
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto",
                        help="tf.distribute strategy: auto (TPU, else all GPUs, else the CPU), cpu, mirrored (all GPUs "
                             "of this host), multiworker (hosts of TF_CONFIG), tpu")
    parser.add_argument("--logical-cpus", type=int, metavar="N",
                        help="split the CPU into N logical devices (to try --strategy mirrored without GPUs)")


def _debug_flag(parser):
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def _config_flags(parser, sections, defaults_filled):
    """A flag for every key of `sections` (`{name: section class}`), in a group per section, and `--set`.

    The flag of `section.key` is `--key` with dashes (or `FLAG_NAMES`'), stored under the dest `section.key`,
    absent when not given (so a flag can set None). A key without a default (when `defaults_filled` is False: a field
    without one) is required, by its flag or by `--set` (`_require_keys` names those missing)."""
    for section, kind in sections.items():
        group = parser.add_argument_group(f"{section} settings ({kind.__name__}; every key also by --set "
                                          f"{section}.KEY=VALUE)")
        hints, docs = typing.get_type_hints(kind), _attribute_docs(kind)
        for field in dataclasses.fields(kind):
            key = f"{section}.{field.name}"
            required = not defaults_filled and field.default is dataclasses.MISSING
            help_text = docs.get(field.name, "").replace("%", "%%") + (" (required)" if required else "")
            group.add_argument(_flag_name(key), dest=key, default=argparse.SUPPRESS, help=help_text,
                               **_flag_options(field, hints[field.name]))
    example = ("train.sample_prompts='[In the beginning, And God said]'" if "train" in sections else
               f"{next(iter(sections))}.seed=1")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"set any key of the config (repeatable), the value read as YAML, e.g. --set {example}")


def _flag_name(key):
    """The flag of the config key `key` ("section.name"): `--name` with dashes, or its `FLAG_NAMES` entry."""
    return f"--{FLAG_NAMES.get(key, key.split('.', 1)[1].replace('_', '-'))}"


def _require_keys(values, section, kind):
    """Refuses, naming their flags, the keys of `kind` without a default that neither a flag nor --set gave."""
    missing = [_flag_name(f"{section}.{field.name}") for field in dataclasses.fields(kind)
               if field.default is dataclasses.MISSING and field.name not in values]
    if missing:
        raise BadInput(f"the following arguments are required: {', '.join(missing)} (or --set "
                       f"{section}.KEY=VALUE)")


def _flag_options(field, annotation):
    """How argparse reads the flag of `field`: by its type, with its choices."""
    choices = field.metadata.get("choices")
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(annotation) is tuple:
        return {"nargs": "+", "metavar": "TEXT"}
    if isinstance(annotation, types.UnionType):  # e.g. int | None, str | bool: read as YAML, checked by the config
        shown = "|".join(str(choice).lower() for choice in choices) if choices else _metavar(field, annotation)
        return {"type": _yaml_value, "metavar": shown}
    options = {"type": annotation, "metavar": _metavar(field, annotation)}
    if choices:
        options.update(choices=choices, metavar=None)
    return options


def _metavar(field, annotation):
    members = [member for member in typing.get_args(annotation) or (annotation,) if member is not type(None)]
    names = [{int: "N", float: "X"}.get(member, field.name.upper()) for member in members]
    return "|".join(names) + ("|none" if type(None) in typing.get_args(annotation) else "")


def _attribute_docs(kind):
    """The descriptions of a section's fields, from the Attributes of its docstring, by name."""
    docs, name = {}, None
    text = inspect.getdoc(kind) or ""
    for line in text.split("Attributes:", 1)[-1].splitlines()[1:] if "Attributes:" in text else []:
        entry = re.match(r"    (\w+): (.*)", line)
        if entry:
            name, docs[entry[1]] = entry[1], entry[2]
        elif name and line.startswith("        "):
            docs[name] += " " + line.strip()
        else:
            break
    return docs


def _yaml_value(text):
    """A flag's or `--set`'s value, read as YAML (`none` too means null)."""
    if text.strip().lower() == "none":
        return None
    try:
        return yaml.load(text, Loader=_YAMLLoader)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a YAML value ({str(error).splitlines()[0]})") from None


def _command_line_values(args, sections):
    """The config keys the command line sets, as `{section: {key: value}}`: the flags, then `--set`."""
    values, given = {}, vars(args)
    for section, kind in sections.items():
        for field in dataclasses.fields(kind):
            if f"{section}.{field.name}" in given:
                values.setdefault(section, {})[field.name] = given[f"{section}.{field.name}"]
    for item in args.set:
        setting = re.fullmatch(r"(\w+)\.(\w+)=(.*)", item, flags=re.DOTALL)
        if not setting:
            raise BadInput(f"--set {item} is invalid: expected SECTION.KEY=VALUE, e.g. --set train.steps=100")
        section, key, text = setting.groups()
        if section not in sections:
            raise BadInput(f"--set {item} names the unknown section {section}: expected {', '.join(sections)}")
        if key in values.get(section, {}):
            raise BadInput(f"--set {item} sets {section}.{key} a second time on the command line: give it once")
        try:
            values.setdefault(section, {})[key] = _yaml_value(text)
        except argparse.ArgumentTypeError as error:
            raise BadInput(f"--set {item}: {error}") from None
    return values


def _add_train(commands):
    parser = commands.add_parser(
        "train", help="pretrain a language model into a run directory (resumes an unfinished one)",
        description="Pretrain a language model on a corpus into a run directory: run.json, config.json, "
                    "model.keras, checkpoints, TensorBoard logs, metrics.json, history.json, loss_curve.png, "
                    "samples.txt (and template.json for a task with a prompt template). With no options: the "
                    "default Transformer on the embedded King James Bible. Running the same command again resumes "
                    "an interrupted run from its last checkpoint; a complete run is kept unless --overwrite. Every "
                    "key of the config has a flag; the flags and --set override --config.",
    )
    parser.add_argument("--config", metavar="FILE",
                        help="a JSON or YAML file of config sections (model, data, train); flags override it")
    _strategy_flags(parser)
    parser.add_argument("--output-dir", metavar="DIR", help="the run directory (default: runs/MODEL-CORPUS); with "
                        "--strategy multiworker, on storage every worker shares")
    parser.add_argument("--overwrite", action="store_true", help="train again over a run already in --output-dir")
    parser.add_argument("--quiet", action="store_true", help="no progress bars, only the final lines")
    _debug_flag(parser)
    _config_flags(parser, RunConfig.sections(), defaults_filled=True)
    parser.set_defaults(run=_train)


def _add_evaluate(commands):
    parser = commands.add_parser(
        "evaluate", help="exact perplexity and bits per byte of a run's model on a corpus split",
        description="Evaluate the model of a run directory: every token of every text of the split predicted once "
                    "(loss, perplexity, bits per byte). A classifier run reports its held-out accuracy; a "
                    "translation run, chrF and BLEU on its test split (greedy, beam, and with its translation "
                    "memory) beside the baselines.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--corpus", metavar="NAME|PATH", help="default: the corpus the run trained on")
    parser.add_argument("--split", choices=("train", "validation", "test", "all"), default="validation")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--num-beams", type=int, metavar="N", help="a translation run: also score beam search with "
                        f"N beams (default: {EVALUATE_NUM_BEAMS}; 0 scores greedy decoding only)")
    _debug_flag(parser)
    parser.set_defaults(run=_evaluate)


def _add_generate(commands):
    parser = commands.add_parser(
        "generate", help="continue prompts with a run's model",
        description="Continue prompts with the model of a run directory. Prompts come from --prompt (repeatable), "
                    "--prompts-file (one per line), or standard input (one per line).",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--prompt", action="append", metavar="TEXT", help="a prompt (repeat for several)")
    parser.add_argument("--prompts-file", metavar="FILE", help="a file of prompts, one per line")
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, metavar="N",
                        help=f"the most tokens added to each prompt (default: {MAX_NEW_TOKENS}; less than the model's "
                             "context)")
    # The drawing flags default to None, so that one given beside --num-beams, which draws nothing, is refused.
    parser.add_argument("--temperature", type=float, metavar="T",
                        help=f"0 is greedy (default: {GENERATE_DRAW['temperature']})")
    parser.add_argument("--top-k", type=int, metavar="K",
                        help="draw among the K most likely tokens (and within --top-p's nucleus of those: --top-p 1 "
                             "keeps all K)")
    parser.add_argument("--top-p", type=float, metavar="P",
                        help=f"nucleus sampling (default: {GENERATE_DRAW['top_p']}; 1 is off)")
    parser.add_argument("--num-beams", type=int, metavar="N",
                        help="beam search with N beams (deterministic: no --temperature, --top-k or --top-p)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="the seed of the draws: the same seed gives the same text (default: 0, so a command "
                             "repeats its text; another seed gives other text)")
    parser.add_argument("--stream", action="store_true", help="print the text as it is generated")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON object per prompt, {"prompt": ..., "text": ...}, each on one line (a text '
                             "may hold line breaks, which plain output cannot tell from the next prompt's)")
    parser.add_argument("--raw", "--no-template", dest="apply_template", action="store_false",
                        help="read the prompts as they are, not wrapped in the run's prompt template (template.json); "
                             "a chat run otherwise reads each prompt as a user message and prints the reply")
    _debug_flag(parser)
    parser.set_defaults(run=_generate)


def _add_translate(commands):
    parser = commands.add_parser(
        "translate", help="translate texts with a translation run's model",
        description="Translate texts with the model of a run trained with --task translate (English <-> Chinese): "
                    "the texts given, else each line of standard input, answered as it arrives: one line out per "
                    "text, a blank one for a blank line. Texts after -- may start with a dash.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to translate (default: lines of stdin)")
    parser.add_argument("--to", dest="target", required=True, metavar="LANG", help="the target language, e.g. zh")
    parser.add_argument("--from", dest="source", metavar="LANG", help="the source language (default: the other)")
    parser.add_argument("--num-beams", type=int, metavar="N", help="beam search with N beams (default: greedy)")
    parser.add_argument("--max-new-tokens", type=int, metavar="N", help="the longest translation, in tokens "
                        "(default: 3 per source token, plus 8)")
    parser.add_argument("--memory", action="store_true",
                        help="translate with the run's training pairs as a translation memory: each text gets the "
                             "target of one of the training pairs whose source is most similar, the one the model "
                             "reads the text back from best (nothing is generated)")
    parser.add_argument("--memory-candidates", type=int, metavar="K",
                        help="training pairs retrieved per text with --memory (default 8)")
    _debug_flag(parser)
    parser.set_defaults(run=_translate)


def _add_chat(commands):
    parser = commands.add_parser(
        "chat", help="chat with a chat run's model in the terminal",
        description="Chat with the model of a run trained with --task chat. In a terminal: type a message after "
                    "'you> ', the reply is shown as it is written, the conversation is kept; /reset starts a new "
                    "one, /exit or Ctrl-D leaves. With standard input from a pipe or a file: each line is the next "
                    "user message of one conversation, and each reply is printed on its own line as soon as it is "
                    "ready.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--max-new-tokens", type=int, metavar="N", help="the longest reply, in tokens (default: "
                        f"{MAX_NEW_TOKENS}, fewer when the context is short)")
    parser.add_argument("--temperature", type=float, metavar="T", help="draw the reply at this temperature (default: "
                        "greedy; 0 is greedy)")
    parser.add_argument("--top-k", type=int, metavar="K", help="draw among the K most likely tokens")
    parser.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling (1 is off)")
    parser.add_argument("--seed", type=int, metavar="S", help="the same seed gives the same replies")
    parser.add_argument("--memory", action="store_true",
                        help="reply with one of the run's training replies: the one the model finds likeliest among "
                             "those to the training messages most similar to yours (nothing is generated)")
    parser.add_argument("--memory-candidates", type=int, metavar="K",
                        help="training replies considered per message with --memory (default 8)")
    _debug_flag(parser)
    parser.set_defaults(run=_chat)


def _add_finetune(commands):
    parser = commands.add_parser(
        "finetune", help="fine-tune a run's model into a new run directory",
        description="Fine-tune the model of a run directory: continue pretraining on another corpus, supervised "
                    "fine-tuning on prompt/completion pairs (loss on the completions only), or a classification "
                    "head on labelled texts. The new run directory records its parent. With --lora-rank R, only a "
                    "LoRA adapter trains (a Transformer's attention and MLP projections) and the run stores only "
                    "the adapter (adapter.weights.h5), rebuilding its model from the parent's; tfllm export merges "
                    "it into the exported weights.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="default: RUN_DIR-TASK (RUN_DIR-TASK-lora with --lora-rank)")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --output-dir")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    _strategy_flags(parser)
    _debug_flag(parser)
    _config_flags(parser, {"finetune": FinetuneConfig}, defaults_filled=False)
    parser.set_defaults(run=_finetune)


def _add_export(commands):
    parser = commands.add_parser(
        "export", help="write a SavedModel that serves strings, as TensorFlow Serving expects it",
        description="Export the model of a run directory as version N of a SavedModel (OUT_DIR/N/, TensorFlow "
                    "Serving's layout) with the signatures serving_default (prompts -> text, with the run's sampling "
                    "settings), generate (prompts and one setting per row -> text) and score (and translate or chat, which "
                    "is then serving_default, for a translation or chat run), loadable with tensorflow and "
                    "tensorflow-text alone; prints a REST request that works.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the model's base directory (TensorFlow Serving's "
                        "--model_base_path)")
    parser.add_argument("--version", type=int, default=1, metavar="N", help="the version to write, OUT_DIR/N/ "
                        "(default: 1); it must not exist yet, or be empty")
    parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=True,
                        help="run the decode loop under XLA (default: on, chosen by measurement: "
                             "benchmarks/export.py --xla, the README's 'SavedModel under XLA / plain graph' rows); "
                             "--no-xla for a server that does not take XLA (TensorFlow Serving counts it "
                             "experimental on CPUs)")
    parser.add_argument("--max-new-tokens", type=int, metavar="N", help="serving_default's new tokens "
                        "(default: the run's train.sample_tokens)")
    parser.add_argument("--max-new-tokens-limit", type=int, metavar="N", help="the most new tokens a request may "
                        f"ask for (default: {MAX_NEW_TOKENS_LIMIT}, or half a Transformer's context)")
    parser.add_argument("--max-batch-size", type=int, default=MAX_BATCH_SIZE, metavar="N",
                        help=f"the most texts a request may hold (default: {MAX_BATCH_SIZE})")
    _debug_flag(parser)
    parser.set_defaults(run=_export)


def main(argv=None):
    xla_flags.turn_off_ynnpack_fusions()  # before anything is compiled: the command's computations are all tfllm's
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "translate":
        extra = _texts_after_the_options(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    _read_and_write_any_text()
    try:
        _check_flag_ranges(args)  # before TensorFlow's import, which takes seconds
    except ValueError as error:
        if args.debug:
            raise
        print(f"tfllm {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.debug:
        _import_tensorflow_quietly()
    try:
        with contextlib.nullcontext() if args.debug else _warnings_as_lines(args.command, every_time=False):
            return args.run(args) or 0
    except BrokenPipeError:  # whoever read the output stopped reading (`| head -1`): stop quietly, as `cat` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the unwritten rest goes nowhere at exit
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt as interrupt:  # training says where it saved the run
        print(f"\ntfllm {args.command}: {str(interrupt) or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if args.debug:
            raise
        return _report(args, error)


def _texts_after_the_options(args, extra):
    """Adds to `args.texts` the texts of `tfllm translate RUN --to zh "text" ...` that argparse leaves over after
    the options (all of them after a `--`, which lets a text start with "-"); returns what is still not understood."""
    before, after = (extra[:extra.index("--")], extra[extra.index("--") + 1:]) if "--" in extra else (extra, [])
    if any(arg.startswith("-") for arg in before):
        return extra
    args.texts += before + after
    return []


def _read_and_write_any_text():
    """Standard input keeps the bytes its encoding cannot read as lone surrogates, which `_utf8_text` then names by
    line (what Python does by itself under a C or C.UTF-8 locale), rather than failing the whole read (its default
    under a locale such as en_US.UTF-8); standard output and error escape what their encoding cannot write (Chinese
    on an ASCII terminal) rather than failing."""
    for stream, errors in ((sys.stdin, "surrogateescape"), (sys.stdout, "backslashreplace"),
                           (sys.stderr, "backslashreplace")):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors=errors)


# The least value of each count flag, whichever command has it, and what that least value means when it is not 1.
_FLAG_MINIMUMS = {"max_new_tokens": (1, ""), "max_new_tokens_limit": (1, ""), "max_batch_size": (1, ""),
                  "logical_cpus": (1, ""), "num_beams": (1, ""), "top_k": (0, " (0 sets no limit)")}


def _check_flag_ranges(args):
    """Refuses a number flag outside its range, naming the flag and the range, before a run is loaded or a prompt
    read: argparse checks only that the text is a number, and some of these would otherwise pass unnoticed (a
    top-p above 1 turning the nucleus off, a negative top-k or a zero beam count ignored)."""
    for dest, (minimum, meaning) in _FLAG_MINIMUMS.items():
        if (dest, args.command) == ("num_beams", "evaluate"):
            minimum, meaning = 0, " (0 scores greedy decoding alone)"
        if getattr(args, dest, None) is not None:
            require_int32_at_least(_flag(dest), getattr(args, dest), minimum, meaning)
    if getattr(args, "temperature", None) is not None:
        require_number_at_least(_flag("temperature"), args.temperature, 0, " (0 is greedy)")
    if getattr(args, "top_p", None) is not None:
        require_probability(_flag("top_p"), args.top_p, " (1 turns it off)")
    if getattr(args, "seed", None) is not None:
        require_int32(_flag("seed"), args.seed)
    if getattr(args, "logical_cpus", None) is not None and args.strategy not in ("auto", "mirrored"):
        raise BadInput(f"--logical-cpus {args.logical_cpus} splits the CPU for --strategy mirrored (or auto), which it "
                       f"would not reach under --strategy {args.strategy}: drop it")


def _flag(dest):
    return "--" + dest.replace("_", "-")


def _report(args, error):
    """Tells in one line why the command failed; returns its exit status.

    Bad input is a `ValueError` (or `FileNotFoundError`) raised by tfllm's own code, whose checks name the bad value
    and what was expected: exit status 2. Anything else (a `ValueError` from inside Keras or TensorFlow too) is a
    failure of the work: exit status 1, its traceback written to `error.log` in the run directory (or a temporary
    file) and the line points there.
    """
    from tfllm.training import TrainingDivergedError

    message = _first_line(error)
    if isinstance(error, (ValueError, FileNotFoundError)) and _raised_by_tfllm(error):  # BadInput is a ValueError
        print(f"tfllm {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(error, TrainingDivergedError):  # the last good checkpoint is kept
        print(f"tfllm {args.command}: {error}", file=sys.stderr)
        return EXIT_FAILED
    # The run directory a command writes (`error_dir`: None on a worker that is not the chief), else its input run's.
    log = _write_traceback(error, args.error_dir if hasattr(args, "error_dir") else getattr(args, "run_dir", None))
    if getattr(args, "strategy", None) == "multiworker" and type(error).__name__ in _LOST_WORKER_ERRORS:
        again = ("to resume the run from its last checkpoint" if args.command == "train" else
                 "with --overwrite (a fine-tuning does not resume)")
        message = ("another worker of the job stopped or cannot be reached (its own output says why): run the same "
                   f"command again on every worker {again}")
    print(f"tfllm {args.command}: failed with {type(error).__name__}: {message} (the traceback is in {log})",
          file=sys.stderr)
    return EXIT_FAILED


# What a collective op of a multi-worker job raises when another worker is gone: its message is TensorFlow's RPC
# detail ("Socket closed", "The following tasks are unhealthy (stopped sending heartbeats):" and the list below).
_LOST_WORKER_ERRORS = ("UnavailableError", "AbortedError")


def _first_line(error):
    """The first line of an error's message; for an error Keras re-raised from a layer's call ("Exception
    encountered when calling ..."), the first line of the message it wraps, which names the problem.

    >>> _first_line(ValueError("Exception encountered when calling Block.call().\\n\\n\\x1b[1mhead_dim=3 is "
    ...                        "invalid.\\x1b[0m\\n\\nArguments received by Block.call(): ..."))
    'head_dim=3 is invalid.'
    >>> _first_line(KeyError()), _first_line(ValueError("one\\ntwo"))
    ('KeyError', 'one')
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if lines[0].startswith("Exception encountered when calling") and len(lines) > 1:
        return re.sub(r"\x1b\[[0-9;]*m", "", lines[1])
    return lines[0]


def _raised_by_tfllm(error):
    frames = traceback.extract_tb(error.__traceback__)
    package = os.path.dirname(os.path.abspath(tfllm.__file__))
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(package + os.sep)


def _write_traceback(error, run_dir):
    """Writes the traceback of `error` to `run_dir/error.log` if `run_dir` is a directory, else to a temporary file;
    returns the file's path."""
    text = "".join(traceback.format_exception(error))
    if run_dir and os.path.isdir(run_dir):
        path = os.path.join(run_dir, ERROR_LOG)
        try:
            with open(path, "w", encoding="utf-8") as file:
                file.write(text)
            return path
        except OSError:  # a run directory we may read but not write: the temporary file below
            pass
    descriptor, path = tempfile.mkstemp(prefix="tfllm-error-", suffix=".log")
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    return path


def _train(args):
    from tfllm.training import get_strategy, is_chief, pretrain
    from tfllm.training.tasks import task_of

    sections = _read_config_file(args.config) if args.config else {}
    given = _command_line_values(args, RunConfig.sections())
    in_file = sections.get("model", {}).get("architecture") if isinstance(sections.get("model"), dict) else None
    flag = given.get("model", {}).get("architecture")
    if flag and in_file and flag != in_file:
        raise BadInput(f"--model {flag} disagrees with model.architecture={in_file!r} in {args.config}")
    for name, changes in given.items():  # the command line overrides the file
        if not isinstance(sections.get(name, {}), dict):
            raise BadInput(f"{name}={sections[name]!r} in {args.config} is invalid: expected a mapping of keys")
        sections[name] = {**sections.get(name, {}), **changes}
    if isinstance(sections.get("data"), dict) and "corpus" in sections["data"]:
        sections["data"]["corpus"] = absolute_data_path(sections["data"]["corpus"])
    config = RunConfig.from_dict(sections, fill_defaults=True)
    strategy = get_strategy(args.strategy, logical_cpus=args.logical_cpus)  # before any op: it may split the CPU
    config.validate(num_replicas=strategy.num_replicas_in_sync)
    run_dir = args.output_dir or os.path.join(
        "runs", f"{config.model.architecture}-{_corpus_name(config.data.corpus)}")
    chief = is_chief(strategy)
    args.error_dir = run_dir if chief else None  # the chief's run directory holds the chief's traceback alone
    result = pretrain(config, run_dir, strategy=strategy, overwrite=args.overwrite, verbose=0 if args.quiet else 1)
    metrics = result.metrics
    if not chief:  # the chief reports
        print(f"Trained as a worker of {strategy.num_replicas_in_sync} replicas; the chief wrote {result.run_dir}.")
        return 0
    if os.path.exists(os.path.join(run_dir, ERROR_LOG)):  # the traceback of a session the run has since recovered from
        os.remove(os.path.join(run_dir, ERROR_LOG))
    task = task_of(config)
    if task.keeps_best_weights:  # a supervised task's report (scores beside baselines), which only --quiet left out
        if args.quiet:
            print("\n".join(task.report_lines(metrics[task.report_key])))
    else:
        print(f"\n{metrics['bits_per_byte']:.3f} bits per byte on the validation split "
              f"(perplexity {metrics['validation_perplexity']:.2f}); a sample:\n")
        print(metrics["samples"][0]["text"])
    print(f"\nRun directory: {result.run_dir}. Next: {_next_command(config, result.run_dir)}")
    return 0


def _next_command(config, run_dir):
    """The command that tries a trained run of `config`'s task."""
    if config.data.task == "translate":
        return f"tfllm translate {run_dir} --to zh \"How is the weather?\""
    if config.data.task == "chat":
        return f"tfllm chat {run_dir}"
    return f"tfllm generate {run_dir} --prompt {shlex.quote(config.train.sample_prompts[0])}"


def _evaluate(args):
    from tfllm.data import load_texts
    from tfllm.evaluation import evaluate_texts
    from tfllm.training import load_run
    from tfllm.training.finetune_run import evaluate_classifier

    run = load_run(_existing_run(args.run_dir))
    if _template_kind(run) == "translation":
        return _evaluate_translation(args, run)
    if args.num_beams is not None:  # it was ignored
        raise BadInput("--num-beams is for a translation run, whose evaluation also scores beam search: drop it")
    if run.kind == "pretrain" and run.config.data.task == "chat":  # its fine-tunings are scored as language models
        return _evaluate_chat(args, run)
    if run.is_classifier:
        if args.corpus or args.split != "validation":
            raise BadInput("a classifier run is evaluated on the held-out records of its own data: drop "
                           "--corpus/--split")
        report = evaluate_classifier(run)
        print(json.dumps(report) if args.json else "\n".join(f"{key:<18} {value}" for key, value in report.items()))
        return 0
    corpus = args.corpus or run.corpus
    if corpus is None:
        raise BadInput(f"{args.run_dir} learned from no corpus tfllm knows (a converted checkpoint, or a fine-tuning "
                       "of one): give one with --corpus NAME|PATH (e.g. --corpus kjv)")
    split = None if args.split == "all" else args.split
    try:
        texts = load_texts(corpus, split)
    except ValueError as error:
        if args.corpus:
            raise
        # A fine-tuning of a chat or translation run: its parent learned from a task's data, not a text corpus.
        raise BadInput(f"{args.run_dir} last learned as a language model from {corpus!r}, which evaluate cannot read "
                       f"as a text corpus ({_first_line(error)}): give one with --corpus NAME|PATH (e.g. --corpus "
                       "kjv)") from None
    result = evaluate_texts(run.model, texts)
    report = {"corpus": corpus, "split": args.split, "loss": result.loss, "perplexity": result.perplexity,
              "bits_per_byte": result.bits_per_byte, "tokens": result.tokens, "bytes": result.bytes,
              "documents": result.documents}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{'corpus':<14} {corpus} ({args.split})")
        print(f"{'loss':<14} {result.loss:.4f} nats/token")
        print(f"{'perplexity':<14} {result.perplexity:.3f}")
        print(f"{'bits per byte':<14} {result.bits_per_byte:.4f}")
        print(f"{'counted':<14} {result.tokens:,} tokens, {result.bytes:,} bytes, {result.documents:,} documents")
    return 0


def _evaluate_translation(args, run):
    from tfllm.training.translation_task import read_parallel_texts, report_lines, translation_report

    if args.corpus or args.split != "validation":
        raise BadInput("a translation run is evaluated on the test split of its own corpus: drop --corpus/--split")
    num_beams = EVALUATE_NUM_BEAMS if args.num_beams is None else args.num_beams
    pairs = read_parallel_texts(run.pretraining.config.data)  # a fine-tuning's: its translation ancestor's pairs
    report = translation_report(run.model, pairs, num_beams=num_beams)
    print(json.dumps(report, ensure_ascii=False) if args.json else "\n".join(report_lines(report)))
    return 0


def _evaluate_chat(args, run):
    from tfllm.training.chat_task import chat_report, read_dialog_texts, report_lines

    if args.corpus or args.split != "validation":
        raise BadInput("a chat run is evaluated on the test conversations of its own corpus: drop --corpus/--split")
    report = chat_report(run.model, read_dialog_texts(run.config.data))
    print(json.dumps(report, ensure_ascii=False) if args.json else "\n".join(report_lines(report)))
    return 0


def _translate(args):
    _check_memory_flags(args, "sentences", ("--num-beams", "--max-new-tokens"))
    _existing_run(args.run_dir)
    # Each text as a sentence, without the spaces around it. A blank line of standard input is kept, and gets a
    # blank line out, so that the output lines up with the input.
    texts = (text.strip() for text in _prompts(args, args.texts, keep_blank_lines=True))
    first = next(texts, None)
    if first is None:
        raise BadInput("no text: give the texts to translate, or lines on standard input")
    from tfllm.training import load_run

    run = load_run(args.run_dir)
    if _template_kind(run) != "translation":
        raise BadInput(f"{args.run_dir} does not hold a translation model: train one with tfllm train --task "
                       "translate")
    template = run.model.prompt_template
    template.source_language(args.target, args.source)  # an unknown language is bad input before any work
    settings = {"max_new_tokens": args.max_new_tokens}
    if args.num_beams:
        settings.update(sampler="beam", num_beams=args.num_beams)
    if args.memory:
        settings = {"memory": _training_pairs_memory(run, args.memory_candidates)}
    for text in itertools.chain([first], texts):
        translation = run.model.translate(text, target=args.target, source=args.source, **settings) if text else ""
        print(_one_line(translation), flush=True)  # one line per text, whatever the model writes
    return 0


def _check_memory_flags(args, what, generation_flags):
    """Refuses --memory-candidates without --memory or below 1, and `generation_flags` (e.g. "--num-beams") given
    with --memory, which chooses among the training `what` ("sentences", "replies") instead of generating."""
    if args.memory_candidates is not None and not args.memory:
        raise BadInput("--memory-candidates is for --memory")
    if args.memory_candidates is not None and args.memory_candidates < 1:
        raise BadInput(f"--memory-candidates {args.memory_candidates}: expected at least 1 candidate per text")
    given = [flag for flag in generation_flags if getattr(args, flag[2:].replace("-", "_")) is not None]
    if args.memory and given:
        raise BadInput(f"--memory chooses among the training {what} and generates nothing: drop "
                       f"{', '.join(given)}")


def _training_pairs_memory(run, k):
    """The `TranslationMemory` of a translation run's training pairs (the sentences, without word glosses)."""
    from tfllm.data import load_parallel_corpus
    from tfllm.evaluation import TranslationMemory

    data = run.pretraining.config.data  # a fine-tuning's: its translation ancestor's pairs
    try:
        pairs = load_parallel_corpus(data.corpus, "train", train_pairs=data.train_pairs)
    except (OSError, ValueError) as error:
        raise BadInput(f"--memory needs the run's training pairs, from {data.corpus!r}: {error}") from None
    return TranslationMemory(pairs, k=k)


def _one_line(text):
    """`text` on one line: each line break Python knows (`str.splitlines`: also form feeds, U+2028, ...) a space.

    >>> _one_line("one\\r\\ntwo\\fthree\\u2028four")
    'one two three four'
    """
    return " ".join(text.splitlines())


def _prompts(args, given=None, keep_blank_lines=False):
    """The prompts of `generate` (--prompt and --prompts-file) or the texts of `translate` (`given`), else the lines
    of standard input, each as it comes, without its line ending (and a byte order mark before the first), blank
    lines left out unless `keep_blank_lines`."""
    prompts = [_utf8_text(text, "a text on the command line") for text in
               (given if given is not None else args.prompt or [])]
    if getattr(args, "prompts_file", None):
        text = _read_text_file(args.prompts_file, "--prompts-file")
        prompts += [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]
    if prompts or sys.stdin.isatty():
        return iter(prompts)
    return _standard_input_lines(keep_blank_lines)


def _standard_input_lines(keep_blank_lines):
    """Each line of standard input as it arrives (answered before the next is read), without its line ending and,
    for the first, a file's byte order mark; blank lines left out unless `keep_blank_lines`."""
    for number, line in enumerate(sys.stdin, 1):
        line = line.rstrip("\r\n")
        if number == 1:
            line = line.removeprefix("\ufeff")
        if keep_blank_lines or line.strip():
            yield _utf8_text(line, f"line {number} of standard input")


def _read_text_file(path, flag):
    """The text of the file `path` that `flag` names (a byte order mark dropped); a missing file or one that is not
    UTF-8 is a `BadInput` naming the flag, the file and the line."""
    from tfllm.data.files import read_utf8_text

    if not os.path.isfile(path):
        raise BadInput(f"{flag} {path} {'is a directory, not a file' if os.path.isdir(path) else 'does not exist'}")
    try:
        return read_utf8_text(path)
    except ValueError as error:
        raise BadInput(f"{flag} {error}") from None


def _utf8_text(text, where):
    """`text` if it was UTF-8; a `BadInput` naming `where` otherwise (Python keeps the bytes of standard input and of
    the command line that are not UTF-8 as lone surrogates, which no tokenizer can encode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise BadInput(f"{where}: not valid UTF-8 (byte {ord(text[error.start]) & 0xFF:#04x} at character "
                       f"{error.start})") from None
    return text


def _generate(args):
    drawing = [flag for flag in ("--temperature", "--top-k", "--top-p") if getattr(args, flag[2:].replace("-", "_"))
               is not None]
    if args.num_beams and drawing:
        raise BadInput(f"--num-beams searches for the likeliest text and draws nothing: drop {', '.join(drawing)}")
    if args.json and args.stream:
        raise BadInput("--json prints each text whole, as one JSON object: drop --stream")
    args.temperature = GENERATE_DRAW["temperature"] if args.temperature is None else args.temperature
    args.top_p = GENERATE_DRAW["top_p"] if args.top_p is None else args.top_p
    prompts = _prompts(args)
    first = next(prompts, None)  # waits for the first line of standard input: an empty one is bad input, at once
    if first is None:
        raise BadInput("no prompt: give --prompt TEXT, --prompts-file FILE, or prompts piped to standard input (a "
                       "terminal is not read)")
    from tfllm.training import load_run

    run = load_run(_existing_run(args.run_dir))
    if run.is_classifier:
        raise BadInput(f"{args.run_dir} holds a classifier, which does not generate text")
    model = run.model
    kind = _template_kind(run) if args.apply_template else None
    if kind == "translation":
        raise BadInput(f"{args.run_dir} holds a translation model: use tfllm translate {args.run_dir} --to LANG "
                       "TEXT (or --raw to continue raw prompts such as '<en>Hello<zh>')")
    replies = kind == "chat"  # a prompt is a user message: print the reply alone
    settings = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_k": args.top_k,
                "top_p": args.top_p if args.top_p < 1 else None, "seed": args.seed,
                "sampler": "random" if args.temperature > 0 else "greedy", "apply_template": args.apply_template}
    if replies:
        from tfllm.generation.chat import chat_stop_token_ids

        settings["stop_token_ids"] = chat_stop_token_ids(model)  # eos, and the end of an assistant turn
    if args.num_beams:
        if args.stream:
            raise BadInput("--num-beams cannot stream: beam search knows its best text only at the end")
        settings.update(sampler="beam", num_beams=args.num_beams, temperature=None, top_k=None, top_p=None)
    context = model.max_sequence_length
    if context is not None and args.max_new_tokens >= context:
        raise BadInput(f"--max-new-tokens {args.max_new_tokens} leaves no room for a prompt in the model's context of "
                       f"{context} tokens: expected at most {context - 1}")
    for prompt in itertools.chain([first], prompts):
        if args.stream:  # the same text as without --stream, piece by piece
            for piece in model.stream(prompt, strip_prompt=replies, **settings):
                print(piece, end="", flush=True)
            print(flush=True)
        elif args.json:
            text = model.generate(prompt, strip_prompt=replies, **settings)
            print(json.dumps({"prompt": prompt, "text": text}, ensure_ascii=False), flush=True)
        else:
            print(model.generate(prompt, strip_prompt=replies, **settings), flush=True)
    return 0


def _chat(args):
    _check_memory_flags(args, "replies", ("--max-new-tokens", "--temperature", "--top-k", "--top-p", "--seed"))
    from tfllm.training import load_run

    run = load_run(_existing_run(args.run_dir))
    _require_chat_model(run, args.run_dir)
    settings = {"memory": _dialogs_memory(run, args.memory_candidates)} if args.memory else _chat_sampling(args)
    session = _ChatSession(run.model, settings)
    if sys.stdin.isatty():
        return _chat_in_terminal(session, args.run_dir)
    return _chat_from_pipe(session)


def _template_kind(run):
    """The kind of the prompt template of a loaded run's model ("fields", "chat" or "translation"); None for a model
    without one and for a classifier."""
    from tfllm.data.templates import template_kind

    return None if run.is_classifier else template_kind(run.model.prompt_template)


def _require_chat_model(run, run_dir):
    """Refuses, as bad input naming what the run holds and the command that fits it, a run without a chat model."""
    if _template_kind(run) == "chat":
        return
    if run.is_classifier:
        raise BadInput(f"{run_dir} holds a classifier, not a chat model: tfllm evaluate {run_dir} reports its "
                       "accuracy (tfllm train --task chat trains a chat model)")
    if _template_kind(run) == "translation":
        raise BadInput(f"{run_dir} holds a translation model, not a chat model: use tfllm translate {run_dir} --to "
                       "LANG TEXT (tfllm train --task chat trains a chat model)")
    raise BadInput(f"{run_dir} holds a language model without a chat template, not a chat model: use tfllm generate "
                   f"{run_dir} --prompt TEXT (tfllm train --task chat trains a chat model)")


def _chat_sampling(args):
    """`model.chat`'s settings from the flags: greedy unless a temperature above 0, --top-k or --top-p asks for a
    draw (at temperature 1 by default)."""
    settings = {"max_new_tokens": args.max_new_tokens, "sampler": "greedy"}
    top_p = args.top_p if args.top_p is not None and args.top_p < 1 else None
    temperature = 1.0 if args.temperature is None else args.temperature
    if temperature == 0 or (args.temperature is None and not args.top_k and top_p is None):
        return settings
    settings.update(sampler="random", temperature=temperature, top_k=args.top_k, top_p=top_p, seed=args.seed)
    return settings


def _dialogs_memory(run, k):
    """The `ChatMemory` of a chat run's training dialogs: a fine-tuning's data, else the run's corpus."""
    from tfllm.data import load_dialogs
    from tfllm.evaluation import ChatMemory

    corpus = run.config.data if run.kind == "finetune" else run.config.data.corpus
    try:
        dialogs = load_dialogs(corpus, split="train")
    except (OSError, ValueError) as error:
        raise BadInput(f"--memory needs the run's training dialogs, from {corpus!r}: {error}") from None
    return ChatMemory(dialogs, k=k)


class _ChatSession:
    """One conversation with a chat model: its history, and the reply to each new user message.

    `settings` are `model.chat`'s (sampling, or a `memory`). A reply that comes out empty leaves the history as it
    was (an empty assistant turn is not a conversation the model can continue); so does a message `model.chat`
    refuses, whose error is shown as one line on stderr, as is a warning (a message cut to fit the context)."""

    def __init__(self, model, settings):
        self.model, self.settings, self.history = model, settings, []

    def reset(self):
        self.history = []

    def warm_up(self, stream=False):
        """Compiles what a reply runs, so the first one comes as fast as the next; settings `model.chat` refuses
        raise here, before the first message, rather than with each one."""
        with _warnings_as_lines():
            if stream and "memory" not in self.settings:
                pieces = self.model.chat("Hello", stream=True, **self.settings)
                next(pieces, None)  # the first chunk compiles the prefill and the decode steps
                pieces.close()
            else:
                self.model.chat("Hello", **self.settings)

    def reply(self, message, stream=False):
        """Yields the reply to the user's `message` (in pieces as it is written with `stream`, else whole), then keeps
        the exchange in the history."""
        messages = [*self.history, {"role": "user", "content": message}]
        text = ""
        with _warnings_as_lines():
            try:
                _utf8_text(message, "the message")
                if stream and "memory" not in self.settings:
                    pieces = self.model.chat(messages, stream=True, **self.settings)
                else:
                    pieces = [self.model.chat(messages, **self.settings)]
                for piece in pieces:
                    text += piece
                    yield piece
            except ValueError as error:
                if not _raised_by_tfllm(error):
                    raise
                print(f"tfllm chat: error: {_one_line(str(error))}", file=sys.stderr, flush=True)
                return
        if text.strip():
            self.history = [*messages, {"role": "assistant", "content": text.strip()}]


@contextlib.contextmanager
def _warnings_as_lines(command="chat", every_time=True):
    """Shows each warning as one line on stderr, `tfllm COMMAND: warning: ...`, where Python shows two (the file and
    line that warned, then that line of source); `every_time` shows a user warning each time it comes, as a chat
    warns of each message it cuts, not once per place in the code."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"tfllm {command}: warning: {_one_line(str(message))}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        if every_time:
            warnings.simplefilter("always", UserWarning)
        warnings.showwarning = show
        yield


def _chat_in_terminal(session, run_dir):
    """The interactive chat: a prompt, the reply streamed, until /exit, Ctrl-D or Ctrl-C (exit status 0)."""
    try:
        import readline  # noqa: F401  (line editing and the history of typed lines, for input())
    except ImportError:  # a Python built without it: plain input()
        pass
    try:
        session.warm_up(stream=True)
        print(f"Chatting with {run_dir}: /reset starts a new conversation, /exit (or Ctrl-D) leaves.", flush=True)
        while True:
            line = input("you> ").strip()
            if line == "/exit":
                return 0
            if line == "/reset":
                session.reset()
                print("(a new conversation: the history is cleared)", flush=True)
            elif line:
                for piece in session.reply(line, stream=True):
                    print(piece, end="", flush=True)
                print(flush=True)
    except (EOFError, KeyboardInterrupt):
        print(flush=True)  # the shell's prompt on a line of its own
        return 0


def _chat_from_pipe(session):
    """Each line of standard input is the next user message; each reply is one line of standard output (an empty
    one when the model writes nothing, or the message is refused with an error on stderr)."""
    session.warm_up()
    for line in sys.stdin:  # a line is answered before the next is read
        line = line.removeprefix("\ufeff").strip()  # a file's byte order mark is not part of its first message
        if line == "/exit":
            break
        if line == "/reset":
            session.reset()
        elif line:
            print(_one_line("".join(session.reply(line)).strip()), flush=True)
    return 0


def _finetune(args):
    from tfllm.training import finetune_run, get_strategy, is_chief

    values = _command_line_values(args, {"finetune": FinetuneConfig}).get("finetune", {})
    _require_keys(values, "finetune", FinetuneConfig)
    if "data" in values:
        values["data"] = absolute_data_path(values["data"])
    config = FinetuneConfig.from_dict(values)
    strategy = get_strategy(args.strategy, logical_cpus=args.logical_cpus)
    parent = _existing_run(args.run_dir)
    suffix = config.task if config.lora_rank is None else f"{config.task}-lora"
    output = args.output_dir or f"{os.path.normpath(parent)}-{suffix}"
    args.error_dir = output if is_chief(strategy) else None  # the chief's run directory holds its traceback alone
    result = finetune_run(parent, config, output, overwrite=args.overwrite, verbose=0 if args.quiet else 1,
                          strategy=strategy)
    metrics = result.metrics
    if config.lora_rank is not None and metrics:
        print(f"LoRA adapter of rank {config.lora_rank}: {metrics['trainable_parameters']:,} of "
              f"{metrics['total_parameters']:,} parameters trained, stored alone in {metrics['adapter_bytes']:,} "
              f"bytes; the run needs its parent where it is.")
    print(f"Run directory: {result.run_dir} (parent: {parent})")
    return 0


def _export(args):
    from tfllm.export import export_saved_model
    from tfllm.training import load_run

    run = load_run(_existing_run(args.run_dir))
    if run.is_classifier:
        raise BadInput(f"{args.run_dir} holds a classifier: only language models export (generate and score)")
    sampling = _export_sampling(run, args)
    path = export_saved_model(run.model, args.out_dir, version=args.version, jit_compile=args.xla,
                              max_new_tokens_limit=args.max_new_tokens_limit, max_batch_size=args.max_batch_size,
                              **sampling)
    print(_serving_instructions(run, args, path, sampling))
    return 0


def _export_sampling(run, args):
    """serving_default's settings: those of the samples of the run's pretraining (none for a converted checkpoint),
    the length cut to the export's limit, and --max-new-tokens."""
    limit = _export_limit(run, args)
    pretraining = run.pretraining
    train = None if pretraining is None else pretraining.config.train
    sampling = {} if train is None else {
        "max_new_tokens": min(train.sample_tokens, limit), "temperature": train.sample_temperature,
        "top_p": train.sample_top_p}
    if args.max_new_tokens is not None:
        if args.max_new_tokens > limit:
            given = "--max-new-tokens-limit" if args.max_new_tokens_limit else "the default --max-new-tokens-limit"
            raise BadInput(f"--max-new-tokens={args.max_new_tokens} is above {given}, {limit}: a request may ask for "
                           f"at most {limit} new tokens")
        sampling["max_new_tokens"] = args.max_new_tokens
    return sampling


def _export_limit(run, args):
    """The most new tokens a request to the export may ask for."""
    from tfllm.export.saved_model import default_max_new_tokens_limit

    return args.max_new_tokens_limit or default_max_new_tokens_limit(run.model)


def _serving_instructions(run, args, path, sampling):
    """What `tfllm export` prints: how to serve the SavedModel at `path` and a request to each of its main
    signatures, for the run's kind of model (a translator, a chat model or a text model)."""
    from tfllm.export import rest_request_examples

    template = run.model.prompt_template
    translates, chats = _template_kind(run) == "translation", _template_kind(run) == "chat"
    pretraining = run.pretraining
    prompt = ("天气如何？" if translates or chats else pretraining.config.train.sample_prompts[0]
              if pretraining is not None else "In the beginning")
    # The export's own serving_default length, so that the printed requests are within its limit.
    examples = rest_request_examples(
        run.model, prompt, target_language="en",
        max_new_tokens=sampling.get("max_new_tokens", min(MAX_NEW_TOKENS, _export_limit(run, args))))
    if translates:  # generate reads a translation prompt as written, its language tags included
        examples["generate"]["instances"][0]["prompts"] = template.format_prompt(
            {"source": prompt, "target_language": "en"})
    else:
        examples["generate"]["instances"][0].update(
            temperature=sampling.get("temperature", 0.0), top_p=sampling.get("top_p", 1.0))
    shown = ("translate", "generate") if translates else ("chat", "generate") if chats else (
        "serving_default", "generate")
    url = "http://localhost:8501/v1/models/tfllm:predict"
    base, loop = os.path.abspath(args.out_dir), "under XLA" if args.xla else "in the plain graph"
    what = ("translate (serving_default too): texts and a target language per row -> translations; generate: "
            "prompts read as written, e.g. <zh>天气如何？<en>" if translates else
            "chat (serving_default too): one user message per row -> the reply, with the run's sampling settings; "
            "generate: a message per row and its settings -> the message and the reply" if chats else
            "serving_default with the run's sampling settings; generate with one setting per row")
    call = (f"served.signatures[\"translate\"](texts=tf.constant([{prompt!r}]), "
            "target_language=tf.constant([\"en\"]))[\"translation\"]" if translates else
            f"served.signatures[\"chat\"](messages=tf.constant([{prompt!r}]))[\"replies\"]" if chats else
            f"served.signatures[\"serving_default\"](prompts=tf.constant([{prompt!r}]))[\"text\"]")
    requests = "\n".join(f"    curl -X POST {url} -d {shlex.quote(json.dumps(examples[name], ensure_ascii=False))}"
                         for name in shown)
    return f"""SavedModel version {args.version} written to {path} (decode loop {loop}). Serve it with TensorFlow
Serving, whose model base path is {base}:

    docker run -p 8501:8501 -v {shlex.quote(base)}:/models/tfllm -e MODEL_NAME=tfllm tensorflow/serving

and ask it over REST ({what}):

{requests}

Or call it from Python (tensorflow and tensorflow-text, no tfllm needed):

    import tensorflow as tf, tensorflow_text
    served = tf.saved_model.load({path!r})
    print({call}.numpy()[0].decode())

`saved_model_cli show --dir {path} --all` lists the signatures."""


def _add_convert(commands):
    parser = commands.add_parser(
        "convert", help="convert a GPT-2 checkpoint (KerasHub preset or Hugging Face directory) into a run directory",
        description="Convert the GPT-2 checkpoint in the local directory SRC, a KerasHub preset (config.json, "
                    "model.weights.h5, assets/tokenizer/) or a Hugging Face model directory (config.json, "
                    "model.safetensors, vocab.json, merges.txt), into a new run directory: its model and BPE "
                    "tokenizer in model.keras, the source recorded in convert.json. tfllm generate, evaluate "
                    "--corpus, finetune and export then work on it. Nothing is downloaded: get the files first (the "
                    "README says how).",
    )
    parser.add_argument("source", metavar="SRC", help="the checkpoint directory")
    parser.add_argument("run_dir", metavar="OUT_RUN_DIR", help="the run directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in OUT_RUN_DIR")
    _debug_flag(parser)
    parser.set_defaults(run=_convert)


def _convert(args):
    from tfllm.training.convert_run import convert_run

    if not os.path.isdir(args.source):
        problem = "is not a directory" if os.path.exists(args.source) else "does not exist"
        raise BadInput(f"{args.source} {problem}: expected a KerasHub GPT-2 preset or a Hugging Face GPT-2 model "
                       "directory")
    result = convert_run(args.source, args.run_dir, overwrite=args.overwrite)
    summary = result.metrics
    source = {"keras_hub": "KerasHub preset", "hugging_face": "Hugging Face model"}[summary["format"]]
    print(f"Converted the GPT-2 {source} {args.source}: {summary['num_layers']} layers, width "
          f"{summary['hidden_dim']}, {summary['num_heads']} heads, vocabulary {summary['vocab_size']:,}, context "
          f"{summary['context']:,}, {summary['parameters']:,} parameters.")
    print(f"Run directory: {result.run_dir}. Next: tfllm generate {result.run_dir} --prompt \"The meaning of life "
          "is\"")
    return 0


def _import_tensorflow_quietly():
    """Imports TensorFlow with the C++ start-up lines it prints whatever TF_CPP_MIN_LOG_LEVEL says (oneDNN, CUDA
    probing: tensorflow/tensorflow#100442) sent to /dev/null, so that an error stays the one line it should be.

    Later C++ log lines are off up to ERROR (TF_CPP_MIN_LOG_LEVEL=3, unless the user set it): what TensorFlow logs
    there is advice or a fallback ("oneDNN supports DT_INT64 only on platforms with AVX-512. Falling back ..."), and
    a real failure comes back as a Python exception, which `main` reports; FATAL lines still show. Python warnings
    are shown as usual; --debug shows everything."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

        # The CUDA probe, which logs its failure on a machine without a GPU (it does not start the runtime, so the
        # CPU can still be split into logical devices).
        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _existing_run(run_dir):
    if not os.path.isdir(run_dir):
        problem = "is not a directory" if os.path.exists(run_dir) else "does not exist"
        raise BadInput(f"{run_dir} {problem}: expected a run directory (tfllm train --output-dir ...)")
    return run_dir


def _read_config_file(path):
    """The sections of a JSON or YAML config file, as a dict; a bad file is a `BadInput` naming it."""
    text = _read_text_file(path, "--config")
    try:
        if path.endswith((".yaml", ".yml")):
            values = yaml.load(text, Loader=_YAMLLoader)
        else:
            values = json.loads(text)
    except Exception as error:  # json and yaml raise their own kinds
        raise BadInput(f"--config {path} cannot be read: {str(error).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise BadInput(f"--config {path} holds a {type(values).__name__}: expected sections model, data and train")
    return {name: dict(section) if isinstance(section, dict) else section for name, section in values.items()}


def _corpus_name(corpus):
    """The corpus part of a default run directory's name: a file's or folder's name without its extension; for a
    glob, the folder before its first pattern (`docs/*.txt`: docs), never a pattern the shell would expand."""
    from tfllm.data.files import has_glob_pattern

    parts = os.path.normpath(corpus).split(os.sep)
    literal = list(itertools.takewhile(lambda part: not has_glob_pattern(part), parts))
    if len(literal) < len(parts):  # a glob
        return next((part for part in reversed(literal) if part not in ("", ".", "..")), "corpus")
    return os.path.splitext(parts[-1])[0] or "corpus"


if __name__ == "__main__":
    sys.exit(main())
