#!/usr/bin/env python
"""Django's command line for the chat example (``runworker`` comes from ``interlock.actors.django``)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_chat.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
