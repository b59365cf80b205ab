"""The exit status of the deid command line and of the spark-submit job, and the one line a failure prints: a
scheduler reads the status and the line, a person adds --debug for the traceback."""
from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

EXIT_OK = 0
EXIT_FAILED = 1       # the run failed: an unexpected error, notes it could not process, counts that do not reconcile
EXIT_USAGE = 2        # the command line, the config, the input or the environment is wrong (argparse exits 2 too)
EXIT_QUARANTINE = 3   # the job succeeded but left more notes in quarantine than job.max_quarantine_share
EXIT_BUSY = 75        # sysexits EX_TEMPFAIL: another run holds the output tables; a scheduler's retry is right


def report(exc: BaseException, classify: Callable[[BaseException], tuple[int, str]], debug: bool) -> int:
    """Print a failure as one `error:` line on stderr (the traceback before it under --debug) and return its exit
    status. `classify` gives the status and the line; its messages must never hold note text."""
    status, message = classify(exc)
    if debug:
        traceback.print_exception(exc)
    print(f"error: {message}", file=sys.stderr)
    return status
