"""Values in a ``shell: true`` script reach ``/bin/sh`` as data, never as script text.

Each ``{{ ... }}`` of a script renders to a marker; the script is then read as the shell would
read it (quotes, ``$(...)``, backticks, here-documents, ``${...}``, arithmetic), and each marker
becomes a reference to an environment variable that holds the value:

==========================================  =====================================
where the template is                        what the script gets
==========================================  =====================================
unquoted, in ``$(...)`` or backticks         ``"${TIDEFLOW_V1}"``
inside ``"..."``, in an unquoted heredoc     ``${TIDEFLOW_V1}``
inside ``'...'``                             ``'"${TIDEFLOW_V1}"'`` (closed and reopened)
==========================================  =====================================

The shell expands a reference once and never reads its value as code, whatever it holds —
except where the shell itself evaluates text: arithmetic (``$(( ))``, ``(( ))``, ``$[ ]``,
``let``, bash's ``[[ ]]``), ``$'...'``, a quoted here-document (where nothing expands), a
heredoc delimiter, the inside of ``${...}`` beyond the default forms, right after a
backslash, and an argument of ``alias``. Like the shell, the reader removes
backslash-newline before it splits words, and knows a builtin's name however it is quoted
(``l\\et``). A template there is refused, at registration when it can be seen in the text,
else when the task renders.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from jinja2 import nodes

#: the prefix of the environment variables that carry a script's values
ENV_PREFIX = "TIDEFLOW_V"

# what the scanner reads in place of a value: no author writes a NUL into a script, and
# exec refuses one in an argument, so it cannot be confused with the text around it
_SLOT = "\x00"
_SCRIPT_LIKE = frozenset({"script", "sub", "bt", "dbracket", "compound"})
# the start of a compound array assignment, a=( ... ) or a+=( ... )
_COMPOUND = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=\(")
_WORD_BREAK = frozenset(" \t\n;&|()<>")
# how far ahead of the reading position line continuations are removed: more than any keyword
# or operator the reader looks for
_LOOKAHEAD = 64
# a word made of letters, quoted or not, and the builtins that read their arguments as code
_PLAIN_WORD = re.compile(r"""(?:[A-Za-z]|\\[A-Za-z]|'[A-Za-z]*'|"[A-Za-z]*")+""")
_EVALUATING = {"let": "let", "alias": "alias"}
# what a simple command follows, and the commands that only print their arguments
_COMMAND_START = ";&|\n(){}`"
# (printf's first word must plainly not be -v: not quoted, expanded, or a value)
_PRINTING = re.compile(r"[ \t]*(?:(?:then|do|else|!)[ \t]+)*"
                       r"(?:echo[ \t]|printf[ \t]+[A-Za-z0-9%_./:,+=@])")
_DEFAULT_OPS = (":-", ":=", ":+", ":?", "-", "=", "+", "?")

_REFUSED = {
    "arith": "inside shell arithmetic ($(( )), (( )), $[ ], let or an array subscript"
             " name[...] or a=([...]=x)), where the shell evaluates"
             " the value as code; assign it to a variable first and check that it is a number"
             " (case \"$n\" in ''|*[!0-9]*) exit 1;; esac)",
    "dbracket": "inside [[ ]], where bash evaluates the operands of -eq, -lt, ... as code;"
                " use [ ] (test) instead",
    "ansi": "inside $'...', which cannot hold a value; use '...' or \"...\"",
    "qdoc": "inside a here-document with a quoted delimiter, where the shell expands nothing;"
            " use an unquoted delimiter (<<EOF) to have the value inserted",
    "delim": "in a here-document delimiter",
    "param": "inside ${...}: only ${name:-...}, ${name:=...}, ${name:+...} and ${name:?...}"
             " take a value",
    "escape": "right after a backslash",
    "alias": "an argument of alias, whose value the shell later reads as a command",
    "nul": "the script contains a NUL character",
}


class ScriptError(ValueError):
    """A value sits where the shell would read it as code, or the script cannot be read."""


@dataclass
class _Frame:
    kind: str
    depth: int = 0  # open parentheses, brackets or braces, by kind
    #: for arithmetic: "))" for $(( )) and (( )), "]" for $[ ]
    closer: str = "))"


@dataclass
class _Scan:
    """Where each slot of a script is: ``"script"``, ``"dq"``, ``"sq"``, ``"doc"``,
    ``"comment"``, or the key of a refusal in ``_REFUSED``."""

    text: str
    places: list[str] = field(default_factory=list)
    pending: list[tuple[str, bool, bool]] = field(default_factory=list)  # heredocs to read
    removed: int = 0  # line continuations taken out of ``text`` so far

    def _cut(self, at: int) -> None:
        """Take the backslash-newline at ``at`` out of the text, as the shell does before it
        splits words: ``$(\\<newline>(`` is ``$((``."""
        self.text = self.text[:at] + self.text[at + 2 :]
        self.removed += 1

    def _join(self, i: int, end: int) -> None:
        """Remove the line continuations in the few characters after ``i`` (where a keyword
        could be looked for), up to anything that could change the context: a quote, a
        comment, a newline (a quoted here-document may start after it)."""
        while True:
            text = self.text
            at = text.find("\\\n", i, min(end, i + _LOOKAHEAD))
            if at < 0:
                return
            j = i
            while j < at:
                if text[j] in "'\"#\n":
                    return
                j += 2 if text[j] == "\\" else 1
            if j != at:  # the backslash is itself escaped
                return
            self._cut(at)
            end -= 2

    def run(self, start: int, end: int, kind: str, outer: tuple[_Frame, ...] = ()) -> None:
        """Read ``text[start:end]`` as ``kind``; ``outer`` are the frames around it (a
        here-document's body is read apart, but inside what its command is inside)."""
        stack = [*outer, _Frame(kind)]
        # a line continuation removed ahead shortens what is left of every range being read
        base, end0 = self.removed, end
        i = start
        word_start = True
        while True:
            frame = stack[-1]
            if frame.kind not in ("sq", "ansi"):
                self._join(i, end0 - 2 * (self.removed - base))
            end = end0 - 2 * (self.removed - base)
            if i >= end:
                break
            text = self.text
            c = text[i]
            if c == _SLOT:
                self._place(stack)
                i += 1
                word_start = False
                continue
            if frame.kind == "sq":
                if c == "'":
                    stack.pop()
                i += 1
                continue
            if word_start and frame.kind in _SCRIPT_LIKE:
                # the shell removes quotes before it looks a command up: l\et, 'l'et, "let"
                # are let
                m = _PLAIN_WORD.match(text, i, end)
                if m and text[m.end() : m.end() + 1] in (" ", "\t"):
                    word = re.sub(r"[\\'\"]", "", m.group())
                    if word in _EVALUATING:
                        stack.append(_Frame(_EVALUATING[word]))
                        i = m.end()
                        continue
            if c == "\\":
                if text.startswith(_SLOT, i + 1):
                    self.places.append("escape")
                i += 2
                word_start = False
                continue
            if frame.kind == "ansi":
                if c == "'":
                    stack.pop()
                i += 1
                continue
            if c == "$":
                depth = len(stack)
                i = self._dollar(stack, i, end)
                # a command substitution starts a command: [[, (( and let may follow
                word_start = len(stack) > depth and stack[-1].kind == "sub"
                continue
            if c == "`":
                if frame.kind == "bt":
                    stack.pop()
                else:
                    stack.append(_Frame("bt"))
                    word_start = True
                i += 1
                continue
            if frame.kind in ("dq", "doc"):
                if c == '"' and frame.kind == "dq":
                    stack.pop()
                i += 1
                continue
            # unquoted text: a script, arithmetic, or the word of ${name:-word}
            if c == "'":
                stack.append(_Frame("sq"))
            elif c == '"':
                stack.append(_Frame("dq"))
            elif frame.kind == "pword":
                if c == "{":
                    frame.depth += 1
                elif c == "}":
                    if frame.depth == 0:
                        stack.pop()
                    else:
                        frame.depth -= 1
            elif frame.kind == "pother":
                if c == "}":
                    stack.pop()
            elif frame.kind == "arith":
                i = self._arith(stack, frame, i)
                continue
            elif frame.kind in ("let", "alias"):
                if c in "\n;&|":
                    stack.pop()
                    continue
            else:
                i, word_start = self._script(stack, frame, i, end, word_start)
                continue
            i += 1
            word_start = False

    def _place(self, stack: list[_Frame]) -> None:
        for frame in stack:
            if frame.kind in ("arith", "let", "alias", "dbracket", "ansi", "pother"):
                self.places.append("param" if frame.kind == "pother" else
                                   "arith" if frame.kind == "let" else frame.kind)
                return
        kind = stack[-1].kind
        if kind == "pword":
            # the word of ${x:-word} is quoted as the ${...} around it is
            outer = [f.kind for f in stack[:-1] if f.kind in ("dq", "doc", "sq")]
            self.places.append("dq" if outer and outer[-1] in ("dq", "doc") else "script")
        elif kind in _SCRIPT_LIKE:
            self.places.append("script")
        else:
            self.places.append(kind)

    def _dollar(self, stack: list[_Frame], i: int, end: int) -> int:
        text = self.text
        nxt = text[i + 1 : i + 3]
        if nxt == "((":
            stack.append(_Frame("arith"))
            return i + 3
        if nxt[:1] == "(":
            stack.append(_Frame("sub"))
            return i + 2
        if nxt[:1] == "[":
            stack.append(_Frame("arith", closer="]"))
            return i + 2
        if nxt[:1] == "'" and stack[-1].kind not in ("dq", "doc"):
            stack.append(_Frame("ansi"))
            return i + 2
        if nxt[:1] == '"' and stack[-1].kind not in ("dq", "doc"):
            stack.append(_Frame("dq"))
            return i + 2
        if nxt[:1] == "{":
            j = i + 2
            while j < end and (text[j].isalnum() or text[j] == "_"):
                j += 1
            if j == i + 2 and j < end and text[j] in "@*#?$!-0123456789":
                j += 1
            op = next((o for o in _DEFAULT_OPS if text.startswith(o, j)), None)
            if j > i + 2 and op is not None:
                stack.append(_Frame("pword"))
                return j + len(op)
            if j > i + 2 and text.startswith("}", j):
                return j + 1
            stack.append(_Frame("pother"))
            return j
        return i + 1

    def _arith(self, stack: list[_Frame], frame: _Frame, i: int) -> int:
        text, c = self.text, self.text[i]
        if frame.closer == "]":
            if c == "[":
                frame.depth += 1
            elif c == "]":
                if frame.depth == 0:
                    stack.pop()
                else:
                    frame.depth -= 1
            return i + 1
        if c == "(":
            frame.depth += 1
        elif c == ")":
            if frame.depth > 0:
                frame.depth -= 1
            elif text.startswith("))", i):
                stack.pop()
                return i + 2
        return i + 1

    def _script(self, stack: list[_Frame], frame: _Frame, i: int, end: int,
                word_start: bool) -> tuple[int, bool]:
        text, c = self.text, self.text[i]
        if c == "#" and word_start:
            stop = text.find("\n", i, end)
            stop = end if stop < 0 else stop
            for _ in range(text.count(_SLOT, i, stop)):
                self.places.append("comment")
            return stop, True
        if c == "\n":
            if self.pending:
                return self._heredocs(i + 1, end, tuple(stack)), True
            return i + 1, True
        # bash's (( )) may follow if, while, && ...: any word that starts with (( is taken
        # for arithmetic (two nested subshells are written "( (")
        if word_start and text.startswith("((", i):
            stack.append(_Frame("arith"))
            return i + 2, False
        if word_start and text.startswith("[[", i) and text[i + 2 : i + 3] in (" ", "\t", "\n"):
            stack.append(_Frame("dbracket"))
            return i + 2, True
        if frame.kind == "dbracket" and word_start and text.startswith("]]", i):
            stack.pop()
            return i + 2, False
        if text.startswith("<<", i) and not text.startswith("<<<", i):
            return self._heredoc_operator(i + 2, end), False
        if word_start and (m := _COMPOUND.match(text, i, end)):
            stack.append(_Frame("compound"))
            return m.end(), True
        if c == "[" and frame.kind == "compound" and word_start:
            # a=([key]=value): bash evaluates an indexed array's key as arithmetic
            stack.append(_Frame("arith", closer="]"))
            return i + 1, False
        if (c == "[" and not word_start and (text[i - 1].isalnum() or text[i - 1] == "_")
                and not _printed(text, i)):
            # bash evaluates the subscript of an indexed array as arithmetic: a[i]=x
            stack.append(_Frame("arith", closer="]"))
            return i + 1, False
        if c == "(":
            frame.depth += 1
        elif c == ")":
            if frame.depth > 0:
                frame.depth -= 1
            elif frame.kind in ("sub", "compound"):
                stack.pop()
        return i + 1, c in _WORD_BREAK

    def _heredoc_operator(self, i: int, end: int) -> int:
        text = self.text
        strip = text.startswith("-", i)
        i += strip
        while i < end and text[i] in " \t":
            i += 1
        word = []
        quoted = False
        while i < end and text[i] not in _WORD_BREAK:
            c = text[i]
            if c == _SLOT:
                self.places.append("delim")
            elif c in "'\"":
                quoted = True
                close = text.find(c, i + 1, end)
                close = end if close < 0 else close
                word.append(text[i + 1 : close])
                i = close
            elif c == "\\":
                quoted = True
                word.append(text[i + 1 : i + 2])
                i += 1
            else:
                word.append(c)
            i += 1
        self.pending.append(("".join(word), quoted, bool(strip)))
        return i

    def _heredocs(self, i: int, end: int, outer: tuple[_Frame, ...]) -> int:
        """Read the bodies of the pending here-documents, from ``i``; return where the script
        goes on."""
        pending, self.pending = self.pending, []
        for delimiter, quoted, strip in pending:
            body_start = i
            while True:
                if i >= end:  # the shell ends an unclosed here-document with the script
                    body_end = end
                    break
                text = self.text
                stop = text.find("\n", i, end)
                line_end = end if stop < 0 else stop
                if not quoted and stop >= 0 and _odd_backslashes(text, i, line_end):
                    # an unquoted body's lines are joined before the delimiter is looked for
                    self._cut(line_end - 1)
                    end -= 2
                    continue
                line = text[i:line_end]
                if (line.lstrip("\t") if strip else line) == delimiter:
                    body_end = i
                    i = line_end + 1 if stop >= 0 else end
                    break
                i = line_end + 1
            if quoted:
                self.places.extend("qdoc" for _ in range(
                    self.text.count(_SLOT, body_start, body_end)))
            else:
                before = self.removed
                self.run(body_start, body_end, "doc", outer)
                shift = 2 * (self.removed - before)
                i, end = i - shift, end - shift
        return i


def _printed(text: str, i: int) -> bool:
    """Whether the word around ``text[i]`` is an argument of ``echo`` or ``printf`` (not
    ``printf -v``): a glob word there (``x[...]``), not an array subscript."""
    start = max(text.rfind(c, 0, i) for c in _COMMAND_START) + 1
    return _PRINTING.match(text, start, i) is not None


def _odd_backslashes(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` ends in an odd number of backslashes (the last escapes
    what follows)."""
    j = end
    while j > start and text[j - 1] == "\\":
        j -= 1
    return (end - j) % 2 == 1


def slot_places(text: str) -> list[str]:
    """Where each slot of ``text`` (a script with values replaced by NUL) is, in order."""
    scan = _Scan(text)
    scan.run(0, len(text), "script")
    return scan.places


def refusal(place: str) -> str | None:
    """Why a value cannot be at ``place``, or None when it can."""
    return _REFUSED.get(place)


# -- rendering -----------------------------------------------------------------------------------
class ScriptValues:
    """The values of one render of a script, by marker. A marker holds a random part fixed
    per render, so a value cannot forge one; mixed case, so that a filter block that changed
    the text around it (``{% filter upper %}``) is noticed rather than misread."""

    def __init__(self) -> None:
        self._nonce = secrets.token_hex(6) + "Tf"
        self._marker = re.compile(f"\x00{self._nonce}:(\\d+)\x00")
        self.values: list[str] = []

    def mark(self, value: str) -> str:
        """The marker that stands for ``value`` in the rendered text. A value that itself
        holds markers (a macro's or a ``{% set %}`` block's output) is resolved first: it is
        data as a whole."""
        value = self.resolve(value)
        self.values.append(value)
        return f"\x00{self._nonce}:{len(self.values) - 1}\x00"

    def resolve(self, text: str) -> str:
        if "\x00" not in text:
            return text
        return self._marker.sub(lambda m: self.values[int(m.group(1))], text)

    def script(self, rendered: str) -> tuple[str, dict[str, str]]:
        """The script with each marker replaced by a reference, and the variables it
        reads; raises :class:`ScriptError` for a value the shell would read as code."""
        order: list[int] = []

        def slot(match: re.Match[str]) -> str:
            order.append(int(match.group(1)))
            return _SLOT

        text = self._marker.sub(slot, rendered)
        if text.count(_SLOT) != len(order):
            raise ScriptError(
                "a value was changed after it was rendered ({% filter %} block?); apply the"
                " filter to the value instead: {{ name|upper }}")
        places = slot_places(text)
        names: dict[str, str] = {}  # value -> variable, so a repeated value has one name
        env: dict[str, str] = {}
        out: list[str] = []
        pieces = text.split(_SLOT)
        for piece, index, place in zip(pieces, order, places, strict=False):
            why = refusal(place)
            if why is not None:
                raise ScriptError(f"a value is {why}")
            value = self.values[index]
            name = names.get(value)
            if name is None:
                name = names[value] = f"{ENV_PREFIX}{len(names) + 1}"
                env[name] = value
            out.append(piece)
            out.append(_reference(name, place))
        out.append(pieces[-1])
        return "".join(out), env


def _reference(name: str, place: str) -> str:
    if place in ("dq", "doc"):
        return f"${{{name}}}"
    if place == "sq":
        return f"'\"${{{name}}}\"'"
    return f'"${{{name}}}"'


# -- registration --------------------------------------------------------------------------------
def script_problems(tree: nodes.Template) -> list[str]:
    """Every ``{{ ... }}`` of a parsed script template that sits where the shell would read
    a value as code, read in the order of the source (each branch of an ``{% if %}``
    in turn); each problem names the line of the template."""
    parts: list[str] = []
    lines: list[int] = []
    for output in tree.find_all(nodes.Output):
        for child in output.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append(child.data)
            else:
                parts.append(_SLOT)
                lines.append(child.lineno)
    text = "".join(parts)
    if text.count(_SLOT) != len(lines):
        return [_REFUSED["nul"]]
    try:
        places = slot_places(text)
    except ScriptError as exc:
        return [f"the script cannot be read: {exc}"]
    problems: list[str] = []
    for line, place in zip(lines, places, strict=False):
        why = refusal(place)
        if why is not None:
            problems.append(f"the template at line {line} of the script is {why}")
    return list(dict.fromkeys(problems))

