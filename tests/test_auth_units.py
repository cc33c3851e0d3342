"""``northstard.policy.auth`` and ``web.cors`` on their own: tokens, digests, cookies, exposure, CORS."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from northstard.config import default_settings, load_config
from northstard.core.hosts import is_loopback
from northstard.errors import ConfigError
from northstard.policy.auth import (
    Authenticator,
    TokenEntry,
    bearer,
    check_exposure,
    cookie,
    digest,
    load_session_key,
    new_token,
    new_token_text,
    parse_tokens,
    tokens_problem,
)
from northstard.policy.cors import cors_headers, is_preflight, preflight_headers
from northstard.settings import Settings

KEY = b"k" * 32
NOW = 1_800_000_000.0


def authenticator(*tokens: str, **options: Any) -> Authenticator:
    return Authenticator([TokenEntry(digest(t), f"t{i}") for i, t in enumerate(tokens)], KEY, **options)


def test_new_tokens_are_prefixed_random_and_only_their_digest_is_printed_as_config() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(t.startswith("nsd_") and len(t) == 47 for t in tokens)
    token, entry = new_token_text("ci")
    assert entry == f'{{ name = "ci", sha256 = "{digest(token)}" }}'
    assert token not in entry
    token, entry = new_token_text()
    assert entry == f'"{digest(token)}"'


def test_token_entries_are_checked_with_a_message_naming_the_entry() -> None:
    good = digest("a")
    assert parse_tokens([good.upper(), {"name": "ci", "sha256": digest("b")}]) == (
        TokenEntry(good), TokenEntry(digest("b"), "ci"))
    cases = {
        "entry 1: expected a sha256": ["abc"],
        "entry 2: this is a token itself": [good, new_token()],
        "entry 1: unknown key 'digest'": [{"name": "x", "digest": good}],
        "entry 1: name": [{"name": "has space", "sha256": good}],
        "share a name": [{"name": "x", "sha256": good}, {"name": "x", "sha256": digest("b")}],
        "listed twice": [good, {"name": "x", "sha256": good}],
    }
    for message, value in cases.items():
        problem = tokens_problem(value)
        assert problem is not None and message in problem, (message, problem)


def test_the_auth_section_is_validated_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[sources]\n[auth]\ntokens = [{{ name = "ci", sha256 = "{digest("t")}" }}]\n')
    section = load_config(path, {}, environ={}).sections["auth"]
    assert section["tokens"] == [{"name": "ci", "sha256": digest("t")}]
    assert section["open"] == ["health"] and section["cookie_secure"] == "auto"
    for bad, key in (('tokens = ["nsd_x"]', "auth.tokens"), ('open = ["sources"]', "auth.open"),
                     ("session_lifetime_s = 1", "auth.session_lifetime_s"),
                     ('cookie_name = "a;b"', "auth.cookie_name"),
                     ('cookie_secure = "never"', "auth.cookie_secure")):
        path.write_text(f"[sources]\n[auth]\n{bad}\n")
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(path, {}, environ={})


def test_the_tail_token_variable_is_not_a_config_override(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[sources]\n")
    config = load_config(path, {}, environ={"NORTHSTARD_TOKEN": "nsd_x"})
    assert config.sections["auth"]["tokens"] == []


def test_credentials_are_read_from_headers_cookies_and_the_query() -> None:
    assert bearer("Bearer abc") == "abc" and bearer("bearer  abc ") == "abc"
    for value in (None, "", "Bearer ", "Basic abc", "abc"):
        assert bearer(value) is None, value
    assert cookie("a=1; northstard_session=v.1.m; b=2", "northstard_session") == "v.1.m"
    assert cookie('northstard_session="q"', "northstard_session") == "q"
    assert cookie("x_northstard_session=1; other", "northstard_session") is None
    auth = authenticator("s3cret", "other")
    assert auth.identify({"authorization": "Bearer s3cret"}, {}) == auth.tokens[0]
    assert auth.identify({}, {"token": "other"}) == auth.tokens[1]
    session = auth.session(auth.tokens[1])
    assert auth.identify({"cookie": f"northstard_session={session}"}, {}) == auth.tokens[1]
    assert auth.identify({"authorization": "Bearer wrong"}, {"token": "nope"}) is None
    assert auth.principal_of({"authorization": "Bearer s3cret"}, {}) == digest("s3cret")[:16]
    assert auth.principal_of({}, {}) is None
    assert Authenticator().principal_of({"authorization": "Bearer s3cret"}, {}) is None
    assert "s3cret" not in repr(auth) and digest("s3cret") not in repr(auth)


def test_a_session_cookie_expires_and_cannot_be_forged() -> None:
    auth = authenticator("s3cret", lifetime_s=3600)
    value = auth.session(auth.tokens[0], now=NOW)
    ident, expiry, mac = value.split(".")
    assert ident == digest("s3cret")[:16] and int(expiry) == NOW + 3600
    assert auth.check_session(value, now=NOW + 3599) == auth.tokens[0]
    assert auth.check_session(value, now=NOW + 3600) is None
    longer = f"{ident}.{int(expiry) + 1}.{mac}"
    flipped = f"{ident}.{expiry}.{'0' if mac[0] != '0' else '1'}{mac[1:]}"
    for bad in (longer, flipped, f"{ident}.{expiry}", "", "a.b.c", f"{ident}.-5.{mac}"):
        assert auth.check_session(bad, now=NOW) is None, bad
    other_key = Authenticator(auth.tokens, b"x" * 32, lifetime_s=3600)
    assert other_key.check_session(value, now=NOW) is None
    far = auth.session(auth.tokens[0], now=NOW + 10 * 3600)
    assert auth.check_session(far, now=NOW) is None  # issued for longer than the lifetime


def test_a_removed_token_ends_its_sessions() -> None:
    both = authenticator("kept", "removed")
    kept, removed = both.session(both.tokens[0]), both.session(both.tokens[1])
    after = Authenticator(both.tokens[:1], KEY)
    assert after.check_session(kept) == both.tokens[0]
    assert after.check_session(removed) is None


def test_the_session_key_is_made_once_private_and_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    key = load_session_key(None, state)
    path = state / "northstard.session-key"
    assert len(key) >= 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_session_key(None, state) == key
    given = tmp_path / "given.key"
    given.write_text("z" * 40 + "\n")
    assert load_session_key(given, state) == b"z" * 40
    given.write_text("short")
    with pytest.raises(ConfigError, match=r"auth\.session_key_file"):
        load_session_key(given, state)
    with pytest.raises(ConfigError, match=r"auth\.session_key_file: cannot read"):
        load_session_key(tmp_path / "missing", state)


def sections(host: str = "127.0.0.1", grpc_host: str = "127.0.0.1", tokens: bool = False,
             grpc_tokens: bool = False, insecure: bool = False, grpc: bool = True) -> Settings:
    settings = default_settings()
    return replace(
        settings, server=replace(settings.server, host=host, insecure_no_auth=insecure),
        grpc=replace(settings.grpc, enabled=grpc, host=grpc_host,
                     tokens=(digest("g"),) if grpc_tokens else ()),
        auth=replace(settings.auth, tokens=(digest("t"),) if tokens else ()))


def test_only_loopback_listeners_may_go_without_tokens() -> None:
    for host in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost", "unix:/run/n.sock"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.com", ""):
        assert not is_loopback(host), host
    assert check_exposure(sections()) == []
    assert check_exposure(sections(host="0.0.0.0", grpc_host="::", tokens=True)) == []
    assert check_exposure(sections(grpc_host="0.0.0.0", grpc_tokens=True)) == []
    assert check_exposure(sections(grpc_host="0.0.0.0", grpc=False)) == []
    with pytest.raises(ConfigError, match=r"server\.host: '0\.0\.0\.0' is reachable .* --insecure-no-auth"):
        check_exposure(sections(host="0.0.0.0"))
    with pytest.raises(ConfigError, match=r"grpc\.host"):
        check_exposure(sections(grpc_host="10.0.0.5"))
    with pytest.raises(ConfigError, match=r"server\.host"):  # grpc.tokens protect only gRPC
        check_exposure(sections(host="0.0.0.0", grpc_tokens=True))
    assert check_exposure(sections(host="0.0.0.0", grpc_host="::", insecure=True)) == [
        "server.host", "grpc.host"]


def test_cors_echoes_listed_origins_with_credentials_and_star_without() -> None:
    listed = ["https://ops.example"]
    assert dict(cors_headers("https://ops.example", listed)) == {
        "Access-Control-Allow-Origin": "https://ops.example", "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": "ETag", "Vary": "Origin"}
    assert cors_headers("https://evil.example", listed) == [("Vary", "Origin")]
    assert cors_headers("https://evil.example", []) == []
    star = dict(cors_headers("https://any.example", ["*"]))
    assert star["Access-Control-Allow-Origin"] == "*" and "Access-Control-Allow-Credentials" not in star
    both = dict(cors_headers("https://ops.example", ["*", "https://ops.example/"]))
    assert both["Access-Control-Allow-Origin"] == "https://ops.example"
    assert is_preflight("OPTIONS", {"origin": "x", "access-control-request-method": "GET"})
    assert not is_preflight("OPTIONS", {"origin": "x"})
    assert not is_preflight("GET", {"origin": "x", "access-control-request-method": "GET"})
    allowed = dict(preflight_headers("https://ops.example", listed))
    assert "Authorization" in allowed["Access-Control-Allow-Headers"]
    assert "GET" in allowed["Access-Control-Allow-Methods"]
    assert preflight_headers("https://evil.example", listed) == [("Vary", "Origin")]
