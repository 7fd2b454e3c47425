"""The `tfllm` command. Each subcommand parses its flags and calls one function of the library."""

import argparse
import sys

import tfllm


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tfllm",
        description="Train, evaluate, fine-tune, sample from and export language models with TensorFlow and Keras.",
    )
    parser.add_argument("--version", action="version", version=f"tfllm {tfllm.__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
