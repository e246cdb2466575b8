"""The ``convcore`` command (also ``python -m convcore``)."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="convcore", description="convcore: fast CNN inference on the CPU")
    sub = parser.add_subparsers(dest="command")
    info = sub.add_parser("info", help="show what this build was compiled with and what it runs on")
    info.add_argument("--json", action="store_true", help="print the configuration as JSON")
    args = parser.parse_args(argv)

    try:
        import convcore
    except Exception as exc:  # a broken install: one clear line, not a traceback
        print(f"convcore: cannot import the native module: {exc}", file=sys.stderr)
        return 1
    if args.command in (None, "info"):
        if getattr(args, "json", False):
            print(json.dumps(convcore.show_config(print_out=False), indent=2))
        else:
            convcore.show_config()
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
