"""The pure core: P&L, money, records, merge patches, the patch ring, rate and time rules.

No I/O here (no sockets, files, threads, trio or SQLite) and nothing of northstard
outside ``core`` except ``errors``; ``tests/test_layering.py`` checks it.
"""
