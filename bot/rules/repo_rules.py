"""Repository rules: structural rules a repository adds in ``.github/backend-review/rules/*.yml``.

The format is ast-grep's rule format (https://ast-grep.github.io/reference/yaml.html), a subset of it:
``id``, ``language``, ``severity``, ``message``, ``note``, ``rule``, ``constraints``, ``utils``,
``files``, ``ignores``, ``metadata`` (``category``, ``confidence``); ``fix`` and ``url`` are accepted and
ignored. The published JSON schema is ``docs/rules.schema.json``; docs/rules.md documents it.

They are configuration under P-04: the caller reads them from the BASE branch only (a PR cannot add or
change the rules that review it), they are data (YAML without anchors, aliases or tags, strict keys, no
``transform``/``rewriters``), and matching is bounded: ast-grep's ``regex`` is Rust's ``regex`` crate
(finite automata, linear time, no backreferences or look-around), every pattern and regex is length-
capped, rule trees are depth- and size-capped, rules and files are counted, files over a size are not
parsed, and the whole run stops at a time budget. A broken file is reported (a note on the review), never
fatal. Pure apart from ast-grep, which is imported lazily (``backend-review --help`` stays fast).
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, cast

import yaml

from bot.config import NoAliasLoader
from bot.models import Category, Changeset, FileStatus, Finding, Severity
from bot.rules.syntax import quiet_native_errors

if TYPE_CHECKING:
    from ast_grep_py import Config

RULES_DIR = ".github/backend-review/rules"
MAX_RULES = 100  # across all files
MAX_RULE_DEPTH = 12
MAX_RULE_NODES = 200  # rule objects (pattern/inside/has/… entries) in one rule, utils included
MAX_PATTERN_CHARS = 2000
MAX_REGEX_CHARS = 256
MAX_MESSAGE_CHARS = 300
MAX_NOTE_CHARS = 1000
MAX_GLOBS = 50
MAX_FILE_BYTES = 1_000_000  # head files larger than this are not parsed for repository rules
DEFAULT_BUDGET_SECONDS = 5.0
DEFAULT_CONFIDENCE = 0.8

# ast-grep language name → our file extensions (.tsx files are parsed with the tsx grammar)
LANGUAGES: Mapping[str, tuple[str, ...]] = {
    "python": (".py", ".pyi"),
    "javascript": (".js", ".mjs", ".cjs", ".jsx"),
    "typescript": (".ts", ".mts", ".cts", ".tsx"),
    "tsx": (".tsx",),
    "go": (".go",),
    "java": (".java",),
    "ruby": (".rb", ".rake"),
}
_LANGUAGE_ALIASES = {"py": "python", "js": "javascript", "ts": "typescript", "golang": "go", "rb": "ruby"}
SEVERITIES: Mapping[str, Severity] = {
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "info": Severity.LOW,
    "hint": Severity.NIT,
    **{s.value: s for s in Severity},
}
_TOP_KEYS = frozenset(
    {"id", "language", "severity", "message", "note", "rule", "constraints", "utils", "files", "ignores"}
    | {"metadata", "fix", "url"}
)
_RULE_KEYS = frozenset(
    {"pattern", "kind", "regex", "nthChild", "range", "inside", "has", "precedes", "follows", "all", "any"}
    | {"not", "matches", "stopBy", "field"}
)
_RELATIONAL = frozenset({"inside", "has", "precedes", "follows"})
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KIND = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def is_rule_file(path: str) -> bool:
    p = PurePosixPath(path)
    return str(p.parent) == RULES_DIR and p.suffix in (".yml", ".yaml")


@dataclass(frozen=True)
class RepoRule:
    id: str
    language: str
    severity: Severity
    category: Category
    confidence: float
    message: str
    note: str
    config: Mapping[str, Any]  # what ast-grep runs: {"rule", "constraints", "utils"}
    files: tuple[str, ...]
    ignores: tuple[str, ...]
    origin: str  # the file it came from

    def applies_to(self, path: str) -> bool:
        if not path.endswith(LANGUAGES[self.language]):
            return False
        if self.files and not any(_glob(g, path) for g in self.files):
            return False
        return not any(_glob(g, path) for g in self.ignores)


def _glob(pattern: str, path: str) -> bool:
    # ast-grep's globs are relative to the project root; "**/" also matches no directory
    return fnmatch.fnmatchcase(path, pattern) or (
        pattern.startswith("**/") and fnmatch.fnmatchcase(path, pattern[3:])
    )


class RuleError(ValueError):
    pass


def load_rules(files: Sequence[tuple[str, str]]) -> tuple[tuple[RepoRule, ...], list[str]]:
    """Parse and validate rule files ((path, text), from the base branch). Never raises: a broken rule
    is left out and named in the problems, which the review shows as notes."""
    rules: list[RepoRule] = []
    problems: list[str] = []
    seen: set[str] = set()
    for path, text in sorted(files):
        try:
            docs = [d for d in yaml.load_all(text, Loader=NoAliasLoader) if d is not None]
        except (yaml.YAMLError, RecursionError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            problems.append(f"`{path}`: not valid YAML ({_CONTROL.sub('?', first)[:120]}); its rules are off")
            continue
        for n, doc in enumerate(docs, 1):
            where = f"`{path}`" + (f" (rule {n})" if len(docs) > 1 else "")
            if len(rules) >= MAX_RULES:
                problems.append(f"{where}: more than {MAX_RULES} repository rules; the rest are off")
                break
            try:
                rule = _parse(doc, path)
                if rule.id in seen:
                    raise RuleError(f"id {rule.id!r} is used by another rule")
                _compile_check(rule)
            except RuleError as exc:
                problems.append(f"{where}: {_CONTROL.sub('?', str(exc))[:300]}; this rule is off")
                continue
            seen.add(rule.id)
            rules.append(rule)
    return tuple(rules), problems


def _parse(doc: object, origin: str) -> RepoRule:
    if not isinstance(doc, dict):
        raise RuleError("a rule must be a mapping (id, language, rule, message, …)")
    unknown = sorted(str(k) for k in doc if k not in _TOP_KEYS)
    if unknown:
        raise RuleError(f"unknown key {unknown[0][:40]!r} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    rid = doc.get("id")
    if not isinstance(rid, str) or not _ID.match(rid):
        raise RuleError("id: required, 1-64 letters, digits, '.', '_' or '-'")
    raw_lang = doc.get("language")
    lang = _LANGUAGE_ALIASES.get(str(raw_lang).lower(), str(raw_lang).lower()) if raw_lang else None
    if lang is None or lang not in LANGUAGES:
        raise RuleError(f"language: required, one of {', '.join(LANGUAGES)}")
    sev_raw = doc.get("severity", "warning")
    if not isinstance(sev_raw, str) or sev_raw.lower() not in SEVERITIES:
        raise RuleError(f"severity: one of {', '.join(SEVERITIES)}")
    message = _text(doc.get("message"), "message", MAX_MESSAGE_CHARS, required=True)
    note = _text(doc.get("note"), "note", MAX_NOTE_CHARS, required=False)
    for key in ("fix", "url"):
        _text(doc.get(key), key, MAX_PATTERN_CHARS, required=False)
    category, confidence = _metadata(doc.get("metadata"))
    nodes = [0]
    if "rule" not in doc:
        raise RuleError("rule: required (an ast-grep rule object)")
    _check_rule(doc["rule"], "rule", 0, nodes)
    config: dict[str, Any] = {"rule": doc["rule"]}
    for key in ("constraints", "utils"):
        value = doc.get(key)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(isinstance(k, str) and _ID.match(k) for k in value):
            raise RuleError(f"{key}: a mapping of names to rule objects")
        for name, sub in value.items():
            _check_rule(sub, f"{key}.{name}", 0, nodes)
        config[key] = value
    return RepoRule(
        id=rid,
        language=lang,
        severity=SEVERITIES[sev_raw.lower()],
        category=category,
        confidence=confidence,
        message=message,
        note=note,
        config=config,
        files=_globs(doc.get("files"), "files"),
        ignores=_globs(doc.get("ignores"), "ignores"),
        origin=origin,
    )


def _text(value: object, key: str, limit: int, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise RuleError(f"{key}: {'required, ' if required else ''}a string of 1-{limit} characters")
    return " ".join(value.split())


def _metadata(value: object) -> tuple[Category, float]:
    if value is None:
        return Category.OTHER, DEFAULT_CONFIDENCE
    if not isinstance(value, dict):
        raise RuleError("metadata: a mapping (category, confidence)")
    category = value.get("category", Category.OTHER.value)
    if category not in {c.value for c in Category}:
        raise RuleError(f"metadata.category: one of {', '.join(c.value for c in Category)}")
    conf = value.get("confidence", DEFAULT_CONFIDENCE)
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1:
        raise RuleError("metadata.confidence: a number from 0 to 1")
    return Category(category), float(conf)


def _globs(value: object, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_GLOBS:
        raise RuleError(f"{key}: a list of at most {MAX_GLOBS} globs")
    for g in value:
        if not isinstance(g, str) or not g or len(g) > 256 or _CONTROL.search(g) or g.startswith("/"):
            raise RuleError(f"{key}: each glob is a relative path pattern of 1-256 characters")
    return tuple(value)


def _check_rule(rule: object, where: str, depth: int, nodes: list[int]) -> None:
    """Structure, depth, size and string caps of an ast-grep rule object (ast-grep checks the rest)."""
    if depth > MAX_RULE_DEPTH:
        raise RuleError(f"{where}: nested deeper than {MAX_RULE_DEPTH}")
    nodes[0] += 1
    if nodes[0] > MAX_RULE_NODES:
        raise RuleError(f"more than {MAX_RULE_NODES} rule objects")
    if not isinstance(rule, dict) or not rule:
        raise RuleError(f"{where}: a non-empty rule object (pattern, kind, regex, inside, has, all, any, …)")
    for key, value in rule.items():
        sub = f"{where}.{key}"
        if key not in _RULE_KEYS:
            raise RuleError(f"{sub}: unknown rule key (allowed: {', '.join(sorted(_RULE_KEYS))})")
        if key == "pattern":
            if isinstance(value, dict):
                unknown = set(value) - {"context", "selector", "strictness"}
                if unknown or not isinstance(value.get("context"), str):
                    raise RuleError(f"{sub}: a string, or a mapping with context (and selector, strictness)")
                value = value["context"]
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_PATTERN_CHARS:
                raise RuleError(f"{sub}: a pattern of 1-{MAX_PATTERN_CHARS} characters")
        elif key == "regex":
            if not isinstance(value, str) or not value or len(value) > MAX_REGEX_CHARS:
                raise RuleError(f"{sub}: a regular expression of 1-{MAX_REGEX_CHARS} characters")
        elif key in ("kind", "matches", "field"):
            if not isinstance(value, str) or not _KIND.match(value):
                raise RuleError(f"{sub}: a name of 1-64 letters, digits or '_'")
        elif key in _RELATIONAL or key == "not":
            _check_rule(value, sub, depth + 1, nodes)
        elif key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise RuleError(f"{sub}: a non-empty list of rule objects")
            for i, item in enumerate(value):
                _check_rule(item, f"{sub}[{i}]", depth + 1, nodes)
        elif key == "stopBy":
            if isinstance(value, dict):
                _check_rule(value, sub, depth + 1, nodes)
            elif value not in ("neighbor", "end"):
                raise RuleError(f"{sub}: neighbor, end or a rule object")
        elif key in ("nthChild", "range") and not isinstance(value, int | dict):
            raise RuleError(f"{sub}: see ast-grep's rule reference")


def _compile_check(rule: RepoRule) -> None:
    """Let ast-grep compile the rule (patterns, kinds, regexes, metavariables) on an empty file."""
    quiet_native_errors()
    from ast_grep_py import SgRoot

    try:
        SgRoot("", _grammar(rule.language, "")).root().find_all(cast("Config", dict(rule.config)))
    except Exception as exc:
        raise RuleError(f"ast-grep rejects it: {_ast_grep_reason(str(exc))[:200]}") from None


def _ast_grep_reason(text: str) -> str:
    """The telling lines of ast-grep's error ("Kind `x` is invalid."), without its stack backtrace."""
    cause = text.split("Caused by:", 1)[-1].split("Stack backtrace:", 1)[0]
    lines = [re.sub(r"^\d+:\s*", "", ln.strip()) for ln in cause.splitlines()]
    told = [ln for ln in lines if ln[:1].isalpha() and "is not configured correctly" not in ln]
    return " ".join(told[-2:]) or (text.splitlines()[0] if text else "invalid rule")


