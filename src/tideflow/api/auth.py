"""Bearer tokens for the HTTP API.

Tokens come from configuration: a token file, an environment variable named on the command
line, or both. The syntax is the same in either place:

- one token per line in a file (blank lines and lines starting with ``#`` are ignored); in an
  environment variable, tokens separated by commas or whitespace;
- ``TOKEN`` or ``TOKEN:rw`` may use every route; ``TOKEN:ro`` is read-only (GET and HEAD).

When any token is configured, every route except ``/healthz`` needs
``Authorization: Bearer TOKEN``: none (or an unknown one) is answered 401, a read-only token
on anything but GET/HEAD 403.
"""

from __future__ import annotations

import hmac
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

READ_METHODS = frozenset({"GET", "HEAD"})
_SUFFIXES = {"ro": True, "rw": False}
_SPLIT_ENV = re.compile(r"[\s,]+")


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
    """The tokens the API accepts. With none, every request is let in (the server then binds
    only to a loopback address: see :func:`tideflow.api.check_bind`)."""

    def __init__(self, tokens: Iterable[ApiToken | str] = ()) -> None:
        self._tokens = tuple(
            t if isinstance(t, ApiToken) else parse_token(t, where="token") for t in tokens
        )

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
                line = line.strip()
                if line and not line.startswith("#"):
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

    def check(self, authorization: str | None, method: str) -> AuthFailure | None:
        """None when a request with this ``Authorization`` header may use ``method``."""
        if not self._tokens:
            return None
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
