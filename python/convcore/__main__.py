"""The ``convcore`` command (also ``python -m convcore``): see ``convcore --help``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from convcore.cli import main as cli_main
    except Exception as exc:  # a broken install: one clear line, not a traceback
        print(f"convcore: cannot import the native module: {exc}", file=sys.stderr)
        return 1
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
