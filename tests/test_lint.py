"""The workflow passes its ecosystem's own checks: snakefmt's formatting (pyproject.toml's
[tool.snakefmt]) and ``snakemake --lint`` (a per-rule environment, no variables from outside a
rule in its shell command, helpers apart from rules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_workflow_files_are_formatted_as_snakefmt_writes_them():
    proc = _run(sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/")
    assert proc.returncode == 0, (f"snakefmt would change these files (run `snakefmt Snakefile "
                                  f"workflow/`):\n{proc.stdout}\n{proc.stderr}")


def test_snakemake_lint_finds_nothing():
    proc = _run(sys.executable, "-m", "snakemake", "--lint")
    assert proc.returncode == 0, f"snakemake --lint:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr
