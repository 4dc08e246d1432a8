"""One module per kind, each holding that kind's ``Strategy`` (``strategy.py``).

The registry that lists them, and the lookups by path, key and kind, is
``apiserver.resources``. See ``docs/adding-a-kind.md``.
"""
