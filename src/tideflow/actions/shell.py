"""The ``shell`` action: run a command in its own process group."""

from __future__ import annotations

import asyncio
import errno
import os
import shlex
import signal
import subprocess
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, model_validator

from ..errors import ActionError
from ..limits import show_bytes
from ..outputs import strict_json
from ..shellscript import ENV_PREFIX
from ._paramtypes import PARAMS_CONFIG, TextOrJson, WeakStr
from .base import ActionContext


class ShellParams(BaseModel):
    """Params of :class:`ShellAction`.

    ``cmd`` is an argv list (numbers in it become text); each item reaches the program as one
    argument, whatever it contains. A single string is accepted only with ``shell: true``, and
    is then the script given to ``/bin/sh -c``."""

    model_config = PARAMS_CONFIG

    cmd: list[TextOrJson] | WeakStr
    #: merged over the node's own environment
    env: dict[str, TextOrJson] = Field(default_factory=dict)
    cwd: str | None = None
    shell: bool = False
    #: share-data key that receives the command's stdout, stripped
    save_as: str | None = Field(default=None, alias="saveAs", min_length=1)
    #: parse stdout as JSON into the output's ``json``
    output_json: bool = Field(default=False, alias="outputJson")

    @model_validator(mode="after")
    def _check_cmd(self) -> ShellParams:
        if self.shell:
            if not isinstance(self.cmd, str):
                raise ValueError(
                    "with shell: true, cmd must be one string (the script for /bin/sh -c), "
                    "not a list"
                )
            if not self.cmd.strip():
                raise ValueError("cmd is empty")
        else:
            if isinstance(self.cmd, str):
                raise ValueError(
                    f"cmd is a single string ({self.cmd!r}); give an argv list such as "
                    '["echo", "hello"], or set shell: true to run it with /bin/sh -c'
                )
            if not self.cmd or not self.cmd[0]:
                raise ValueError("cmd is empty: its first item must name the program to run")
        return self

    def argv(self) -> list[str]:
        if isinstance(self.cmd, str):
            return ["/bin/sh", "-c", self.cmd]
        return list(self.cmd)


