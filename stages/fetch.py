"""Stage ``fetch``: place (or locate) a dataset's raw files and write their manifest.

    python -m stages.fetch --dataset NAME --raw-dir data/raw/NAME [--source-dir DIR] [--mirror URL]

Downloadable files are verified against pinned checksums (see :mod:`stages.data.download`);
``data/raw/NAME/manifest.json`` records every file with its absolute path and SHA-256.
"""

from __future__ import annotations

import argparse

from stages.data.manifest import fetch_raw
from stages.plumbing.cli import main_for


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stages.fetch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="dataset name (see stages.data.registry)")
    parser.add_argument("--raw-dir", required=True,
                        help="folder for the raw files and manifest.json, e.g. data/raw/NAME")
    parser.add_argument("--source-dir", default=None,
                        help="local folder holding the raw files of a local-folder dataset "
                             "(fashion: default /usr/share/datasets/fashion-mnist; usps-11k and "
                             "the face datasets: default the raw folder)")
    parser.add_argument("--mirror", action="append", default=None, metavar="URL",
                        help="base URL to download from instead of the registry's (repeatable; "
                             "default: $DCLUST_MIRROR or the registry)")
    return parser


def run(args: argparse.Namespace) -> None:
    fetch_raw(args.dataset, args.raw_dir, source_dir=args.source_dir, mirrors=args.mirror)


if __name__ == "__main__":
    main_for(build_parser, run)
