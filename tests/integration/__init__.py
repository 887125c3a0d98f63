"""interlock actors inside host ASGI apps (Starlette, FastAPI, Django, plain ASGI), served for real.

Each ``*_app`` module is an app a user could write; the ``test_*`` modules serve it
with uvicorn (asyncio) or ``hypercorn -k trio`` (trio) and talk to it with real
WebSocket and HTTP clients.
"""
