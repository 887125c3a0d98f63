"""Django management commands of interlock: ``runworker``."""
