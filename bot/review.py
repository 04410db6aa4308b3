"""Findings → one review draft (pure): verify evidence, anchor, dedupe, rank, cap, sanitise, render.

Nothing a reviewer says is trusted (DESIGN.md "Evidence is checked, not trusted"): a finding must
quote code that is really in the head file, on a safe path, and it is placed only where GitHub
accepts a comment, so the draft can never earn a 422 (O-06). Every rendered string goes through
:mod:`bot.sanitize`; the fingerprint marker is appended after sanitising and is the only HTML
comment a posted body ever holds (O-04). The check conclusion is computed here from severities,
never read from model output (O-08).
"""

from __future__ import annotations

import hashlib
import math
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from bot.diff import moved_lines
from bot.models import (
    AgentResult,
    Changeset,
    FileComment,
    FileDiff,
    Finding,
    InlineComment,
    RankedFinding,
    ReviewDraft,
    Severity,
)
from bot.publish.body import MAX_BODY
from bot.publish.markers import marker, sha7
from bot.redact import SecretSet
from bot.rules import RULES
from bot.sanitize import (
    Sanitised,
    SanitisedText,
    clean_text,
    code_block,
    code_span,
    compose,
    fixed,
    inert_plain,
    join,
    plain_text,
    sanitize_markdown,
)

MAX_COMMENT = 16_000  # stay well inside GitHub's per-comment limit
MAX_FILE_COMMENTS = 5
MIN_EVIDENCE = 3  # shorter evidence matches almost anywhere: it verifies nothing
MAX_SKIPPED_LISTED = 10
MAX_NOTE = 500  # notes and agent names come from config and providers: bounded so the footer stays small
MAX_NOTES = 10
# Offline findings less sure than this are not posted as comments and do not gate the check (precision
# wins over recall): they are only listed in the summary, and the agent gets them as leads to confirm.
# The model, told to submit nothing below 0.5, is trusted with its own confidence.
MIN_CONFIDENCE = 0.6
_RULE_IDS = frozenset(r.id for r in RULES)

EMOJI = {
    Severity.CRITICAL: fixed("🔴"),
    Severity.HIGH: fixed("🟠"),
    Severity.MEDIUM: fixed("🟡"),
    Severity.LOW: fixed("🔵"),
    Severity.NIT: fixed("⚪"),
}

ReadHead = Callable[[str], Sequence[str] | None]


@dataclass(frozen=True)
class ReviewContext:
    repo: str | None  # "owner/name" for link allowlisting; None locally
    head_sha: str
    max_inline: int = 10
    fail_on: Severity | None = None  # None → conclusion "neutral" always
    agent_results: tuple[AgentResult, ...] = ()
    offline_only: bool = True  # no model configured: the body says the offline checks ran alone
    reviewed_files: int = 0
    total_files: int = 0
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason) of changed files not reviewed
    omitted_from_prompt: tuple[str, ...] = ()  # reviewable files the model only saw through tools
    seconds: float = 0.0
    notes: tuple[str, ...] = ()  # extra human notes, e.g. config errors, "model unavailable"
    secrets: SecretSet | None = None
    already_posted: frozenset[str] = frozenset()  # fingerprints found in earlier comments: never repeat
    min_confidence: float = MIN_CONFIDENCE


# --- evidence ------------------------------------------------------------------------------------


def _norm_line(line: str) -> str:
    return " ".join(line.split())


def _norm_evidence(evidence: str) -> list[str]:
    lines = [_norm_line(ln) for ln in evidence.split("\n")]  # as git splits lines (U+2028 is not a break)
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def safe_path(path: str) -> bool:
    """A plain relative path with no dot segments, controls or backslashes (never `../../etc/passwd`)."""
    if not path or path.startswith("/") or "\\" in path or len(path) > 4096:
        return False
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return False
    parts = path.split("/")
    return all(p not in ("", ".", "..") for p in parts) and posixpath.normpath(path) == path


