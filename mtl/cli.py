"""The one shell every ``python -m mtl.*`` command runs in: logging, library verbosity, and errors a user can fix
printed as one ``error: ...`` line with exit code 2 (never a traceback).

Example::

    def main(argv=None) -> int:
        return run_command(build_parser(), lambda args: do_the_work(args), argv)
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Callable, Sequence

from .errors import MtlError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143  # SIGTERM: kill, timeout, a batch scheduler, docker stop


class Terminated(KeyboardInterrupt):
    """SIGTERM turned into an exception, so that a command cleans up (puts back what --overwrite set aside,
    removes half-written files) as it does on Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def run_command(parser: argparse.ArgumentParser, action: Callable[[argparse.Namespace], int | None],
                argv: Sequence[str] | None = None, *, progress_bars: bool = True) -> int:
    """Parse ``argv``, set up logging, run ``action(args)``; an :class:`MtlError` becomes exit code 2."""
    args = parser.parse_intermixed_args(argv)
    configure_logging(quiet=getattr(args, "quiet", False), progress_bars=progress_bars)
    main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return action(args) or 0
    except MtlError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if main_thread:  # None: a handler installed outside Python, which cannot be put back; the default then
            signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)


def configure_logging(quiet: bool = False, progress_bars: bool = True) -> None:
    """mtl's own log at INFO (WARNING when ``quiet``); transformers only on errors; progress bars on request."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    other_process = int(os.environ.get("RANK", "0") or 0) > 0  # torchrun / accelerate launch: the main one logs
    logging.getLogger("mtl").setLevel(logging.ERROR if other_process else logging.WARNING if quiet else logging.INFO)
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    if not progress_bars:  # stderr carries one line at most: the error
        transformers.logging.disable_progress_bar()
        datasets.disable_progress_bars()
