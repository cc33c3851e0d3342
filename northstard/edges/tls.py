"""TLS on the one port, keeping the edges' design: one frame for all, a non-blocking send each.

    accept ─▶ TlsServer.handshake (peek: a plain-HTTP request gets a JSON 400;
              the handshake, non-blocking, within ``server.tls_handshake_timeout_s``)
           ─▶ TlsSocket: a ``socket.socket`` whose ``send``/``recv`` speak TLS through an
              ``ssl.SSLObject`` over two ``MemoryBIO``s, on the same descriptor
           ─▶ the front reads the request head, the edges stream, the app server
              (``appserver.py``) reads bodies and writes answers with the same calls

The edges keep their contract with ``send`` (``broadcast.py``): it returns
how many bytes of ``data`` it took, or raises ``BlockingIOError``. It
encrypts ``data`` and writes the ciphertext; when the socket does not take
all of it, the rest stays here (at most one frame's worth) and ``send``
raises ``BlockingIOError`` as if nothing was taken. The caller keeps
``data`` as its backlog (as for any short write) and offers it again, with
whatever it queued behind it, once the socket is writable: the first call
that finds that ciphertext gone reports those bytes taken, without
encrypting them twice (OpenSSL's retry-with-the-same-bytes rule, kept by
the caller). So "taken" always means "on the wire", a slow TLS client holds
one frame of plaintext (the peer's backlog) and one of ciphertext, and the
broadcast never waits. (A frame counts as progress for the blocked-client
timer only once all its ciphertext is out.)

``recv`` decrypts every whole record the bytes it read complete, and reads
no more ciphertext than leaves room for them in ``bufsize`` (at least
``RECV_MIN``), so no plaintext is ever left inside the SSL object: waiting
for the descriptor to be readable is always right, as for a plain socket.
The handshake returns the plaintext that arrived with it (a client may send
its request in the same packets).

Closing sends close_notify, best effort (never waiting). A socket whose
``send`` is not the socket's own is sent to in Python by the broadcast, not
by the C loop (``Peer.fd`` is -1 for it).
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
from pathlib import Path
from typing import Any

import structlog
import trio

from northstard.core.http1 import RECEIVE_BYTES, error_response
from northstard.errors import ConfigError
from northstard.settings import ServerSection

__all__ = ["RECV_MIN", "TlsServer", "TlsSocket", "check_pair", "load_server_context",
           "tls_server"]

log = structlog.get_logger("northstard.web")

RECV_MIN = 32768  # above the largest TLS record (16 KiB + overhead), so a record always fits
VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
HANDSHAKE_RECORD = b"\x16"
PLAIN_HTTP = error_response(400, "bad_request",
                            "this port speaks TLS: use https:// (wss:// for the WebSocket)")


def _no_password(section: str) -> bytes:
    raise ConfigError(f"{section}.tls_key", "the key is encrypted: give an unencrypted PEM key (mode 0400)")


def _read(key: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}") from None


def _load_pair(context: ssl.SSLContext, cert: Path, key: Path, section: str = "server") -> None:
    """The certificate chain and its key; ConfigError naming the file that is wrong."""
    _read(f"{section}.tls_key", key)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(
            cadata=_read(f"{section}.tls_cert", cert).decode("ascii", "replace"))
    except ssl.SSLError:
        raise ConfigError(f"{section}.tls_cert", f"{cert} holds no PEM certificate") from None
    try:
        context.load_cert_chain(cert, key, password=lambda: _no_password(section))
    except ssl.SSLError as exc:
        raise ConfigError(f"{section}.tls_key", f"{key} is not a PEM private key of tls_cert "
                          f"({exc.reason or 'invalid'})") from None


def check_pair(section: str, cert: Path, key: Path) -> None:
    """ConfigError naming ``<section>.tls_cert`` / ``tls_key`` unless they are a usable pair."""
    _load_pair(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), cert, key, section)


def load_server_context(server: ServerSection) -> ssl.SSLContext | None:
    """The TLS context ``[server]`` asks for (None: plain HTTP); ConfigError naming the key."""
    cert, key = server.tls_cert, server.tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        missing = "tls_cert" if cert is None else "tls_key"
        raise ConfigError(f"server.{missing}", "tls_cert and tls_key go together: set both or neither")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[server.tls_min_version]
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(["http/1.1"])  # the front routes HTTP/1.1 request heads
    _load_pair(context, cert, key)
    return context


def tls_server(server: ServerSection) -> TlsServer | None:
    """The handshaker for ``[server]``; None when TLS is not configured."""
    context = load_server_context(server)
    if context is None:
        return None
    return TlsServer(context, server.tls_handshake_timeout_s)


def _would_block(what: str) -> BlockingIOError:
    return BlockingIOError(errno.EAGAIN, f"TLS: {what}")


class TlsSocket(socket.socket):
    """A connected socket that speaks TLS (server side) through its ``send`` and ``recv``.

    Non-blocking only. It takes over the descriptor of the socket it wraps.
    """

    def __init__(self, raw: socket.socket, context: ssl.SSLContext) -> None:
        super().__init__(raw.family, raw.type, raw.proto, fileno=raw.detach())
        self.setblocking(False)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._out = bytearray()  # ciphertext the socket has not taken yet
        self._owed = 0  # plaintext encrypted into _out, to report taken once _out is gone
        self._eof = False
        self._established = False
        self._notified = False

    def __repr__(self) -> str:
        return (f"<TlsSocket fd={self.fileno()} {self.version() or 'handshaking'} "
                f"unsent={len(self._out)} owed={self._owed}>")

    @property
    def unsent(self) -> int:
        """Bytes of ciphertext waiting for the socket (at most about one frame)."""
        return len(self._out) + self._outgoing.pending

    def version(self) -> str | None:
        return self._tls.version() if self._established else None

    # -- the handshake ----------------------------------------------------------------------

    async def handshake(self) -> bytes:
        """The server side of the handshake; the plaintext that arrived with it."""
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
            except ssl.SSLError:
                with contextlib.suppress(OSError):
                    self._push()  # the alert, so the client learns why
                raise
        self._established = True
        await self._flush()
        return self._decrypt()

    async def _flush(self) -> None:
        while not self._push():
            await trio.lowlevel.wait_writable(self)

    async def _fill(self) -> None:
        while True:
            await trio.lowlevel.wait_readable(self)
            try:
                data = super().recv(RECEIVE_BYTES)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionResetError(errno.ECONNRESET, "the client left during the TLS handshake")
            self._incoming.write(data)
            return

    # -- application data -------------------------------------------------------------------

    def send(self, data: Any, flags: int = 0, /) -> int:
        """How many bytes of ``data`` are on the wire now, else BlockingIOError (module docstring)."""
        taken = self._owed
        if len(data) < taken:
            raise OSError(errno.EINVAL, "TLS: a blocked send must be offered the same bytes again")
        if self._out and not self._push():
            raise _would_block("the socket has not taken the last record yet")
        self._owed = 0
        if len(data) > taken:
            with memoryview(data) as view, view[taken:] as rest:  # released: data may be a backlog
                self._tls.write(rest)
            if not self._push():
                self._owed = len(data) - taken
                if not taken:
                    raise _would_block("the socket took part of the record")
                return taken
        return len(data)

    def _push(self) -> bool:
        """Write pending ciphertext without waiting; True once the socket took all of it."""
        if self._outgoing.pending:
            record = self._outgoing.read()
            if not self._out:
                try:
                    sent = super().send(record)
                except BlockingIOError:
                    sent = 0
                if sent == len(record):
                    return True
                self._out += memoryview(record)[sent:]
                return False
            self._out += record
        while self._out:
            try:
                sent = super().send(self._out)
            except BlockingIOError:
                return False
            del self._out[:sent]
        return True

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        """Plaintext: at most ``max(bufsize, RECV_MIN)`` bytes; b"" at the end of the stream.

        Raises BlockingIOError when no whole record has arrived yet.
        """
        if self._eof:
            return b""
        data = super().recv(max(bufsize, RECV_MIN) - self._incoming.pending)
        if not data:
            self._eof = True  # the TCP end, with or without close_notify
            return b""
        self._incoming.write(data)
        plain = self._decrypt()
        if not plain and not self._eof:
            raise _would_block("no whole record yet")
        return plain

    def _decrypt(self) -> bytes:
        """Every whole record the incoming buffer holds (nothing decrypted is left behind)."""
        parts = []
        while True:
            try:
                part = self._tls.read(RECEIVE_BYTES)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self._eof = True
                break
            if not part:
                self._eof = True
                break
            parts.append(part)
        if self._outgoing.pending:  # a reply the records asked for (a key update)
            self._push()
        return b"".join(parts)

    # -- closing ----------------------------------------------------------------------------

    def shutdown(self, how: int, /) -> None:
        if how != socket.SHUT_RD:
            self._close_notify()
        super().shutdown(how)

    def close(self) -> None:
        if self.fileno() >= 0:
            self._close_notify()
        super().close()

    def _close_notify(self) -> None:
        """Best effort: queued after what is unsent, written if the socket takes it now."""
        if self._notified or not self._established:
            return
        self._notified = True
        with contextlib.suppress(ssl.SSLError):
            self._tls.unwrap()  # writes close_notify, then wants the client's: not awaited
        with contextlib.suppress(OSError):
            self._push()


async def _speaks_tls(sock: socket.socket) -> bool:
    """Whether the client starts a TLS handshake; a plain-HTTP request gets a JSON 400."""
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        break
    if first == HANDSHAKE_RECORD or not first:
        return first == HANDSHAKE_RECORD
    if first.isalpha():
        with contextlib.suppress(OSError):  # the answer fits any socket buffer
            sock.recv(RECEIVE_BYTES)  # read the request, so that closing does not reset
            sock.send(PLAIN_HTTP)
    log.debug("tls: the client did not start a handshake", first_byte=first.hex())
    return False


class TlsServer:
    """Each accepted connection's handshake, within ``timeout_s``."""

    def __init__(self, context: ssl.SSLContext, timeout_s: float) -> None:
        self.context = context
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"<TlsServer min={self.context.minimum_version.name} timeout={self.timeout_s:g}s>"

    async def handshake(self, sock: socket.socket) -> tuple[TlsSocket, bytearray] | None:
        """The connection over TLS, and the plaintext that came with the handshake.

        None when the client did not complete the handshake in time or it failed
        (logged at debug); the caller closes ``sock`` (a TlsSocket is closed here).
        """
        try:
            with trio.fail_after(self.timeout_s):
                if not await _speaks_tls(sock):
                    return None
                tls = TlsSocket(sock, self.context)  # takes the descriptor: ours to close
                try:
                    return tls, bytearray(await tls.handshake())
                except BaseException:  # cancelled at shutdown, too
                    tls.close()
                    raise
        except (OSError, trio.TooSlowError) as exc:
            log.debug("tls handshake failed", error=f"{type(exc).__name__}: {exc}")
            return None