def _matches(head: Sequence[str], ev: list[str]) -> list[int]:
    """0-based start indices where the (normalised) evidence occurs; first/last lines may be fragments."""
    k = len(ev)
    norm = [_norm_line(ln) for ln in head]
    if k == 1:
        return [i for i, ln in enumerate(norm) if ev[0] in ln]
    return [
        i
        for i in range(len(norm) - k + 1)
        if norm[i].endswith(ev[0])
        and norm[i + k - 1].startswith(ev[-1])
        and all(norm[i + j] == ev[j] for j in range(1, k - 1))
    ]


def _anchor(f: Finding, head: Sequence[str], window: int) -> Finding | None:
    ev = _norm_evidence(f.evidence)
    if not ev or sum(len(x) for x in ev) < MIN_EVIDENCE:
        return None
    starts = _matches(head, ev)
    if not starts:
        return None
    k = len(ev)

    end = f.end_line if f.end_line is not None and f.end_line >= f.line else None
    claimed_end = end or f.line

    def distance(i: int) -> int:  # from the claimed range to the evidence span i+1..i+k
        lo, hi = i + 1, i + k
        return 0 if lo <= claimed_end and f.line <= hi else min(abs(f.line - hi), abs(claimed_end - lo))

    best = min(starts, key=lambda i: (distance(i), i))
    if distance(best) == 0:
        line = f.line
    elif distance(best) <= window or len(starts) == 1:
        line = best + 1
        end = end + (line - f.line) if end is not None else None
    else:
        return None  # ambiguous: several occurrences, none near the claimed line
    if k > 1:
        end = max(end or line, best + k)
    if end is not None and (end <= line or end > len(head)):
        end = None if end <= line else len(head)
    # a suggestion replaces exactly the lines it was written for: a range anchoring resized gets none
    resized = (end or line) - line != claimed_end - f.line
    return replace(f, line=line, end_line=end, suggestion=None if resized else f.suggestion)


def verify_and_anchor(
    findings: Sequence[Finding],
    changeset: Changeset,
    read_head: ReadHead,
    *,
    window: int = 8,
) -> tuple[list[Finding], int]:
    """Keep findings whose evidence is in the head file, re-anchored to where it is; count the rest.

    ``changeset`` is not consulted for membership here: a finding on an unchanged file may still be
    reported in the summary (see :func:`build_review`), as long as its evidence verifies.
    """
    del changeset  # kept in the signature: callers pass the same changeset everywhere
    kept: list[Finding] = []
    dropped = 0
    cache: dict[str, Sequence[str] | None] = {}
    for f in findings:
        if not safe_path(f.path) or f.line < 1:
            dropped += 1
            continue
        if f.path not in cache:
            cache[f.path] = read_head(f.path)
        head = cache[f.path]
        anchored = _anchor(f, head, window) if head else None
        if anchored is None:
            dropped += 1
            continue
        conf = anchored.confidence
        kept.append(replace(anchored, confidence=min(1.0, max(0.0, conf)) if math.isfinite(conf) else 0.0))
    return kept, dropped


# --- fingerprints ------------------------------------------------------------------------------


