"""Repository rules (issue 7 item 7): the published schema, validation with clear errors, caps, matching on
added lines only, and the time budget. The base-branch-only reading is in tests/test_base_context.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from bot.models import Category, FileStatus, Severity
from bot.rules.repo_rules import MAX_RULES, RepoRule, load_rules, run_repo_rules
from tests.rules.util import changeset, file_diff

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "rules.schema.json").read_text())
DIR = ".github/backend-review/rules"


def documented_rules() -> Iterator[tuple[str, str]]:
    """Every example rule: examples/rules/*.yml and the ```yaml blocks of docs/rules.md that are rules."""
    for p in sorted((ROOT / "examples" / "rules").glob("*.yml")):
        yield f"examples/rules/{p.name}", p.read_text()
    for n, block in enumerate(
        re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "rules.md").read_text(), re.S)
    ):
        if "\nrule:" in block:
            yield f"docs/rules.md block {n}", block


EXAMPLES = list(documented_rules())


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_schema_validates_the_examples_and_they_load(where: str, text: str) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    for doc in yaml.safe_load_all(text):
        jsonschema.validate(doc, SCHEMA)
    rules, problems = load_rules([(f"{DIR}/x.yml", text)])
    assert problems == [] and rules


def _rules(text: str) -> tuple[RepoRule, ...]:
    rules, problems = load_rules([(f"{DIR}/x.yml", text)])
    assert problems == []
    return rules


def _run(rules: tuple[RepoRule, ...], path: str, code: str, **kw: object) -> list[tuple[str, int]]:
    fd = file_diff(path, code, marked=True, status=FileStatus.MODIFIED)
    head = [ln[1:] for ln in code.strip("\n").split("\n") if not ln.startswith("-")]
    result = run_repo_rules(rules, changeset(fd), lambda p: head if p == path else None, **kw)  # type: ignore[arg-type]
    return [(f.source, f.line) for f in result.findings]


def example(name: str) -> tuple[RepoRule, ...]:
    return _rules((ROOT / "examples" / "rules" / name).read_text())


def test_python_examples_flag_only_added_lines() -> None:
    rules = example("python.yml")
    code = (
        " import requests\n"
        "+r = requests.get(url)\n"
        "+ok = requests.post(url, json=body, timeout=(3, 10))\n"
        " old = requests.get(url)\n"  # unchanged: not this PR's
        "+def handler(req):\n"
        "+    print(req)\n"
        "+print('module level')\n"
    )
    assert _run(rules, "app/client.py", code) == [
        ("repo:requests-without-timeout", 2),
        ("repo:print-in-handler", 6),
    ]
    assert _run(rules, "scripts/tool.py", code) == [("repo:requests-without-timeout", 2)]  # ignores:


def test_go_example() -> None:
    code = (
        " package store\n"
        "+func (s *Store) Find(ctx context.Context, col string) error {\n"
        '+\trow := s.db.QueryRowContext(ctx, fmt.Sprintf("SELECT %s FROM t", col))\n'
        '+\tlog.Print(fmt.Sprintf("looked up %s", col))\n'
        '+\t_, err := s.db.Exec("DELETE FROM t WHERE id = $1", 1)\n'
        "+\treturn err\n"
        "+}\n"
    )
    assert _run(example("go.yml"), "internal/store/find.go", code) == [("repo:sprintf-into-query", 3)]


def test_typescript_example_limited_by_files_and_applies_to_tsx() -> None:
    rules = example("typescript.yml")
    code = "+import jwt from 'jsonwebtoken';\n+const claims = jwt.decode(token) as Claims;\n"
    assert _run(rules, "src/auth/session.ts", code) == [("repo:jwt-decode-for-auth", 2)]
    assert _run(rules, "src/auth/Login.tsx", code) == [("repo:jwt-decode-for-auth", 2)]
    assert _run(rules, "scripts/debug.ts", code) == []  # files: src/** only


def test_finding_fields() -> None:
    rules = example("go.yml")
    fd = file_diff("a.go", 'package a\nfunc f() {\n\tdb.Query(fmt.Sprintf("x%s", y))\n}')
    head = ["package a", "func f() {", '\tdb.Query(fmt.Sprintf("x%s", y))', "}"]
    [f] = run_repo_rules(rules, changeset(fd), lambda p: head).findings
    assert (f.severity, f.category, f.confidence, f.source) == (
        Severity.HIGH,
        Category.SECURITY,
        0.9,
        "repo:sprintf-into-query",
    )
    assert f.title == "SQL text built with fmt.Sprintf." and f.body.startswith(
        "SQL text built with fmt.Sprintf. Pass"
    )
    assert f.evidence == head[2]


# -- validation: clear errors, the rest still runs -------------------------------------------------------

GOOD = "id: ok\nlanguage: python\nmessage: m\nrule: {pattern: print($A)}\n"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "id: x\nlanguage: python\nmessage: m\nrule: {pattern: a}\ntransform: {}\n",
            "unknown key 'transform'",
        ),
        ("language: python\nmessage: m\nrule: {pattern: a}\n", "id: required"),
        ("id: x\nlanguage: cobol\nmessage: m\nrule: {pattern: a}\n", "language: required, one of python"),
        ("id: x\nlanguage: python\nrule: {pattern: a}\n", "message: required"),
        ("id: x\nlanguage: python\nmessage: m\n", "rule: required"),
        ("id: x\nlanguage: python\nmessage: m\nrule: {patern: a}\n", "rule.patern: unknown rule key"),
        ("id: x\nlanguage: python\nmessage: m\nseverity: fatal\nrule: {pattern: a}\n", "severity: one of"),
        (
            "id: x\nlanguage: python\nmessage: m\nrule: {regex: '(a)\\1'}\n",
            "backreferences are not supported",
        ),
        ("id: x\nlanguage: python\nmessage: m\nrule: {regex: '(?=a)b'}\n", "look-around"),
        (
            "id: x\nlanguage: python\nmessage: m\nrule: {kind: no_such_kind}\n",
            "Kind `no_such_kind` is invalid",
        ),
        ("id: x\nlanguage: python\nmessage: m\nrule: {matches: nope}\n", "Rule `nope` is not defined"),
        ("id: x\nlanguage: python\nmessage: m\nrule: {regex: " + "a" * 300 + "}\n", "1-256 characters"),
        (
            "id: x\nlanguage: python\nmessage: m\nrule: {pattern: a}\nmetadata: {category: style}\n",
            "metadata.category",
        ),
        ("id: x\nlanguage: python\nmessage: m\nrule: {pattern: a}\nmetadata: {confidence: 2}\n", "0 to 1"),
        ("id: x\nlanguage: python\nmessage: m\nrule: {pattern: a}\nfiles: [/etc/passwd]\n", "files:"),
        ("- a\n- b\n", "must be a mapping"),
        ("id: x\nlanguage: python\nmessage: &m m\nnote: *m\nrule: {pattern: a}\n", "anchors and aliases"),
        (
            "id: x\nlanguage: python\nmessage: !!python/name:os.system m\nrule: {pattern: a}\n",
            "not valid YAML",
        ),
    ],
)
def test_p04_invalid_rules_are_named_and_switched_off(text: str, error: str) -> None:
    rules, problems = load_rules([(f"{DIR}/bad.yml", text), (f"{DIR}/good.yml", GOOD)])
    assert [r.id for r in rules] == ["ok"]
    assert len(problems) == 1 and problems[0].startswith(f"`{DIR}/bad.yml`"), problems
    assert error in problems[0]


def test_p04_nesting_and_size_caps() -> None:
    rule: dict[str, object] = {"pattern": "a"}
    for _ in range(20):
        rule = {"not": rule}
    deep = yaml.safe_dump({"id": "deep", "language": "python", "message": "m", "rule": rule})
    wide = yaml.safe_dump(
        {
            "id": "wide",
            "language": "python",
            "message": "m",
            "rule": {"any": [{"pattern": f"f{i}()"} for i in range(300)]},
        }
    )
    _, problems = load_rules([(f"{DIR}/deep.yml", deep), (f"{DIR}/wide.yml", wide)])
    assert "nested deeper than 12" in problems[0] and "more than 200 rule objects" in problems[1]


def test_p04_rule_count_cap_and_duplicate_ids() -> None:
    many = "\n---\n".join(GOOD.replace("id: ok", f"id: r{i}") for i in range(MAX_RULES + 5))
    rules, problems = load_rules([(f"{DIR}/many.yml", many), (f"{DIR}/zz.yml", GOOD.replace("ok", "r1"))])
    assert len(rules) == MAX_RULES
    assert any(f"more than {MAX_RULES} repository rules" in p for p in problems)
    _, dup = load_rules([(f"{DIR}/a.yml", GOOD), (f"{DIR}/b.yml", GOOD)])
    assert dup == [f"`{DIR}/b.yml`: id 'ok' is used by another rule; this rule is off"]


def test_p04_time_budget_stops_the_run_with_a_note() -> None:
    rules = _rules("\n---\n".join(GOOD.replace("id: ok", f"id: r{i}") for i in range(3)))
    ticks = iter(range(100))
    fd = file_diff("a.py", "print(1)")
    result = run_repo_rules(
        rules, changeset(fd), lambda p: ["print(1)"], budget_seconds=1.5, clock=lambda: next(ticks)
    )
    assert [f.source for f in result.findings] == ["repo:r0"]  # t=1 ok, t=2 is past 0 + 1.5
    assert result.notes == ("repository rules stopped at their 1.5 s time budget",)


def test_large_head_files_are_not_parsed() -> None:
    fd = file_diff("a.py", "print(1)")
    big = ["print(1)"] + ["x = 1"] * 200_000
    result = run_repo_rules(_rules(GOOD), changeset(fd), lambda p: big)
    assert result.findings == () and "larger than 1000 KB" in result.notes[0]


def test_skipped_files_are_not_matched() -> None:
    fd = file_diff("vendor/a.py", "print(1)")
    from dataclasses import replace

    fd = replace(fd, skip_reason="vendored")
    assert run_repo_rules(_rules(GOOD), changeset(fd), lambda p: ["print(1)"]).findings == ()


def test_schema_and_loader_agree_on_rejections() -> None:
    for bad in (
        {"id": "x", "language": "python", "message": "m", "rule": {"pattern": "a"}, "transform": {}},
        {"id": "x", "language": "python", "message": "m", "rule": {"patern": "a"}},
        {"id": "bad id", "language": "python", "message": "m", "rule": {"pattern": "a"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)
        assert load_rules([(f"{DIR}/x.yml", yaml.safe_dump(bad))])[1]
