"""Rules every edge applies alike: tokens and sessions, connection and rate limits, CORS and
Origin, the stream parameters (``since``, ``wait``)."""