def fingerprint(f: Finding) -> str:
    """Stable across line shifts: hash of (source, path, category, normalised evidence), never the line."""
    key = "\x1f".join(
        (f.source.strip().lower(), f.path, f.category.value, "\n".join(_norm_evidence(f.evidence)))
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


# --- dedupe, rank, gate ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    finding: Finding
    fps: tuple[str, ...]  # primary first; merged duplicates contribute theirs
    sources: tuple[str, ...]


def _span(f: Finding) -> tuple[int, int]:
    return f.line, f.end_line or f.line


def _rank_key(f: Finding) -> tuple[int, float, str, int]:
    return (-f.severity.rank, -f.confidence, f.path, f.line)


def _duplicates(a: Finding, b: Finding) -> bool:
    if a.path != b.path:
        return False
    (a0, a1), (b0, b1) = _span(a), _span(b)
    if a1 < b0 or b1 < a0:
        return False
    return a.category == b.category or _norm_evidence(a.evidence) == _norm_evidence(b.evidence)


def _merge(findings: Sequence[Finding]) -> list[_Candidate]:
    """Merge the same issue reported by different sources; exact repeats of one source collapse."""
    merged: list[_Candidate] = []
    for f in sorted(findings, key=_rank_key):  # the best report of an issue comes first and wins
        fp = fingerprint(f)
        for i, c in enumerate(merged):
            if fp in c.fps or (f.source not in c.sources and _duplicates(c.finding, f)):
                sources = c.sources if f.source in c.sources else (*c.sources, f.source)
                fps = c.fps if fp in c.fps else (*c.fps, fp)
                merged[i] = _Candidate(c.finding, fps, sources)
                break
        else:
            merged.append(_Candidate(f, (fp,), (f.source,)))
    return merged


def conclusion(
    findings: Sequence[Finding], fail_on: Severity | None
) -> Literal["neutral", "failure", "success"]:
    """The check-run conclusion, decided by code from verified severities (O-08).

    Gating is opt-in: without ``fail_on`` the check is always neutral. With it, a finding at or above
    the threshold fails the check, a clean review succeeds, anything else stays neutral.
    """
    if fail_on is None:
        return "neutral"
    if any(f.severity.at_least(fail_on) for f in findings):
        return "failure"
    return "success" if not findings else "neutral"


# --- placement ---------------------------------------------------------------------------------


def _inline_range(fd: FileDiff, f: Finding) -> tuple[int, int | None] | None:
    """(line, start_line) for an inline comment, or None when GitHub would refuse the line."""
    ok = fd.commentable_lines()
    if f.line not in ok:
        return None
    end = f.end_line
    if end is None or end <= f.line:
        return f.line, None
    hunk = fd.hunk_index(f.line)
    if all(n in ok and fd.hunk_index(n) == hunk for n in range(f.line, end + 1)):
        return end, f.line
    return f.line, None  # the range leaves the hunk: comment on the first line only


# --- rendering ---------------------------------------------------------------------------------


def _where(f: Finding) -> Sanitised:
    loc = f"{f.path}:{f.line}" + (f"-{f.end_line}" if f.end_line else "")
    return code_span(loc, table=True)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _counts(findings: Sequence[Finding]) -> str:
    parts = []
    for sev in Severity:
        n = sum(1 for f in findings if f.severity == sev)
        if n:
            parts.append(f"{n} {sev.value}")
    return ", ".join(parts)


def _fit(render: Callable[[str], Sanitised], text: str, limit: int) -> Sanitised:
    """Render ``text`` (untrusted) within ``limit`` chars, cutting the *input* at a line boundary.

    Cutting before sanitising means the sanitiser closes any open fence: never a cut mid-fence.
    """
    out = render(text)
    while len(out) > limit:
        keep = len(text) * limit // len(out) * 9 // 10  # escaping expands text: aim below the limit
        if keep < 1:
            return render("…(truncated)")
        cut = text.rfind("\n", 0, keep)
        text = text[: cut if cut > keep // 2 else keep]
        out = render(text.rstrip() + "\n\n…(truncated)")
    return out


def _suggestion(f: Finding, secrets: SecretSet | None) -> Sanitised | None:
    if f.suggestion is None or "<!--" in f.suggestion:
        return None
    text = clean_text(f.suggestion, secrets=secrets).rstrip("\n")
    return code_block(text, "suggestion")


def _title(f: Finding, ctx: ReviewContext | None = None) -> Sanitised:
    return inert_plain(f.title, secrets=ctx.secrets if ctx else None) or fixed("Finding")


def _comment_body(c: _Candidate, ctx: ReviewContext, *, with_suggestion: bool) -> Sanitised:
    f = c.finding
    head = compose(
        "{} **{}** · {} · {}",
        EMOJI[f.severity],
        _title(f, ctx),
        inert_plain(f.category.value),
        inert_plain(f.severity.value),
    )
    if len(c.sources) > 1:
        also = join(", ", (inert_plain(s, secrets=ctx.secrets) for s in c.sources[1:]))
        head = compose("{} · also flagged by {}", head, also)
    tail = marker(",".join(c.fps), ctx.head_sha)
    sugg = _suggestion(f, ctx.secrets) if with_suggestion else None
    if sugg and len(head) + len(sugg) + len(tail) + 200 > MAX_COMMENT:
        sugg = None  # a suggestion is all or nothing: never a truncated replacement
    room = MAX_COMMENT - len(head) - len(sugg or "") - len(tail) - 8
    body = _fit(lambda t: sanitize_markdown(t, repo=ctx.repo, secrets=ctx.secrets), f.body, room)
    parts = join("\n\n", (p for p in (head, body, sugg) if p))
    return compose("{}\n{}", parts, tail)


def _human_tokens(n: int) -> Sanitised:
    return compose("{:.1f}k", n / 1000) if n >= 1000 else compose("{}", n)


def _footer(ctx: ReviewContext) -> list[Sanitised]:
    lines: list[Sanitised] = []
    for r in ctx.agent_results:
        name = _note(r.agent, ctx)
        if r.status == "ok" and r.usage is not None:
            u = r.usage
            cost = compose(" (≈ ${:.2f})", u.cost_usd) if u.cost_usd is not None else fixed("")
            lines.append(
                compose(
                    "{} · {} · {} tokens in, {} out{} · {:.0f} s",
                    name,
                    _note(u.model, ctx),
                    _human_tokens(u.input_tokens),
                    _human_tokens(u.output_tokens),
                    cost,
                    ctx.seconds,
                )
            )
        elif r.status != "ok":
            note = _note(r.note, ctx) or inert_plain(r.status.replace("_", " "))
            lines.append(compose("{}: {}", name, note))
    if ctx.offline_only:
        lines.append(compose("Offline checks only (no model configured) · {:.0f} s", ctx.seconds))
    lines.extend(_note(n, ctx) for n in ctx.notes[:MAX_NOTES] if n.strip())
    return lines


def _note(text: str, ctx: ReviewContext) -> Sanitised:
    return inert_plain(text[:MAX_NOTE], secrets=ctx.secrets)


def _coverage(ctx: ReviewContext) -> Sanitised:
    line = compose(
        "Reviewed {} of {}", ctx.reviewed_files, inert_plain(_plural(ctx.total_files, "changed file"))
    )
    if ctx.skipped:
        by_reason: dict[str, list[Sanitised]] = {}
        for path, reason in ctx.skipped[:MAX_SKIPPED_LISTED]:
            by_reason.setdefault(reason or "skipped", []).append(code_span(path))
        groups = [
            compose("{} — {}", join(", ", paths), inert_plain(reason, secrets=ctx.secrets))
            for reason, paths in by_reason.items()
        ]
        more = len(ctx.skipped) - MAX_SKIPPED_LISTED
        listed = join("; ", groups)
        if more > 0:
            listed = compose("{}; and {} more", listed, more)
        line = compose("{} (not reviewed: {})", line, listed)
    line = compose("{}.", line)
    if ctx.omitted_from_prompt:
        n = inert_plain(_plural(len(ctx.omitted_from_prompt), "file"))
        line = compose("{} {} did not fit the prompt; the model read them through its tools.", line, n)
    return line


def _table(rows: Sequence[_Candidate], budget: int) -> tuple[list[Sanitised], int]:
    """Table lines within ``budget`` chars and how many rows fit."""
    lines = [fixed("| | finding | where |"), fixed("|---|---|---|")]
    used = sum(len(x) + 1 for x in lines)
    fitted = 0
    for c in rows:
        f = c.finding
        row = compose("| {} | {} | {} |", EMOJI[f.severity], _title(f), _where(f))
        if used + len(row) + 1 > budget:
            break
        lines.append(row)
        used += len(row) + 1
        fitted += 1
    return lines, fitted


def _summary_details(
    rows: Sequence[_Candidate], ctx: ReviewContext, budget: int
) -> tuple[list[Sanitised], int]:
    """One bullet per summary-only finding (no inline or file comment carries its body)."""
    lines: list[Sanitised] = []
    used = 0
    fitted = 0
    for c in rows:
        f = c.finding
        text = " ".join(f.body.split())
        text = text[:300] + ("…" if len(text) > 300 else "")
        bullet = compose(
            "- {} **{}** ({}): {}",
            EMOJI[f.severity],
            _title(f, ctx),
            _where(f),
            sanitize_markdown(text, repo=ctx.repo, secrets=ctx.secrets),
        )
        if used + len(bullet) + 1 > budget:
            break
        lines.append(bullet)
        used += len(bullet) + 1
        fitted += 1
    return lines, fitted


def _not_on_moved_code(findings: list[Finding], changeset: Changeset) -> list[Finding]:
    """Moved code is not new code: a finding whose lines all moved here unchanged is not posted."""
    if not findings:
        return findings
    moved = moved_lines(changeset, {f.path for f in findings})
    if not moved:
        return findings
    return [
        f
        for f in findings
        if not all(n in moved.get(f.path, ()) for n in range(f.line, (f.end_line or f.line) + 1))
    ]


def _moved_standing(
    found: Sequence[Finding], posted: Sequence[Finding], changeset: Changeset, ctx: ReviewContext
) -> frozenset[str]:
    """Findings on moved or re-spaced code are not posted, yet they still stand: their fingerprints,
    also as if still in any file this change deleted lines from (code moved out of it), keep the
    earlier thread open (bot.outdated)."""
    kept = set(posted)
    sources = {fd.path for fd in changeset.files if fd.deletions}
    out: set[str] = set()
    for f in found:
        if f in kept:
            continue
        f = replace(
            f,
            evidence=clean_text(f.evidence, secrets=ctx.secrets),
            source=" ".join(clean_text(f.source, secrets=ctx.secrets).split())[:100],
        )
        out |= {fingerprint(replace(f, path=p)) for p in {f.path, *sources}}
    return frozenset(out)


def build_review(
    findings: Sequence[Finding],
    changeset: Changeset,
    read_head: ReadHead,
    ctx: ReviewContext,
) -> ReviewDraft:
    """The whole pure stage: findings from every reviewer → a draft GitHub cannot reject."""
    verified, dropped = verify_and_anchor(findings, changeset, read_head)
    found = verified
    verified = _not_on_moved_code(verified, changeset)
    cleaned = [
        replace(
            f,
            title=" ".join(clean_text(f.title, secrets=ctx.secrets).split())[:200],
            body=clean_text(f.body, secrets=ctx.secrets),
            evidence=clean_text(f.evidence, secrets=ctx.secrets),
            source=" ".join(clean_text(f.source, secrets=ctx.secrets).split())[:100],
            suggestion=None if f.suggestion is None else clean_text(f.suggestion, secrets=ctx.secrets),
        )
        for f in verified
    ]
    merged = _merge(cleaned)
    # the gate sees every finding that still stands, also those an earlier review already posted
    verdict = conclusion([c.finding for c in merged if _sure(c.finding, ctx)], ctx.fail_on)
    still_open = sum(1 for c in merged if set(c.fps) & ctx.already_posted)
    candidates = [c for c in merged if not set(c.fps) & ctx.already_posted]
    candidates.sort(key=lambda c: _rank_key(c.finding))

    comments: list[InlineComment] = []
    file_comments: list[FileComment] = []
    placements: list[Literal["inline", "file", "summary"]] = []
    for c in candidates:
        f = c.finding
        fd = changeset.file(f.path)
        where: Literal["inline", "file", "summary"] = "summary"
        if fd is not None and _sure(f, ctx):
            rng = _inline_range(fd, f)
            if rng is not None and len(comments) < ctx.max_inline:
                line, start = rng
                complete = start is not None or f.end_line is None or f.end_line == f.line
                body = _comment_body(c, ctx, with_suggestion=complete)
                comments.append(InlineComment(f.path, line, body, c.fps[0], start))
                where = "inline"
            elif len(file_comments) < MAX_FILE_COMMENTS:
                body = _comment_body(c, ctx, with_suggestion=False)
                file_comments.append(FileComment(f.path, body, c.fps[0]))
                where = "file"
        placements.append(where)

    all_found = [c.finding for c in candidates]
    title = _check_title(all_found)
    if not candidates:
        body = _empty_body(ctx)
        summary = body
    else:
        body, summary = _full_body(candidates, placements, ctx)
    ranked = tuple(RankedFinding(c.finding, c.fps[0], p) for c, p in zip(candidates, placements, strict=True))
    if still_open:
        summary = compose(
            "{}\n\n{} from earlier reviews of this pull request still apply.",
            summary,
            inert_plain(_plural(still_open, "finding")),
        )
    return ReviewDraft(
        head_sha=ctx.head_sha,
        body=body,
        comments=tuple(comments),
        file_comments=tuple(file_comments),
        findings=ranked,
        dropped=dropped,
        check_title=title,
        check_summary=summary,
        conclusion=verdict,
        standing=frozenset(fp for c in merged for fp in c.fps)
        | _moved_standing(found, verified, changeset, ctx),
    )


def _sure(f: Finding, ctx: ReviewContext) -> bool:
    """Sure enough to be a comment (and to gate the check): a low-confidence offline finding is only
    listed in the summary, and reaches the model as a lead."""
    return f.confidence >= ctx.min_confidence or f.source not in _RULE_IDS


def _check_title(findings: Sequence[Finding]) -> SanitisedText:
    if not findings:
        return plain_text("No issues found")
    return plain_text(f"{_plural(len(findings), 'issue')}: {_counts(findings)}")


def _empty_body(ctx: ReviewContext) -> Sanitised:
    scope = inert_plain(f"{ctx.reviewed_files} of {_plural(ctx.total_files, 'file')}")
    extra = fixed("; offline checks only") if ctx.offline_only else fixed("")
    line = compose(
        "**backend-review** found no issues in {} ({}{}).", code_span(sha7(ctx.head_sha)), scope, extra
    )
    notes = [_note(n, ctx) for n in ctx.notes[:MAX_NOTES] if n.strip()]
    notes += [
        compose("{}: {}", inert_plain(r.agent), _note(r.note, ctx) or inert_plain(r.status.replace("_", " ")))
        for r in ctx.agent_results
        if r.status != "ok"
    ]
    return join("\n", [line, *notes])


def _full_body(
    candidates: Sequence[_Candidate],
    placements: Sequence[str],
    ctx: ReviewContext,
) -> tuple[Sanitised, Sanitised]:
    """(review body, check-run summary): the same table; only the body carries the marker."""
    found = [c.finding for c in candidates]
    head = compose(
        "**backend-review** found {} in {} — {}.",
        inert_plain(_plural(len(found), "issue")),
        code_span(sha7(ctx.head_sha)),
        inert_plain(_counts(found)),
    )
    foot = [_coverage(ctx), *_footer(ctx)]
    fixed_len = len(head) + sum(len(x) + 1 for x in foot) + 200
    summary_only = [c for c, p in zip(candidates, placements, strict=True) if p == "summary"]
    # worst case marker: every summary-only fingerprint (17 chars each with its comma)
    marker_room = 60 + 17 * sum(len(c.fps) for c in summary_only)
    budget = MAX_BODY - fixed_len - marker_room
    table, n_rows = _table(candidates, budget * 2 // 3)
    used = sum(len(x) + 1 for x in table)
    details, n_details = _summary_details(summary_only, ctx, budget - used)
    lines = [head, fixed(""), *table]
    if n_rows < len(candidates):
        lines.append(compose("\n…and {} more, not shown: the review is too long.", len(candidates) - n_rows))
    if details:
        lines += [fixed(""), *details]
    lines += [fixed(""), *foot]
    text = join("\n", lines)
    shown = [fp for c in summary_only[:n_details] for fp in c.fps]
    body = compose("{}\n{}", text, marker(",".join(shown), ctx.head_sha)) if shown else text
    return body, text


__all__ = [
    "EMOJI",
    "MAX_COMMENT",
    "MAX_FILE_COMMENTS",
    "MIN_CONFIDENCE",
    "ReviewContext",
    "build_review",
    "conclusion",
    "fingerprint",
    "safe_path",
    "verify_and_anchor",
]
