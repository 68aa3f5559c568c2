"""Shared command-line plumbing for ``python -m stages.<stage>``.

Every stage defines ``build_parser()`` and ``run(args)`` and ends with
``if __name__ == "__main__": main_for(build_parser, run)``. A :class:`StageError` becomes one
line on stderr (``error: ...``) and exit status 2; nothing half-written is left behind because
all writers in :mod:`stages.plumbing.artifacts` are atomic.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from stages.plumbing.errors import StageError

log = logging.getLogger("stages")


def _json_of(text: str, kind: type, name: str) -> Any:
    """``text`` parsed as JSON; an argparse error unless it is a ``kind`` (``name``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err}") from err
    if not isinstance(value, kind):
        raise argparse.ArgumentTypeError(f"expected a JSON {name}")
    return value


def json_arg(text: str) -> dict[str, Any]:
    """argparse type for ``--params '{"lr": 0.01}'`` (a JSON object)."""
    return _json_of(text, dict, "object")


def json_list_arg(text: str) -> list[Any]:
    """argparse type for ``--files '["a.md", "b.png"]'`` (a JSON list)."""
    return _json_of(text, list, "list")


def add_training_args(p: argparse.ArgumentParser) -> None:
    """Options every training stage takes: seed, output folder, device, threads, log cadence."""
    p.add_argument("--seed", type=int, default=0, help="fixes every random stream")
    p.add_argument("--out-dir", required=True, help="output folder (also holds the checkpoint)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (the rule's threads)")
    p.add_argument("--log-every", type=int, default=20, help="steps between host syncs")
    p.add_argument("--checkpoint-every", type=int, default=500,
                   help="steps between checkpoints of long stages (operational: not part of the "
                        "recipe, so changing it reruns nothing)")
    p.add_argument("--job-key", default=None,
                   help="key of everything that determines the job (the workflow passes it); a "
                        "checkpoint written under another key is discarded, never resumed")


def limit_threads(threads: int | None) -> None:
    """Cap the BLAS/OpenMP threads of NumPy and scikit-learn to the rule's ``threads``."""
    if threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)


#: set (to anything but 0 or empty) to get the traceback of an error a user can fix
DEBUG_ENV = "DCLUST_DEBUG"


def os_error_message(err: OSError) -> str:
    """One line for an operating-system error a user can fix, naming the path and the fix."""
    path = err.filename or "(unknown path)"
    if isinstance(err, PermissionError):
        return (f"cannot write or read {path}: permission denied. Make the folder writable "
                "(or run from a folder you own) and rerun; finished outputs are kept.")
    if err.errno == errno.ENOSPC:
        return (f"no space left on the device while writing {path}. Free disk space (or move "
                "results/ to a larger disk) and rerun; killed jobs resume from their "
                "checkpoints.")
    if isinstance(err, FileNotFoundError):
        return (f"{path}: no such file or folder. Check the path, or rerun the workflow so the "
                "stage that writes it runs first.")
    return f"{path}: {err.strerror or err}. Fix the file or folder and rerun."


def print_table(table: Any, width: int = 220, digits: int = 4, index: bool = True) -> None:
    """Print a pandas table whole (no column or row elision), numbers to ``digits`` significant
    digits: the output of the label-free ``criteria`` commands."""
    import pandas as pd  # only the commands that print tables need it

    with pd.option_context("display.width", width, "display.max_columns", None,
                           "display.max_colwidth", 90):
        print(table.to_string(index=index, float_format=lambda v: f"{v:.{digits}g}"))


def main_for(build_parser: Callable[[], argparse.ArgumentParser],
             run: Callable[[argparse.Namespace], Any],
             argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, call ``run``, and turn a :class:`StageError` or an :class:`OSError`
    (unwritable folder, full disk, missing file) into one line and exit status 2; with
    ``DCLUST_DEBUG`` set the traceback is printed too."""
    setup_logging()
    args = build_parser().parse_args(argv)
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        run(args)
    except (StageError, OSError) as err:
        if debug:
            traceback.print_exc()
        message = os_error_message(err) if isinstance(err, OSError) else str(err)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    return 0
