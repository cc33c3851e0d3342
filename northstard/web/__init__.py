"""The HTTP edge: dashboard, REST, WebSocket, SSE and polling (Quart on Hypercorn, trio)."""
