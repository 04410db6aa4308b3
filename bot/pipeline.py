"""The one orchestration of a review, shared by every entry point (local, GitHub App, CI).

Given a workspace at the head SHA: diff → changeset → offline rules → (agent, when a model is
configured) → review assembly. Publishing is the caller's job: this stage has no GitHub in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot import metrics
from bot.agent.context import enclosing_definitions
from bot.agent.definitions import AgentDefinition, load_definition
from bot.agent.prompt import ReviewPromptContext
from bot.agent.providers import Provider
from bot.agent.runner import AgentBudgets, run_agent
from bot.agent.tools import Toolbox
from bot.basetree import read_base_context
from bot.checkout import Workspace
from bot.diff import PathFilters, budget_prompt, mark_generated, parse_diff
from bot.errors import BudgetExceeded
from bot.jail import MAX_HEAD_FILE_BYTES, head_file_size, read_head_file
from bot.log import get_logger
from bot.models import AgentResult, Category, Changeset, FileStatus, Finding, ReviewDraft, Severity
from bot.outdated import ReviewScope
from bot.redact import SECRETS
from bot.review import ReviewContext, build_review
from bot.rules import FileTexts, language_of, run_rules
from bot.rules.repo_rules import load_rules, run_repo_rules
from bot.rules.syntax import GRAMMARS, MAX_PARSE_BYTES

log = get_logger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReviewInputs:
    """What a review needs besides the workspace; every field is plain data."""

    title: str = ""
    body: str = ""
    repo: str | None = None  # "owner/name": the only repository links may point into
    diff_base: str | None = None  # review only base..head of an earlier head (incremental)
    filters: PathFilters = field(default_factory=PathFilters)
    max_inline: int = 10
    fail_on: Severity | None = None
    prompt_tokens: int = 24_000
    already_posted: frozenset[str] = frozenset()
    notes: tuple[str, ...] = ()
    focus: tuple[Category, ...] = ()  # empty: every category
    max_diff_bytes: int | None = None  # D-01: a larger diff is refused before any model call


@dataclass(frozen=True)
class ReviewOutcome:
    draft: ReviewDraft
    changeset: Changeset
    agent: AgentResult | None
    rule_findings: tuple[Finding, ...]
    rule_notes: tuple[str, ...] = ()  # repository-rule problems (also in the review body)
    full: bool = True  # the diff was the whole pull request, not only the commits since an earlier head

    @property
    def conclusion(self) -> str:
        return self.draft.conclusion

    def scope(self, *, focused: bool = False) -> ReviewScope:
        """What earlier threads this review can judge (bot.outdated): a focused review, or a model
        reviewer that did not finish, cannot tell that an earlier finding went away."""
        agent_ok = self.agent is None or self.agent.status == "ok"
        return ReviewScope(self.draft.standing, self.changeset, self.full, whole=agent_ok and not focused)


def head_reader(root: Path) -> Callable[[str], Sequence[str] | None]:
    """Read head files for evidence checks, jailed to ``root``: regular files only, no links, no .git."""
    root = root.resolve()
    cache: dict[str, Sequence[str] | None] = {}

    def read(path: str) -> Sequence[str] | None:
        if path in cache:
            return cache[path]
        cache[path] = lines = _read_jailed(root, path)
        return lines

    return read


def head_prefix_reader(root: Path, limit: int = 8192) -> Callable[[str], Sequence[str] | None]:
    """The first ``limit`` bytes of head files, as lines, with the same jail as :func:`head_reader`."""
    root = root.resolve()
    return lambda path: _read_jailed(root, path, limit)


def _read_jailed(root: Path, path: str, limit: int | None = None) -> Sequence[str] | None:
    data = read_head_file(root, path, limit)
    if data is None or b"\0" in data[:8192]:
        return None
    # "\n" only, as git splits a diff: splitlines() also breaks at \f, \x85 and U+2028, which shifts
    # every later line away from the diff's numbering (and drops findings on those lines)
    lines = data.decode("utf-8", errors="replace").split("\n")
    return lines[:-1] if lines and not lines[-1] else lines


async def review_workspace(
    ws: Workspace,
    inputs: ReviewInputs,
    *,
    provider: Provider | None = None,
    agent: AgentDefinition | None = None,
    budgets: AgentBudgets | None = None,
    progress: Progress | None = None,
) -> ReviewOutcome:
    """Review the workspace's head against its merge base (or ``inputs.diff_base``)."""
    started = time.monotonic()
    say = progress or (lambda _line: None)
    say("diffing")
    diff_text = await ws.diff(base=inputs.diff_base)
    if inputs.max_diff_bytes is not None and len(diff_text) > inputs.max_diff_bytes:
        raise BudgetExceeded(
            f"the diff is {len(diff_text):,} bytes; backend-review reads at most {inputs.max_diff_bytes:,}"
        )
    # File kinds, database dialects and repository rules come from the BASE branch only (P-04).
    base = await read_base_context(ws, ws.base_sha or ws.merge_base)
    parsed = parse_diff(
        diff_text,
        base_sha=inputs.diff_base or ws.merge_base or "",
        head_sha=ws.head_sha,
        filters=replace(inputs.filters, attributes=base.attributes),
    )
    # a lazy workspace (the App's) writes only what is read: the changed files now, all before the agent
    await ws.materialize(f.path for f in parsed.files)
    changeset = _skip_oversized(parsed, ws.path)
    changeset = mark_generated(changeset, head_prefix_reader(ws.path))
    say(f"{len(changeset.files)} changed files, running offline checks")
    texts = await file_texts(ws, changeset, inputs.diff_base or ws.merge_base)
    rules_started = metrics.clock()
    repo_rules, rule_problems = load_rules(base.rule_files)
    repo_run = run_repo_rules(repo_rules, changeset, head_reader(ws.path))
    rule_findings = tuple(
        f
        for f in (*run_rules(changeset, base.project, texts), *repo_run.findings)
        if _in_focus(f, inputs.focus)
    )
    metrics.phase_since("rules", rules_started)
    findings: list[Finding] = list(rule_findings)
    agent_result: AgentResult | None = None
    prompt = budget_prompt(changeset, inputs.prompt_tokens)
    if provider is not None and changeset.reviewable_files:
        definitions = enclosing_definitions(
            changeset, texts, inputs.prompt_tokens - prompt.estimated_tokens, prompt.included + prompt.clipped
        )
        definition = agent or load_definition("backend-engineer")
        await ws.materialize_all()  # the agent's grep and view see the whole head tree
        toolbox = Toolbox(ws.path, allowed=definition.granted, secrets=SECRETS)
        context = ReviewPromptContext(
            title=inputs.title,
            body=inputs.body,
            diff=prompt,
            hints=rule_findings,
            repository=inputs.repo or "",
            head_sha=ws.head_sha,
            skipped=tuple((f.path, f.skip_reason or "") for f in changeset.skipped_files),
            focus=tuple(c.value for c in inputs.focus),
            definitions=definitions,
        )
        model_started = metrics.clock()
        agent_result = await run_agent(
            definition,
            provider=provider,
            tools=toolbox,
            context=context,
            budgets=budgets or AgentBudgets(),
            secrets=SECRETS,
            on_progress=say,
        )
        metrics.phase_since("model", model_started)
        findings.extend(f for f in agent_result.findings if _in_focus(f, inputs.focus))
    rule_notes = [*rule_problems, *repo_run.notes]
    rule_notes += [
        f"`{p}`: over the repository-rule caps; its rules are off" for p in base.rule_files_skipped
    ]
    notes = [*inputs.notes, *rule_notes]
    if agent_result is not None and agent_result.status != "ok" and agent_result.note:
        notes.append(agent_result.note)
    ctx = ReviewContext(
        repo=inputs.repo,
        head_sha=ws.head_sha,
        max_inline=inputs.max_inline,
        fail_on=inputs.fail_on,
        agent_results=(agent_result,) if agent_result else (),
        offline_only=provider is None,
        reviewed_files=len(changeset.reviewable_files),
        total_files=len(changeset.files),
        skipped=tuple((f.path, f.skip_reason or "") for f in changeset.skipped_files),
        omitted_from_prompt=prompt.omitted,
        seconds=time.monotonic() - started,
        notes=tuple(notes),
        secrets=SECRETS,
        already_posted=inputs.already_posted,
    )
    draft = build_review(findings, changeset, head_reader(ws.path), ctx)
    log.info(
        "review assembled",
        files=len(changeset.files),
        findings=len(draft.findings),
        inline=len(draft.comments),
        dropped=draft.dropped,
        agent=agent_result.status if agent_result else "off",
    )
    return ReviewOutcome(
        draft, changeset, agent_result, rule_findings, tuple(rule_notes), full=inputs.diff_base is None
    )


