#!/usr/bin/env bash
# The Django chat example in one command: set up .venv, migrate, create the demo user
# (demo / demo-password), start the archive worker, serve on http://127.0.0.1:8000.
# SERVER=daphne serves it with daphne instead of uvicorn; PORT=8001 serves on another port.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bash "$root/.ci/setup" dev
python="$root/.venv/bin/python"
cd "$here"
"$python" manage.py migrate --verbosity 0
"$python" manage.py shell --verbosity 0 -c "
from django.contrib.auth.models import User
if not User.objects.filter(username='demo').exists():
    User.objects.create_user('demo', password='demo-password')
"
"$python" manage.py runworker chat-archive &
worker=$!
trap 'kill "$worker" 2>/dev/null; wait "$worker" 2>/dev/null || true' EXIT
port="${PORT:-8000}"
echo "chat on http://127.0.0.1:$port/ (log in as demo / demo-password); Ctrl+C stops it" >&2
if [ "${SERVER:-uvicorn}" = daphne ]; then
    "$python" -m daphne -b 127.0.0.1 -p "$port" django_chat.asgi:application
else
    "$python" -m uvicorn django_chat.asgi:application --host 127.0.0.1 --port "$port"
fi
