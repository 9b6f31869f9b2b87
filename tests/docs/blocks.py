"""The fenced code blocks of README.md and docs/*.md, and how each one is checked.

A block is checked by its language unless an HTML comment on the line just before its fence
says otherwise (``<!-- doc: excerpt -->`` and friends, listed in ``Directive``):

- ``python``: run as a script in the page's scratch folder; it must exit 0. A block whose first
  line is a comment naming a file (``# mytasks/ops.py``) is written to that file instead, for
  later blocks of the page to use.
- ``yaml``: a definition (a mapping with ``tasks``) must load with ``load_dag_text``; any other
  YAML must parse. A first-line ``# name.yaml`` comment writes it to that file too.
- ``json``: must parse.
- ``sh``: each command runs in the scratch folder and must exit 0.
- ``console``: ``$ command`` lines run; the lines after each are its expected output (stdout and
  stderr together), compared after ids and times are normalised; a ``...`` line stands for any
  number of lines. An id printed by a command replaces the id the page shows in later commands.
  A block marked ``prints`` must equal what the python block before it printed;
  ``prints-json``, have the same keys at every level (values vary: ids, times, hosts).
  A block marked ``after`` runs with the page's earlier python blocks before it.
- any other block (plain text, signatures, fragments) must carry a directive: ``excerpt`` (a
  part of something larger, shown for reading) or ``output`` (what the command above prints).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(
    r"^(?P<indent> {0,3})```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```\s*$", re.S | re.M
)
_DIRECTIVE = re.compile(r"<!--\s*doc:\s*(?P<kind>[a-z-]+)(?P<arg>[^>]*?)\s*-->\s*$")
_FILE_COMMENT = re.compile(r"^#\s*(?P<name>[\w./-]+\.(?:ya?ml|json|py))\s*$")


class Directive(StrEnum):
    NONE = ""
    EXCERPT = "excerpt"  # part of something larger: not run
    OUTPUT = "output"  # what a command above prints: not run
    FILE = "file"  # write the body to the file named by the argument
    CLEAN_CHECKOUT = "clean-checkout"  # an sh block run from a copy of the repository's files
    PRINTS = "prints"  # what the python block just above prints (checked)
    PRINTS_JSON = "prints-json"  # JSON with the keys, at every level, of what the above prints
    AFTER = "after"  # a python block that uses what the page's earlier python blocks define
    SERVER = "server"  # on its own line anywhere in a page: the page's commands reach a server
    CI = "ci"  # an sh block that .ci/run runs as written (the test command itself)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    directive: Directive
    argument: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """The file this block is written to, from a ``file`` directive or a first-line comment."""
        if self.directive is Directive.FILE:
            return self.argument
        first = self.body.splitlines()[0] if self.body.strip() else ""
        match = _FILE_COMMENT.match(first)
        return match.group("name") if match else None


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found: list[Block] = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        directive, argument = Directive.NONE, ""
        marker = _DIRECTIVE.search(before)
        if marker:
            directive = Directive(marker.group("kind"))
            argument = marker.group("arg").strip()
        info = match.group("info").strip()
        found.append(
            Block(
                page,
                line,
                info.split()[0] if info else "",
                match.group("body"),
                directive,
                argument,
            )
        )
    return found


def commands(body: str) -> list[str]:
    """The commands of an ``sh`` block: comments dropped, ``\\`` continuations joined."""
    out: list[str] = []
    pending = ""
    for raw in body.splitlines():
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return out


@dataclass(frozen=True)
class Step:
    command: str
    expected: list[str]


def console_steps(body: str) -> list[Step]:
    steps: list[Step] = []
    for raw in body.splitlines():
        if raw.startswith("$ "):
            steps.append(Step(raw[2:].strip(), []))
        elif steps:
            steps[-1].expected.append(raw.rstrip())
    return steps


ULID = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b")
_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:\d\d)?")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def normalise(line: str) -> str:
    line = _ANSI.sub("", line)
    line = ULID.sub("<ID>", line)
    return _TIME.sub("<TIME>", line).rstrip()


def match_output(expected: list[str], actual: list[str]) -> bool:
    """Whether actual lines fit the expected ones, ``...`` standing for any run of lines."""
    exp = [normalise(x) for x in expected]
    act = [normalise(x) for x in actual if x.strip() or True]
    while exp and not exp[-1]:
        exp.pop()
    while act and not act[-1]:
        act.pop()

    def fit(i: int, j: int) -> bool:
        if i == len(exp):
            return j == len(act)
        if exp[i] == "...":
            return any(fit(i + 1, k) for k in range(j, len(act) + 1))
        return j < len(act) and exp[i] == act[j] and fit(i + 1, j + 1)

    return fit(0, 0)


def id_pairs(expected: list[str], actual: list[str]) -> dict[str, str]:
    """The ids the page shows, mapped to those the commands printed, in order of appearance."""
    shown = [m for line in expected for m in ULID.findall(line)]
    printed = [m for line in actual for m in ULID.findall(line)]
    return dict(zip(shown, printed, strict=False))


def json_keys(value: object, path: str = "$") -> set[str]:
    """Every key path of a JSON value (list items merged), for comparing shapes."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found.add(f"{path}.{key}")
            found |= json_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            found |= json_keys(item, f"{path}[]")
    return found
