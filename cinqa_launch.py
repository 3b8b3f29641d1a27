"""Start the ``cinqa`` command so that a Ctrl-C while it is still loading ends as quietly as one later.

The console script imports this module, not the ``cinqa`` package, whose import (pandas, Great
Expectations) takes seconds: an interrupt during that import would otherwise print a traceback.
"""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130


def main() -> None:
    """Run the ``cinqa`` command line, ending with one line and exit status 130 if interrupted while starting."""
    try:
        from cinqa.cli import app

        # Building the command line (typer reads every command's signature) also takes a moment; once a
        # command runs, cinqa.cli turns a Ctrl-C into its own line, so one that reaches here came before.
        app()
    except KeyboardInterrupt:
        sys.stderr.write("cinqa: interrupted while starting; nothing was written\n")
        raise SystemExit(EXIT_INTERRUPTED) from None
