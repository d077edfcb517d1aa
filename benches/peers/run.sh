#!/bin/sh
# flowcat `run --each` side by side with Duo's official Python client (benches/peers/README.md).
#
#   benches/peers/run.sh            # the full run (a few minutes), numbers for docs/benchmarks.md
#   benches/peers/run.sh --smoke    # 20 users, one round: checks that the bench still works
#
# Other options go to run.py (`--n`, `--rounds`, `--concurrency 16,1`, `--no-latency`, `--json F`).
# Builds the release binary, makes a virtual environment in target/peers-venv with `duo_client`
# from PyPI, and talks only to a simulator on 127.0.0.1. Without Python 3 and its `venv` module,
# or when PyPI cannot be reached, it says so and exits 0 without measuring anything.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

skip() {
    echo "benches/peers: skipped: $*" >&2
    exit 0
}

command -v python3 >/dev/null 2>&1 || skip "no python3 on PATH (the peer is Duo's Python client)"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || skip "python3 is older than 3.9"
python3 -c 'import venv, ensurepip' 2>/dev/null || skip "python3 has no venv/ensurepip module (Debian: apt-get install python3-venv)"

venv="$root/target/peers-venv"
if ! "$venv/bin/python" -c 'import duo_client' 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" || skip "python3 -m venv failed"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'duo_client>=5' \
        || skip "pip could not install duo_client from PyPI"
fi
echo "# duo_client $("$venv/bin/python" -c 'import duo_client; print(duo_client.__version__)'), $("$venv/bin/python" --version)"

cargo build --release --quiet --bin flowcat
echo "# flowcat $(git rev-parse --short HEAD 2>/dev/null || echo '?'), release build"
exec python3 "$root/benches/peers/run.py" --flowcat "$root/target/release/flowcat" --python "$venv/bin/python" "$@"
