"""The gRPC edge: ``northstar.v1.PnlStream`` on grpc.aio, in its own thread and asyncio loop.

    actor.py    trio side: the actor, the feed from the hub, the server's thread
    bridge.py   an asyncio loop in a worker thread, driven from trio
    server.py   the grpc.aio server: health, reflection, auth, TLS, keepalive, shutdown
    service.py  PnlStream handlers and the per-stream pump (asyncio side)
    ring.py     the loop's copy of the stream: encoded events, merged deltas
    convert.py  the snapshot document and merge patches <-> messages
    queries.py  GetHistory and ListSources, as the REST routes answer them
    auth.py     bearer tokens (sha256 digests in the config)
    client.py   a typed client (``northstard tail``, tests, benchmarks)
    gen.py      code generation from protos/ (``python -m northstard.edges.grpc.gen``)

Nothing is imported here, so the generator runs even when the generated code
is missing or stale.
"""
