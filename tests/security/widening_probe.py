"""Tries every filter, method, global and operator the template sandbox offers with huge
arguments, and reports each that ran out of memory.

Run by ``test_widening.py`` in its own process, under an address-space limit of what it holds
plus 512 MiB: one that is not bounded runs out of memory there (and is reported) instead of
taking the machine's. Prints JSON:
``{"tried": {kind: [names]}, "cases": n, "violations": [...]}``.
"""

from __future__ import annotations

import itertools
import json
import resource
import sys

from tideflow.definition.loader import load_dag_dict
from tideflow.errors import TemplateError
from tideflow.templates import TemplateRenderer, _environment

# a widening op given these builds at least hundreds of megabytes unless it is bounded
ARGS = ["10**9", "'y' * 300000"]
INPUTS = {"text": "('ab\\t\\n' * 5000)", "list": "(['ab'] * 1000)",
          "mapping": "{'a': [1] * 1000}"}
OBJECTS = {"str": "('ab\\t\\n' * 5000)", "bytes": "('ab\\t\\n' * 5000).encode()",
           "int": "7", "float": "1.5", "list": "(['ab'] * 1000)", "tuple": "(('ab',) * 1000)",
           "dict": "{'a': [1] * 1000}", "range": "range(1000)"}
OPERATORS = ["+", "-", "*", "/", "//", "%", "**", "~"]
OPERANDS = ["10**9", "100000", "'y' * 300000", "'%999999s' * 10", "['ab'] * 1000",
            "('ab',) * 1000"]
# what the probe may allocate above what it holds at the start
HEADROOM = 512 * 1024 * 1024


def arg_lists(count: int) -> list[str]:
    out = [""]
    for n in range(1, count + 1):
        out += [", ".join(c) for c in itertools.product(ARGS, repeat=n)]
    return out


def main() -> None:
    env = _environment()
    dag = load_dag_dict({"id": "p", "tasks": [{"id": "t", "actionName": "x", "params": {}}]})
    renderer = TemplateRenderer(dag)
    tried: dict[str, list[str]] = {"filter": [], "method": [], "global": [], "operator": []}
    violations: list[str] = []
    cases = 0

    def attempt(source: str) -> None:
        nonlocal cases
        cases += 1
        try:
            renderer.render("t", {"p": source}, {}, {})
            outcome = "ok"
        except TemplateError as exc:
            outcome = str(exc)
        except MemoryError:
            outcome = "MemoryError"
        if "MemoryError" in outcome or "out of memory" in outcome:
            violations.append(f"{source[:160]}: {outcome[:160]}")

    attempt("{{ 'warm-up' }}")
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * resource.getpagesize()
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (size + HEADROOM, hard))
    for name in sorted(env.filters):
        tried["filter"].append(name)
        for value, args in itertools.product(INPUTS.values(), arg_lists(2)):
            attempt(f"{{{{ {value}|{name}({args}) }}}}")
    for kind, expr in OBJECTS.items():
        obj = eval(expr, {})  # noqa: S307 - our own constant expressions
        for name in dir(obj):
            attr = getattr(obj, name)
            if name.startswith("_") or not callable(attr) or not env.is_safe_attribute(
                    obj, name, attr):
                continue
            tried["method"].append(f"{kind}.{name}")
            for args in arg_lists(2):
                attempt(f"{{% set x = {expr} %}}{{{{ x.{name}({args}) }}}}")
            # the shapes a few methods take: a mapping, a list, a pattern and its replacement
            for arg in ("{97: 'y' * 300000}", "['ab'] * 100000", "range(100000)|list",
                        "'a', 'y' * 300000", "b'a', b'y' * 300000", "'{0}' * 100, 'y' * 99999"):
                attempt(f"{{% set x = {expr} %}}{{{{ x.{name}({arg}) }}}}")
    for name in sorted(env.globals):
        if callable(env.globals[name]):
            tried["global"].append(name)
            for args in arg_lists(2):
                attempt(f"{{{{ {name}({args}) }}}}")
    for op in OPERATORS:
        tried["operator"].append(op)
        for left, right in itertools.product(OPERANDS, repeat=2):
            attempt(f"{{{{ ({left}) {op} ({right}) }}}}")
    json.dump({"tried": tried, "cases": cases, "violations": violations,
               "filters": sorted(env.filters), "globals": sorted(env.globals)}, sys.stdout)


if __name__ == "__main__":
    main()


