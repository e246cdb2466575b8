"""The `convcore` command: `info`, `classify`, `models`, `layers`, `bench`, `visualize`, `export`, `run`.

Results go to stdout (`--json` for machines), progress and diagnostics to stderr. Errors print
``convcore: error: ...`` (one line, a few for a checkpoint that does not fit) without exception class names, and exit
with 2 for bad arguments and missing files, 1 for other failures (set ``CONVCORE_DEBUG=1`` for the traceback). Every
command takes ``--threads N``; bare ``convcore`` prints the usage.

Example:
    $ convcore classify                          # the bundled photos through efficientnet_lite0
    $ convcore classify photos/ --batch-size 16 --out results.jsonl
    $ convcore models 'resnet*'
    $ convcore bench mobilenet_v2 --batch 1,8 --threads 2 --peers
    $ convcore visualize class dumbbell cup dalmatian "bell pepper" lemon husky --out figures
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from ._common import UsageError, add_threads_argument, error_message, exit_status, set_threads

__all__ = ["main", "build_parser"]


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2) instead of printing the usage and exiting."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _info(args):
    import convcore

    set_threads(args.threads)
    if args.json:
        print(json.dumps(convcore.show_config(print_out=False), indent=2))
    else:
        convcore.show_config()
    return 0


def _succeeds(func):
    """Wrap a command that returns a result (the ONNX model, the output array) instead of an exit status."""

    def run(args):
        func(args)
        return 0

    return run


def build_parser():
    """The argument parser of the `convcore` command (each subcommand stores its handler in `func`)."""
    import convcore

    from . import _bench, _classify, _layers, _models, _quantize, _visualize
    from ._onnx import add_subcommands as add_onnx_commands

    parser = _Parser(prog="convcore", description="convcore: fast CNN inference on the CPU")
    parser.add_argument("--version", action="version", version=f"convcore {convcore.__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    text = "what this build was compiled with and what it runs on (ISAs, threads, OpenMP, GPU)"
    info = sub.add_parser("info", help=text, description=text)
    info.add_argument("--json", action="store_true", help="print the configuration as JSON")
    add_threads_argument(info)
    info.set_defaults(func=_info)

    for module, name, text in ((_classify, "classify", "classify images with a zoo model or an ONNX file"),
                               (_models, "models", "list the model zoo: parameters, GFLOPs, input size, weights"),
                               (_layers, "layers", "list a model's layers: output shapes, parameters, MACs (the names "
                                                   "visualize objectives take)"),
                               (_bench, "bench", "time whole models (ms per image, GFLOP/s), optionally beside peers"),
                               (_quantize, "quantize", "quantize a model to int8 on calibration images and write a "
                                                       "QDQ ONNX file (the per-layer error report on stdout)"),
                               (_visualize, "visualize", "see what a convnet learns: filters, activations, saliency, "
                                                         "top patches, class models, feature visualization")):
        command = sub.add_parser(name, help=text, description=text)
        module.add_arguments(command)
        command.set_defaults(func=module.run)

    add_onnx_commands(sub)
    for name in ("export", "run"):
        command = sub.choices[name]
        command.set_defaults(func=_succeeds(command.get_default("func")))
    return parser


def main(argv=None):
    """Run the `convcore` command with `argv` (default: sys.argv[1:]) and return the exit status.

    Example:
        >>> main(["models", "resnet18"])
        0
    """
    import convcore

    argv = sys.argv[1:] if argv is None else list(argv)
    threads = convcore.get_num_threads()
    try:
        return _run(argv)
    finally:
        if convcore.get_num_threads() != threads:  # --threads holds for one command: main() is also an API
            convcore.set_num_threads(threads)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings meant for the user (an image far below the input size) as `convcore: warning: ...` lines; others
    as Python prints them."""
    from convcore.data import SmallImageWarning

    if issubclass(category, SmallImageWarning):
        print(f"convcore: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def _run(argv):
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run_command(argv)


def _run_command(argv):
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:  # bare `convcore`: what it can do
            parser.print_help()
            return 0
        return int(args.func(args) or 0)
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else 0
    except BrokenPipeError:  # e.g. `convcore models | head`: the reader left, stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
        except (OSError, ValueError):
            pass
        return 1
    except KeyboardInterrupt:
        print("convcore: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a short message for the user; CONVCORE_DEBUG=1 shows the traceback
        if os.environ.get("CONVCORE_DEBUG"):
            raise
        print(f"convcore: error: {error_message(exc)}", file=sys.stderr)
        return exit_status(exc)
