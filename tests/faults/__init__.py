"""Fault tests (``make faults``): a real scale-out (tests/cluster.py) under Bot API errors, a
PostgreSQL restart, a replica killed with SIGKILL and the Chroma server down. Not collected by
the default ``pytest`` run (``--ignore=tests/faults`` in pyproject.toml): they take minutes."""
