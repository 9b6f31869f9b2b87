"""In a ``shell: true`` script a value is data in every quoting context: the script reads it
from an environment variable, and contexts where the shell would evaluate it are refused."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tideflow import DefinitionError, Engine, InstanceStatus
from tideflow.definition.loader import load_dag_dict
from tideflow.errors import TemplateError
from tideflow.templates import TemplateRenderer

SHELLS = [s for s in ("/bin/sh", shutil.which("dash"), shutil.which("bash")) if s]

# (script with {{v}}, what it prints for value V, as a function of V)
CONTEXTS: list[tuple[str, Callable[[str], str]]] = [
    ("printf '%s|' {{v}}", lambda v: f"{v}|"),
    ('printf "%s|" "{{v}}"', lambda v: f"{v}|"),
    ('printf "%s|" "pre {{v}} post"', lambda v: f"pre {v} post|"),
    ("printf '%s|' '{{v}}'", lambda v: f"{v}|"),
    ("printf '%s|' 'pre {{v}} post'", lambda v: f"pre {v} post|"),
    ("printf '%s|' x{{v}}y", lambda v: f"x{v}y|"),
    ('printf "%s|" "$(printf %s {{v}})"', lambda v: f"{v.rstrip(chr(10))}|"),
    ('printf "%s|" "$(printf %s "{{v}}")"', lambda v: f"{v.rstrip(chr(10))}|"),
    ('printf "%s|" "`printf %s {{v}}`"', lambda v: f"{v.rstrip(chr(10))}|"),
    ("cat <<EOF\n{{v}}|\nEOF", lambda v: f"{v}|\n"),
    ("cat <<-EOF\n\t'{{v}}' \"{{v}}\"\n\tEOF", lambda v: f"'{v}' \"{v}\"\n"),
    ('printf "%s|" "${UNSET:-{{v}}}"', lambda v: f"{v}|"),
    ("printf '%s|' ${UNSET:-{{v}}}", lambda v: f"{v}|"),
    ("X={{v}}; printf '%s|' \"$X\"", lambda v: f"{v}|"),
    ('f() { printf "%s|" "{{v}}"; }; f a b', lambda v: f"{v}|"),
    ("case {{v}} in *) printf '%s|' {{v}};; esac", lambda v: f"{v}|"),
    ("# {{v}}\nprintf ok", lambda v: "ok"),
    # a glob word given to printf or echo, not an array subscript
    ("printf %s, x[{{v}}]", lambda v: f"x[{v}],"),
    ("echo a; if true; then printf %s, bare[{{v}}]; fi", lambda v: f"a\nbare[{v}],"),
    ("printf '%s|' {{ v }} {{.vars.v.Value}} {{ vars['v'] }}", lambda v: f"{v}|{v}|{v}|"),
    ("{% for i in [1, 2] %}printf '%s|' '{{ v }}{{ i }}'; {% endfor %}",
     lambda v: f"{v}1|{v}2|"),
    ("{% macro q(x) %}'{{ x }}'{% endmacro %}printf '%s|' {{ q(v) }}", lambda v: f"'{v}'|"),
]

REFUSED = [
    ("cat <<'EOF'\n{{v}}\nEOF", "quoted delimiter"),
    ('cat <<"EOF"\n{{v}}\nEOF', "quoted delimiter"),
    ("cat <<\\EOF\n{{v}}\nEOF", "quoted delimiter"),
    ("echo $(( {{v}} + 1 ))", "arithmetic"),
    ('echo "$(( {{v}} + 1 ))"', "arithmetic"),
    ("echo $(( $(echo {{v}}) + 1 ))", "arithmetic"),
    ("if (( {{v}} > 1 )); then echo; fi", "arithmetic"),
    ("echo $[ {{v}} + 1 ]", "arithmetic"),
    ("let x={{v}}", "arithmetic"),
    ("echo $(\\\n( {{v}} + 1 ))", "arithmetic"),
    ("(\\\n( {{v}} ))", "arithmetic"),
    ('echo "$(\\\n( {{v}} ))"', "arithmetic"),
    ("le\\\nt x={{v}}", "arithmetic"),
    ("echo \\\\\n(( {{v}} ))", "arithmetic"),
    ("# a comment ends at its line \\\n(( {{v}} ))", "arithmetic"),
    ("cat <<E\nfoo\\\nE\nbar\nE\n(( {{v}} ))", "arithmetic"),
    ("l\\et x={{v}}", "arithmetic"),
    ("'l'et x={{v}}", "arithmetic"),
    ('"let" x={{v}}', "arithmetic"),
    ("l''et x={{v}}", "arithmetic"),
    ("builtin let x={{v}}", "arithmetic"),
    ("alias x={{v}}", "alias"),
    ("'alias' x={{v}}", "alias"),
    ("[\\\n[ {{v}} -eq 1 ]]", "[[ ]]"),
    ("[[ {{v}} -eq 1 ]]", "[[ ]]"),
    ("echo $'{{v}}'", "$'...'"),
    ("echo ${x#{{v}}}", "${...}"),
    ("echo ${x:{{v}}}", "${...}"),
    ("echo \\{{v}}", "backslash"),
    ('echo "\\{{v}}"', "backslash"),
    ("cat <<{{v}}\nx\n", "delimiter"),
    ("a[{{v}}]=1", "array subscript"),
    ("a=([{{v}}]=1)", "array subscript"),
    ("echo a; unset a[{{v}}]", "array subscript"),
    ("printf -v a[{{v}}] x", "array subscript"),
    ("printf '-v' a[{{v}}] x", "array subscript"),
    ("printf {{v}} a[{{v}}] x", "array subscript"),
    ("a+=( x [{{v}}]=1 )", "array subscript"),
    ("declare -a a=([{{v}}]=1)", "array subscript"),
    ("x=$(cat <<EOF\n$(( {{v}} ))\nEOF\n)", "arithmetic"),
    ("echo $( (( {{v}} )) )", "arithmetic"),
]


def _hostile(marker: Path) -> list[str]:
    return [
        f"$(touch {marker})", f"`touch {marker}`", f"'; touch {marker}; echo '",
        f'"; touch {marker}; echo "', f"x\ntouch {marker}\nEOF\ntouch {marker}",
        f"a[$(touch {marker})]", "\\", "'", '"', "$HOME ${PATH} $((1+1)) *", "-n", "",
        f"'\"$(touch {marker})\"'", "EOF", "\t", "}", ")", "]]",
    ]


def _render(template: str, value: str) -> tuple[str, dict[str, str]]:
    dag = load_dag_dict({"id": "d", "vars": {"v": {}}, "tasks": [
        {"id": "t", "actionName": "shell", "params": {"shell": True, "cmd": template}}]})
    params = TemplateRenderer(dag).render("t", dag.tasks[0].params, {"v": value}, {})
    return params["cmd"], params.get("env", {})


def _run(shell: str, script: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([shell, "-c", script], env={**os.environ, **env}, cwd=cwd,
                          capture_output=True, timeout=10, check=False)
    return done.stdout.decode()


@pytest.mark.parametrize("template,expected", CONTEXTS, ids=[c[0] for c in CONTEXTS])
def test_a_value_is_data_in_every_context(tmp_path: Path, template: str,
                                          expected: Callable[[str], str]) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "some-file").write_text("a glob would list me")
    for value in _hostile(marker):
        script, env = _render(template, value)
        assert value not in script or value in template or len(value) < 3
        for shell in SHELLS:
            assert _run(shell, script, env, tmp_path) == expected(value), (shell, value, script)
            assert not marker.exists(), (shell, value, script)


_META = st.sampled_from(list("'\"`$(){}[];&|<>*?~!#\\\n\t -=+%@:") + ["EOF", "$(", "${", "))"])
_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
               min_size=1, max_size=3)
VALUES = st.lists(st.one_of(_META, _TEXT), max_size=12).map("".join)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES, index=st.integers(0, len(CONTEXTS) - 1))
def test_no_value_runs_a_command(tmp_path: Path, value: str, index: int) -> None:
    """Generated values made of shell metacharacters and quotes, in every context."""
    value = value.replace("\x00", "")
    template, expected = CONTEXTS[index]
    marker = tmp_path / "pwned"
    marker.unlink(missing_ok=True)  # tmp_path is shared by the examples
    planted = f"{value}$(touch {marker})`touch {marker}`'\"; touch {marker}"
    for candidate in (value, planted):
        script, env = _render(template, candidate)
        for shell in SHELLS:
            assert _run(shell, script, env, tmp_path) == expected(candidate), (shell, script)
        assert not marker.exists(), script


@pytest.mark.parametrize("template,context", REFUSED, ids=[r[0] for r in REFUSED])
def test_unsafe_contexts_are_refused_at_registration(template: str, context: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_dag_dict({"id": "d", "vars": {"v": {}}, "tasks": [
            {"id": "risky", "actionName": "shell", "params": {"shell": True, "cmd": template}}]})
    message = str(caught.value)
    assert "task 'risky'" in message and "params.cmd" in message, message
    assert context in message, message


def test_a_filter_block_over_a_value_is_refused_when_rendered() -> None:
    with pytest.raises(TemplateError, match="filter"):
        _render("{% filter upper %}echo {{v}}{% endfilter %}", "x")


def test_reserved_env_names_are_refused() -> None:
    with pytest.raises(DefinitionError, match="TIDEFLOW_V1"):
        load_dag_dict({"id": "d", "vars": {"v": {}}, "tasks": [
            {"id": "t", "actionName": "shell", "params": {
                "shell": True, "cmd": "echo {{v}}", "env": {"TIDEFLOW_V1": "x"}}}]})


def test_repeated_values_share_one_variable_and_argv_is_untouched() -> None:
    script, env = _render('echo {{v}} "{{ v }}" \'{{v}}\'', "a b")
    assert script == 'echo "${TIDEFLOW_V1}" "${TIDEFLOW_V1}" \'\'"${TIDEFLOW_V1}"\'\''
    assert env == {"TIDEFLOW_V1": "a b"}


_ISSUE_CASES = [
    ('echo "{{v}}"', "$(touch {m})"),
    ("cat <<EOF\n{{v}}\nEOF", "$(touch {m})"),
    ("echo '{{v}}'", "'; touch {m}; echo '"),
    ("echo `echo {{v}}`", "$(touch {m})"),
    ('echo "$(echo {{v}})"', "x; touch {m}"),
]


@pytest.mark.parametrize("cmd,value", _ISSUE_CASES)
async def test_through_the_engine(make_engine: Callable[..., Engine], tmp_path: Path,
                                  cmd: str, value: str) -> None:
    marker = tmp_path / "PWNED"
    value = value.format(m=marker)
    async with make_engine() as engine:
        await engine.register_dag({"id": "inj", "vars": {"v": {"defaultValue": "x"}}, "tasks": [
            {"id": "t", "actionName": "shell",
             "params": {"shell": True, "cmd": cmd, "saveAs": "out", "cwd": str(tmp_path)}}]})
        inst = await engine.run_dag("inj", {"v": value}, wait=30)
    assert inst.status == InstanceStatus.SUCCESS, inst.tasks[0].reason
    assert inst.share_data["out"] == value
    assert not marker.exists()
    params: dict[str, Any] = inst.tasks[0].params or {}
    assert params["env"] == {"TIDEFLOW_V1": value}
    assert value not in params["cmd"]


def _wrap(kind: str, inner: str) -> str:
    return {
        "bare": inner, "dq": f'"{inner}"', "sq": f"'{inner}'", "sub": f"$(printf %s {inner})",
        "dqsub": f'"$(printf %s {inner})"', "bt": f"`printf %s {inner}`",
        "default": f"${{UNSET:-{inner}}}", "arith": f"$(( {inner} ))", "brackets": f"$[ {inner} ]",
        "dbracket": f"$([[ {inner} -eq 1 ]] && echo y)", "ansi": f"$'{inner}'",
        "doc": f"$(cat <<EOF\n{inner}\nEOF\n)", "qdoc": f"$(cat <<'EOF'\n{inner}\nEOF\n)",
        "comment": f"x # {inner}\n", "subscript": f"$(a[{inner}]=1; echo ok)",
    }[kind]


_KINDS = ["bare", "dq", "sq", "sub", "dqsub", "bt", "default", "arith", "brackets", "dbracket",
          "ansi", "doc", "qdoc", "comment", "subscript"]


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(_KINDS), min_size=1, max_size=3), value=VALUES)
def test_nested_contexts_never_run_a_value(tmp_path: Path, kinds: list[str], value: str) -> None:
    """Contexts nested in any order: the script is refused, or it runs without running the
    value, under every shell there is."""
    marker = tmp_path / "pwned"
    marker.unlink(missing_ok=True)  # tmp_path is shared by the examples
    inner = "{{v}}"
    for kind in kinds:
        inner = _wrap(kind, inner)
    template = f"printf '%s|' {inner}"
    for payload in (f"$(touch {marker})", f"a[$(touch {marker})]", f"`touch {marker}`",
                    f"'\"; touch {marker}; \"'", f"\nEOF\ntouch {marker}\n", value):
        try:
            script, env = _render(template, payload)
        except (TemplateError, DefinitionError):
            continue
        for shell in SHELLS:
            _run(shell, script, env, tmp_path)
            assert not marker.exists(), (shell, template, payload, script)


# templates the reader refuses because of a keyword or operator it sees (quoted text aside: a
# continuation inside quotes is text)
_KEYWORD_REFUSALS = [(t, c) for t, c in REFUSED
                     if c in ("arithmetic", "[[ ]]", "array subscript", "alias")
                     and not set(t) & set("\\'\"") and t.count("{{v}}") == 1]


@pytest.mark.parametrize("template,context", _KEYWORD_REFUSALS,
                         ids=[r[0] for r in _KEYWORD_REFUSALS])
def test_a_line_continuation_anywhere_hides_nothing(template: str, context: str) -> None:
    """The shell removes backslash-newline before it splits words, so ``$(\\<newline>(`` is
    ``$((``: a continuation at any place outside the template is still refused."""
    slot = template.index("{{v}}")
    for at in [*range(slot + 1), *range(slot + len("{{v}}"), len(template) + 1)]:
        spliced = template[:at] + "\\\n" + template[at:]
        with pytest.raises(DefinitionError, match=context.replace("[", r"\[")):
            load_dag_dict({"id": "d", "vars": {"v": {}}, "tasks": [
                {"id": "t", "actionName": "shell", "params": {"shell": True, "cmd": spliced}}]})
