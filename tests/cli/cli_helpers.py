"""What the CLI tests share: running `convcore ...` in-process and reading its --json lines."""

import json

from convcore.cli import main


def run(capsys, *argv):
    """main(argv) -> (exit status, stdout, stderr)."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]
