#!/usr/bin/env bash
# Time the README's Quickstart from a fresh clone of this repository's HEAD, and write the
# default run's table (docs/default-run.md and the README's Quickstart block) from what it made.
#
#   bench/quickstart.sh [--tests] [--seeds "0 1"] [--commit REV] [--no-write] WORKDIR
#
# WORKDIR (new or empty) gets clone/ (git clone of HEAD, or of REV: an earlier commit to compare
# with in the same sitting; then nothing is written here), venv/ (a new virtual environment) and
# timing.json. Command 1 (install + the default workflow) is timed as the README gives it; with
# --tests, command 2 (install the test extras + the test suite) too; with --seeds, the seeds
# beyond 0 run afterwards in the same clone (`--config seeds=[...]`), untimed, so the table
# shows each. Then `python -m stages.reporting.quickstart` writes the table into this checkout
# (unless --no-write). Name the CPU with any figure you quote: timing.json holds it.
set -euo pipefail

tests=0 seeds="0" write=1 rev=""
while [[ $# -gt 1 ]]; do
  case "$1" in
    --tests) tests=1; shift ;;
    --seeds) seeds="$2"; shift 2 ;;
    --no-write) write=0; shift ;;
    --commit) rev="$2"; write=0; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ $# -eq 1 ]] || { echo "usage: $0 [--tests] [--seeds \"0 1\"] [--commit REV] [--no-write] WORKDIR" >&2; exit 2; }
work=$(realpath -m "$1")
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
if [[ -e "$work" && -n "$(ls -A "$work" 2>/dev/null)" ]]; then
  echo "error: $work is not empty; give a new folder (nothing there is touched)" >&2; exit 2
fi
mkdir -p "$work"
git clone --quiet --no-local "$repo" "$work/clone"
[[ -z "$rev" ]] || git -C "$work/clone" checkout --quiet "$rev"
commit=$(git -C "$work/clone" rev-parse --short HEAD)
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
source "$work/venv/bin/activate"
cd "$work/clone"

t0=$(date +%s.%N)
pip install --quiet "torch==2.13.0" -e . && snakemake --cores all > "$work/command1.log" 2>&1
t1=$(date +%s.%N)
jobs=$(grep -c "^Finished job" "$work/command1.log" || true)
t2=$t1 t3=$t1 passed=""
if [[ $tests -eq 1 ]]; then
  t2=$(date +%s.%N)
  pip install --quiet "torch==2.13.0" -e ".[test]" && python -m pytest -q > "$work/command2.log" 2>&1
  t3=$(date +%s.%N)
  passed=$(tail -n 1 "$work/command2.log")
fi
if [[ "$seeds" != "0" ]]; then
  list=$(echo "$seeds" | tr ' ' ',')
  snakemake --cores all --config "seeds=[$list]" > "$work/seeds.log" 2>&1
fi

python - "$work/timing.json" <<EOF
import json, os, platform, subprocess, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.processor())
json.dump({"commit": "$commit", "date": subprocess.check_output(["date", "-u", "+%Y-%m-%d"],
           text=True).strip(), "cpu": cpu, "cores": os.cpu_count(),
           "command1_s": round($t1 - $t0, 1), "command1_jobs": int("$jobs" or 0),
           "command2_s": round($t3 - $t2, 1) if $tests else None,
           "command2_result": "$passed" or None}, open(sys.argv[1], "w"), indent=1)
EOF
cat "$work/timing.json"
if [[ $write -eq 1 ]]; then
  cd "$repo"
  python -m stages.reporting.quickstart "$work/clone/results/tables/all.csv" \
    --timing "$work/timing.json" --config "$work/clone/config.yaml" \
    --out docs/default-run.md --readme README.md
fi
