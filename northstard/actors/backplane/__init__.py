"""The Redis backplane: the core publishes each committed change to a Redis Stream,
edge nodes follow it and serve the same edges (WebSocket, SSE, polling, REST, gRPC).

    core: writer ─▶ publisher ─XADD─▶ Redis  <prefix>stream   (MAXLEN ~ ring size)
                                        │    <prefix>current  (snapshot + epoch, seq)
                                        │    <prefix>core     (liveness, expires)
    edge:  follower ◀──XREAD BLOCK──────┘ ─▶ hub + cache ─▶ web and gRPC edges

``settings`` and ``wire`` are pure; ``publisher`` (core) and ``follower``
(edge) are actors; ``edge`` assembles an edge node.
"""
