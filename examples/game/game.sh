#!/usr/bin/env bash
# Set up .venv (first run only) and serve the tic-tac-toe example on http://127.0.0.1:8002
# (open it in two tabs). Options: --port, --host, --workers N (processes sharing the SQLite layer).
set -euo pipefail
cd "$(dirname "$0")/../.."
.ci/setup dev
exec .venv/bin/python -m examples.game.game "$@"
