"""The raw-socket edges: the one-port front, WebSocket ``/ws`` and SSE ``/api/pnl/stream``,
and the broadcast that writes one encoded delta to every socket."""