MAX_TREE_FILES = 500  # beyond this many changed code files, the structural checks read the hunks only


async def file_texts(ws: Workspace, changeset: Changeset, base: str | None) -> dict[str, FileTexts]:
    """Head and base text of the changed code files, for the syntax trees of the structural checks.

    Heads come from the jailed workspace; bases (only of files that lose lines: the diff-aware checks'
    input) from one ``git cat-file --batch``. Files over the parse cap are left out: the checks then
    read their hunks.
    """
    code = [
        fd
        for fd in changeset.reviewable_files
        if not fd.is_binary and fd.status != FileStatus.DELETED and language_of(fd.path) in GRAMMARS
    ][:MAX_TREE_FILES]
    if not code:
        return {}
    heads: dict[str, str] = {}
    for fd in code:
        lines = _read_jailed(ws.path.resolve(), fd.path)
        if lines is not None:
            text = "\n".join(lines)
            if len(text) <= MAX_PARSE_BYTES:
                heads[fd.path] = text
    olds = {fd.path: fd.old_path or fd.path for fd in code if fd.deletions and fd.status != FileStatus.ADDED}
    blobs = (
        await ws.read_blobs(base, list(dict.fromkeys(olds.values())), MAX_PARSE_BYTES)
        if base and olds
        else {}
    )
    out: dict[str, FileTexts] = {}
    for fd in code:
        raw = blobs.get(olds.get(fd.path, ""))
        base_text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n") if raw is not None else None
        if fd.path in heads or base_text is not None:
            out[fd.path] = FileTexts(heads.get(fd.path), base_text)
    return out


def _skip_oversized(changeset: Changeset, root: Path) -> Changeset:
    """A head file over the read cap cannot have its findings verified: list it as skipped, with the
    reason, rather than as reviewed with its findings silently dropped."""
    cap = f"over the {MAX_HEAD_FILE_BYTES // 1_000_000} MB size cap"
    files = []
    for f in changeset.files:
        if f.reviewable and f.status != FileStatus.DELETED:
            size = head_file_size(root, f.path)
            if size is not None and size > MAX_HEAD_FILE_BYTES:
                f = replace(f, skip_reason=cap)
        files.append(f)
    return replace(changeset, files=tuple(files))


def _in_focus(finding: Finding, focus: tuple[Category, ...]) -> bool:
    return not focus or finding.category in focus


def worst_severity(draft: ReviewDraft) -> Severity | None:
    ranks = [r.finding.severity for r in draft.findings]
    return max(ranks, key=lambda s: s.rank) if ranks else None
