"""The edges: one folder per protocol (``http``, ``stream``, ``grpc``), which never import
each other, and what they share (systemd socket activation, TLS). ``listener`` wires the
HTTP and stream edges onto one port."""