class _Tail:
    """The last ``limit`` bytes of a stream."""

    def __init__(self, limit: int) -> None:
        self._buf = bytearray()
        self._limit = limit
        self.truncated = False

    def feed(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > self._limit:
            del self._buf[: len(self._buf) - self._limit]
            self.truncated = True

    def text(self) -> str:
        return self._buf.decode(errors="replace")

    def last_lines(self, count: int, max_chars: int) -> str:
        text = "\n".join(self.text().rstrip().splitlines()[-count:])
        return text if len(text) <= max_chars else "..." + text[-max_chars:]


#: a line longer than this is handed to the task's log in pieces. The log splits long lines
#: itself (at 64 KiB) after masking secrets: handing it far more than that at once keeps a
#: secret from being cut in two, unmasked, at a piece's end
LINE_PIECE_BYTES = 1024 * 1024


class _Lines:
    """Cuts a stream into lines for the task's log; a line longer than ``max_bytes`` is
    written in pieces, and the last one without a newline when the stream ends."""

    def __init__(self, stream: str, write: Callable[[str, str], None],
                 max_bytes: int = LINE_PIECE_BYTES) -> None:
        self._stream = stream
        self._write = write
        self._rest = b""
        self._max = max_bytes

    def feed(self, data: bytes) -> None:
        buf = self._rest + data if self._rest else data
        parts = buf.split(b"\n")
        self._rest = parts.pop()
        write, stream = self._write, self._stream
        for part in parts:
            write(stream, part.decode(errors="replace").rstrip("\r"))
        while len(self._rest) > self._max:
            piece, self._rest = self._rest[: self._max], self._rest[self._max:]
            write(stream, piece.decode(errors="replace"))

    def end(self) -> None:
        if self._rest:
            self._write(self._stream, self._rest.decode(errors="replace").rstrip("\r"))
            self._rest = b""


class _Protocol(asyncio.SubprocessProtocol):
    """Keeps the output tails and tells apart two moments: the leader has exited (and was
    reaped), and every pipe is closed too. A process left in the group may hold the pipes long
    after the leader is gone, so waiting for the pipes alone could last forever."""

    def __init__(self, out: _Tail, err: _Tail,
                 line: Callable[[str, str], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.out = out
        self.err = err
        #: each stream's lines, for the task's log
        self.lines = ((_Lines("stdout", line), _Lines("stderr", line)) if line is not None
                      else None)
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        (self.out if fd == 1 else self.err).feed(raw)
        if self.lines is not None:
            self.lines[0 if fd == 1 else 1].feed(raw)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def end_lines(self) -> None:
        if self.lines is not None:
            for lines in self.lines:
                lines.end()

    def connection_lost(self, exc: Exception | None) -> None:
        self.end_lines()
        if not self.closed.done():
            self.closed.set_result(None)


class ShellAction:
    """Runs ``cmd`` with stdin from ``/dev/null`` in a new session, hence its own process group.

    Each line of stdout and stderr goes to the attempt's log (``ctx.log``) as it comes. The
    tails of stdout and stderr are traced when it ends; a non-zero exit fails the task with
    the exit code and the tail of stderr as the reason. Processes the command leaves running in
    its group are stopped when it exits (a daemon that must outlive the task has to start its
    own session). On cancellation or timeout the whole group gets SIGTERM, then SIGKILL after
    ``kill_grace`` seconds, and the cancellation goes on.

    With ``saveAs: key`` the stripped stdout (at most the engine's ``max_value_bytes``) is
    stored in share data.

    The task's output is ``{"exitCode": 0}``; with ``outputJson: true`` it also holds
    ``json``, the command's stdout parsed as JSON (a stdout that is not JSON fails the task).
    """

    name = "shell"
    params_model = ShellParams

    def __init__(
        self, *, kill_grace: float = 2.0, tail_bytes: int = 64 * 1024, tail_lines: int = 20
    ) -> None:
        self.kill_grace = kill_grace
        self.tail_bytes = tail_bytes
        self.tail_lines = tail_lines

    async def run(self, ctx: ActionContext, params: ShellParams) -> dict[str, Any]:
        argv = params.argv()
        if params.cwd is not None and not os.path.isdir(params.cwd):
            raise ActionError(f"cwd {params.cwd!r} is not an existing directory")
        keep_stdout = params.save_as is not None or params.output_json
        # one byte over the limit is enough to know it is too large
        save_limit = ctx.limits.max_value_bytes
        out = _Tail(save_limit + 1 if keep_stdout else self.tail_bytes)
        err = _Tail(self.tail_bytes)
        _check_exec_strings(argv, params.env)
        transport, proto = await _start(
            argv, {**os.environ, **params.env}, params.cwd,
            lambda: _Protocol(out, err, ctx.log.line)
        )
        pgid = transport.get_pid()
        ctx.trace(f"pid {pgid}: {shlex.join(argv)}")
        try:
            try:
                # shielded: the future must survive a cancellation, the cleanup waits on it
                await asyncio.shield(proto.exited)
                if await self._stop_leftovers(pgid, proto):
                    ctx.trace("stopped the processes the command left running in its group")
            except BaseException:
                # cancellation or timeout above all: the group must not outlive the attempt
                await self._kill_group(pgid, proto)
                # what it printed before being stopped tells why it ran so long
                self._trace_tails(ctx, out, err)
                raise
        finally:
            transport.close()
            # a pipe a left-over process still holds: what came so far is in the log
            proto.end_lines()
        code = transport.get_returncode()
        self._trace_tails(ctx, out, err)
        if code != 0:
            # the exit code is matched against retry.nonRetryable
            raise ActionError(self._failure(code, err), details={"exitCode": code})
        if keep_stdout and out.truncated:
            into = (f"share data as {params.save_as!r}" if params.save_as
                    else "the task's output (outputJson)")
            raise ActionError(
                f"stdout is larger than the limit of {show_bytes(save_limit)} "
                f"(max_value_bytes), too large to save in {into}"
            )
        if params.save_as:
            ctx.share_data[params.save_as] = out.text().strip()
        output: dict[str, Any] = {"exitCode": code}
        if params.output_json:
            output["json"] = _parse_json(out.text())
        return output

    async def _stop_leftovers(self, pgid: int, proto: _Protocol) -> bool:
        """After the leader exited: stop what is left of its group, then let the pipes drain."""
        left = _group_exists(pgid)
        if left:
            _signal_group(pgid, signal.SIGTERM)
            await asyncio.wait([proto.closed], timeout=self.kill_grace)
            _signal_group(pgid, signal.SIGKILL)
        # a pipe still open now belongs to a process that left the group (its own session):
        # its output is not ours to wait for
        await asyncio.wait([proto.closed], timeout=self.kill_grace)
        return left

    async def _kill_group(self, pgid: int, proto: _Protocol) -> None:
        try:
            _signal_group(pgid, signal.SIGTERM)
            await asyncio.wait([proto.exited, proto.closed], timeout=self.kill_grace)
        finally:
            # sent even when this cleanup is itself interrupted
            _signal_group(pgid, signal.SIGKILL)
        # the leader is reaped once it has exited, so no zombie is left behind
        await asyncio.wait([proto.exited], timeout=self.kill_grace)

    def _trace_tails(self, ctx: ActionContext, out: _Tail, err: _Tail) -> None:
        for label, tail in (("stdout", out), ("stderr", err)):
            text = tail.last_lines(self.tail_lines, 4000)
            if text:
                ctx.trace(f"{label} (last lines):\n{text}")

    def _failure(self, code: int | None, err: _Tail) -> str:
        if code is None:
            head = "ended without an exit status"
        elif code < 0:
            try:
                head = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                head = f"killed by signal {-code}"
        else:
            head = f"exit code {code}"
        text = err.last_lines(min(self.tail_lines, 10), 2000)
        return f"{head}: {text}" if text else f"{head} (nothing on stderr)"


def _parse_json(stdout: str) -> Any:
    try:
        return strict_json(stdout)
    except ValueError as exc:
        shown = stdout.strip()
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        raise ActionError(
            f"outputJson: true, but stdout is not JSON ({exc}): {shown!r}"
        ) from None


#: Linux's limit on one argument or one NAME=value environment string (MAX_ARG_STRLEN:
#: 32 pages), its terminating NUL included
MAX_EXEC_STRING = 131_072


def _check_exec_strings(argv: list[str], env: dict[str, str]) -> None:
    """Raise :class:`ActionError` for an argument or environment string that no process can
    be given, naming it (not its value: it may be secret) — instead of the OS's bare
    ``embedded null byte`` or ``Argument list too long``."""
    named = [(f"argument {i} of cmd", arg) for i, arg in enumerate(argv)]
    named += [(_env_label(name), f"{name}={value}") for name, value in env.items()]
    for label, text in named:
        if "\x00" in text:
            raise ActionError(f"{label} holds a NUL character, which no process can be given")
        size = len(text.encode("utf-8", "surrogateescape")) + 1
        if size > MAX_EXEC_STRING:
            raise ActionError(
                f"{label} is {size:,} bytes, over Linux's limit of {MAX_EXEC_STRING:,} bytes"
                " (128 KiB) for one argument or environment variable — pass a large value"
                " through a file instead")


def _env_label(name: str) -> str:
    if name.startswith(ENV_PREFIX):
        return f"a value of the script (environment variable {name})"
    return f"env {name!r}"


async def _start(
    argv: list[str],
    env: dict[str, str],
    cwd: str | None,
    protocol: Callable[[], _Protocol],
) -> tuple[asyncio.SubprocessTransport, _Protocol]:
    loop = asyncio.get_running_loop()
    try:
        return await loop.subprocess_exec(
            protocol,
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise ActionError(f"command not found: {argv[0]!r}") from exc
    except PermissionError as exc:
        raise ActionError(f"permission denied: cannot execute {argv[0]!r}") from exc
    except OSError as exc:
        if exc.errno == errno.E2BIG:
            raise ActionError(
                f"cannot start {argv[0]!r}: its arguments and environment together are over the"
                " system's limit (getconf ARG_MAX) — pass large values through a file"
            ) from exc
        raise ActionError(f"cannot start {argv[0]!r}: {exc}") from exc


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # the id now belongs to someone else's group: ours is gone
        return False
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
