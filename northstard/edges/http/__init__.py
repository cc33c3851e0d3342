"""The Quart edge: dashboard pages, login, REST, long-polling, OpenAPI (Quart on Hypercorn, trio)."""