def _grammar(language: str, path: str) -> str:
    return "tsx" if path.endswith(".tsx") else language


ReadHead = Callable[[str], Sequence[str] | None]


@dataclass(frozen=True)
class RepoRulesResult:
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]


def run_repo_rules(
    rules: Iterable[RepoRule],
    changeset: Changeset,
    read_head: ReadHead,
    *,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> RepoRulesResult:
    """Findings of the repository rules on the added lines of the changed files (head text)."""
    rules = tuple(rules)
    if not rules:
        return RepoRulesResult((), ())
    quiet_native_errors()
    from ast_grep_py import SgRoot

    deadline = clock() + budget_seconds
    findings: list[Finding] = []
    notes: list[str] = []
    for fd in changeset.files:
        if not fd.reviewable or fd.is_binary or fd.status == FileStatus.DELETED or fd.additions == 0:
            continue
        applicable = [r for r in rules if r.applies_to(fd.path)]
        if not applicable:
            continue
        added = {no for no, _ in fd.added_lines()}
        head = read_head(fd.path)
        if head is None:
            continue
        text = "\n".join(head)
        if len(text) > MAX_FILE_BYTES:
            notes.append(f"repository rules skipped `{fd.path}`: larger than {MAX_FILE_BYTES // 1000} KB")
            continue
        roots: dict[str, Any] = {}
        for rule in applicable:
            if clock() > deadline:
                notes.append(f"repository rules stopped at their {budget_seconds:g} s time budget")
                return RepoRulesResult(tuple(findings), tuple(notes))
            grammar = _grammar(rule.language, fd.path)
            if grammar not in roots:
                roots[grammar] = SgRoot(text, grammar).root()
            try:
                nodes = roots[grammar].find_all(dict(rule.config))
            except Exception:  # noqa: S112 - validated at load; a grammar-specific failure skips it
                continue
            lines_hit: set[int] = set()
            for node in nodes:
                line = node.range().start.line + 1
                if line not in added or line in lines_hit or line > len(head):
                    continue
                lines_hit.add(line)
                findings.append(
                    Finding(
                        path=fd.path,
                        line=line,
                        severity=rule.severity,
                        category=rule.category,
                        title=rule.message[:200],
                        body=f"{rule.message} {rule.note}".strip(),
                        evidence=head[line - 1].rstrip(),
                        source=f"repo:{rule.id}",
                        confidence=rule.confidence,
                    )
                )
    findings.sort(key=lambda f: (f.path, f.line, f.source))
    return RepoRulesResult(tuple(findings), tuple(notes))


__all__ = [
    "RULES_DIR",
    "RepoRule",
    "RepoRulesResult",
    "is_rule_file",
    "load_rules",
    "run_repo_rules",
]
