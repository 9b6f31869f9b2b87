"""Bearer tokens for the HTTP API.

Tokens come from configuration: a token file, an environment variable named on the command
line, or both. The syntax is the same in either place:

- one token per line in a file: blank lines are ignored, and so is a ``#`` comment, on a line
  of its own or after the token (``TOKEN:ro   # dashboards``); in an environment variable,
  tokens separated by commas or whitespace;
- ``TOKEN`` or ``TOKEN:rw`` may use every route; ``TOKEN:ro`` is read-only (GET and HEAD).

When any token is configured, every route except ``/healthz`` (and the web UI's static files)
needs ``Authorization: Bearer TOKEN``: none (or an unknown one) is answered 401, a read-only
token on anything but GET/HEAD 403.

With no token configured, the API answers only clients on a loopback address (others get 403)
— unless it was opened to everyone on purpose (:meth:`ApiAuth.open`, or ``create_app(engine,
auth=None)``), for an app whose own middleware or proxy authenticates.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

READ_METHODS = frozenset({"GET", "HEAD"})
_SUFFIXES = {"ro": True, "rw": False}
_SPLIT_ENV = re.compile(r"[\s,]+")
#: a comment in a token file: ``#`` at the start of a line, or after whitespace (a token
#: holds no whitespace, so ``#`` inside one is part of it)
_COMMENT = re.compile(r"(?:^|\s)#.*$")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost``, 127.0.0.0/8, ``::1``, and
    127.x written as an IPv4-mapped IPv6 address)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # a host name could resolve anywhere: not loopback
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


@dataclass(frozen=True)
class ApiToken:
    """One configured token; ``read_only`` tokens may only GET and HEAD."""

    value: str
    read_only: bool = False

    def __repr__(self) -> str:  # a token never ends up in a log line
        return f"ApiToken(read_only={self.read_only})"


@dataclass(frozen=True)
class AuthFailure:
    """Why a request is refused: the HTTP status, the error code and a message."""

    status: int
    code: str
    message: str


def parse_token(entry: str, *, where: str) -> ApiToken:
    """``TOKEN``, ``TOKEN:rw`` or ``TOKEN:ro`` → :class:`ApiToken`."""
    value, sep, suffix = entry.rpartition(":")
    read_only = False
    if sep and suffix in _SUFFIXES:
        read_only = _SUFFIXES[suffix]
    else:
        value = entry
    if not value:
        raise InputError(f"{where}: an empty token — write TOKEN, TOKEN:rw or TOKEN:ro")
    if any(c.isspace() for c in value):
        raise InputError(f"{where}: a token cannot contain whitespace")
    return ApiToken(value, read_only)


class ApiAuth:
    """The tokens the API accepts. With none, only loopback clients are answered (and the
    server binds only to a loopback address: see :func:`tideflow.api.check_bind`), unless
    built with :meth:`open`."""

    def __init__(self, tokens: Iterable[ApiToken | str] = ()) -> None:
        self._tokens = tuple(
            t if isinstance(t, ApiToken) else parse_token(t, where="token") for t in tokens
        )
        self._open = False

    @classmethod
    def open(cls) -> ApiAuth:
        """No tokens, and every client answered wherever it connects from: for an app whose
        own middleware (or a proxy in front) authenticates. Choose it on purpose."""
        auth = cls()
        auth._open = True
        return auth

    @property
    def open_to_all(self) -> bool:
        """Whether clients on any address are answered without a token."""
        return self._open

    @classmethod
    def from_sources(
        cls,
        token_file: Path | None = None,
        token_env: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> ApiAuth:
        """Tokens from a file and/or the environment variable named ``token_env``.

        A file that cannot be read, a variable that is not set, or a source that names no
        token is an :class:`InputError`: the caller asked for authentication and must not
        silently get none."""
        tokens: list[ApiToken] = []
        if token_file is not None:
            try:
                text = Path(token_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"token file {token_file}: cannot read it: {exc}") from None
            found = []
            for n, line in enumerate(text.splitlines(), 1):
                line = _COMMENT.sub("", line).strip()
                if line:
                    found.append(parse_token(line, where=f"token file {token_file}, line {n}"))
            if not found:
                raise InputError(f"token file {token_file} has no token in it")
            tokens.extend(found)
        if token_env is not None:
            env = os.environ if environ is None else environ
            raw = env.get(token_env, "")
            entries = [e for e in _SPLIT_ENV.split(raw) if e]
            if not entries:
                raise InputError(
                    f"environment variable {token_env} holds no token (it is unset or empty)"
                )
            tokens.extend(parse_token(e, where=f"${token_env}") for e in entries)
        return cls(tokens)

    @property
    def enabled(self) -> bool:
        """Whether any token is configured (then every route but /healthz needs one)."""
        return bool(self._tokens)

    @property
    def tokens(self) -> tuple[ApiToken, ...]:
        return self._tokens

    def _match(self, presented: str) -> ApiToken | None:
        given = presented.encode("utf-8", "surrogatepass")
        match = None
        # compare against every token, so the time taken does not tell which one matched
        for token in self._tokens:
            if hmac.compare_digest(given, token.value.encode("utf-8", "surrogatepass")):
                match = token
        return match

    def check(
        self, authorization: str | None, method: str, client_host: str | None = None
    ) -> AuthFailure | None:
        """None when a request with this ``Authorization`` header, from ``client_host``, may
        use ``method``."""
        if not self._tokens:
            if self._open or client_host is None or is_loopback(client_host):
                return None
            return AuthFailure(
                403, "forbidden", "this API has no tokens configured, so it answers only "
                "clients on this machine (a loopback address): configure tokens, or open it "
                "to every client on purpose with create_app(engine, auth=None)"
            )
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return AuthFailure(
                401, "unauthorized", "this server needs a token: send 'Authorization: Bearer "
                "TOKEN'"
            )
        token = self._match(presented.strip())
        if token is None:
            return AuthFailure(401, "unauthorized", "the token is not valid on this server")
        if token.read_only and method.upper() not in READ_METHODS:
            return AuthFailure(
                403, "forbidden", f"a read-only token may only GET; {method.upper()} needs a "
                "read-write token"
            )
        return None
