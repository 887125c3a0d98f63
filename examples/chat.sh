#!/usr/bin/env bash
# Set up .venv (first run only) and serve the chat example on http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/setup dev
exec .venv/bin/python examples/chat.py "$@"
