"""The Redis backplane's pure parts: settings, the stream entry format, following a stream."""
