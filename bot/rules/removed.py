"""Removed safeguards: what the base had and the head no longer has, in the same function.

Many real defects are deletions: a throttle, a validation, a permission check or policy call, an auth
decorator, an eager load, a cache-privacy directive or an account-state check disappears. For every line
the change removes, the base tree says which function it belonged to; the safeguard counts of that
function in base and head (comments and strings blanked, so a comment neither hides nor fakes one) tell
whether it is gone or only moved. Gone from the function and from the file, and not added in another
changed file (moved to a middleware or base class), is a finding on the nearest right-side line of the hunk.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from bot.models import Category, Severity
from bot.rules.base import CODE, Rule, rule
from bot.rules.structural import SHit, StructCheck, Unit
from bot.rules.syntax import Def, Tree, find_all


@dataclass(frozen=True)
class _Kind:
    rule: Rule
    pattern: re.Pattern[str]
    strings: bool = False  # the safeguard lives in string text (headers): read strings too


def _k(
    id: str, title: str, cat: Category, sev: Severity, what: str, fix: str, conf: float, pat: str
) -> _Kind:
    msg = f"The change removes {what} that the base version had here, and nothing in the change replaces it."
    return _Kind(rule(id, title, cat, sev, CODE, msg, fix, conf), re.compile(pat, re.I))


KINDS = (
    _k("removed-auth-check", "Authorization check removed", Category.AUTH, Severity.HIGH,
       "an authentication or authorization check (decorator, middleware, filter, permission or policy call)",
       "Restore the check, or say in the PR where the same check now happens.", 0.8,
       r"\blogin_required\b|\bpermission_required\b|\bpermission_classes\b|\bauthentication_classes\b"
       r"|\bauthenticate\w*|\bauthoriz\w*|\brequires?_(?:auth|login|permission|role|scope|admin|user)\w*"
       r"|\bcheck_permissions?\b|\bcheck_object_permissions\b|\bhas_perms?\b|\bhas_object_permission\b"
       r"|@(?:PreAuthorize|Secured|RolesAllowed)\b|\bUseGuards\b|\bpolicy_scope\b|\bcan\?|\bjwt_required\b"
       r"|\buser_passes_test\b|\bstaff_member_required\b|\bis_(?:staff|superuser|admin)\b|\bisAdmin\b"
       r"|\brequire(?:Auth|Admin|Role|User|Login|Permission)\w*|\bensure(?:Logged|Authenticated)\w*|\bverifyToken\b|\bcheckJwt\b|\bget_current_user\b"
       r"|\bIsAuthenticated\b|\bIsAdminUser\b|\bIsOwner\w*"),
    _k("removed-rate-limit", "Rate limit removed", Category.SECURITY, Severity.MEDIUM,
       "a throttle / rate limit", "Restore the limit (or apply an equivalent one) on this endpoint.", 0.8,
       r"\bthrottl\w*|\brate_?limit\w*|\bratelimit\w*|\blimiter\b|\bslowDown\b|\bThrottle\w*|\bRateLimit\w*"),
    _k("removed-validation", "Input validation removed", Category.SECURITY, Severity.MEDIUM,
       "an input validation", "Restore the validation of this input.", 0.7,
       r"\bvalidate\w*\s*\(|\.full_clean\(|\.is_valid\(|@Valid(?:ated)?\b|\bsanitiz\w*\s*\("
       r"|^\s*validates(?:_\w+)?\s+:|\b_?check_\w+\s*\(|\bquote_(?:name|ident\w*)\s*\(|\bescape_\w+\s*\("),
    _k("removed-eager-load", "Eager load removed (N+1)", Category.PERFORMANCE, Severity.MEDIUM,
       "an eager load of related rows", "Keep the eager load: each related row is one more query.", 0.7,
       r"\bselect_related\b|\bprefetch_related\b|\bjoinedload\b|\bselectinload\b|\bsubqueryload\b"
       r"|\bcontains_eager\b|\.includes\(\s*:|\.preload\(\s*:|\beager_load\b|\.Preload\(|\bJOIN\s+FETCH\b"
       r"|@EntityGraph\b|\.populate\(|\binclude\s*:\s*[\[{]"),
    _Kind(
        rule("removed-cache-privacy", "Cache-privacy directive removed", Category.SECURITY, Severity.MEDIUM,
             CODE,
             "The change removes a `Cache-Control: private/no-store` (or never-cache) directive from a "
             "response the base version kept out of shared caches: per-user data can now be cached and "
             "served to others.",
             "Keep the response private (`Cache-Control: private, no-store`).", 0.75),
        re.compile(r"cache-control[\"']?\s*[,:=\]]\s*[^\n]*(?:private|no-store)|\bnever_cache\b|\bno_store\s*="
                   r"|cache_control\([^)]*(?:private|no_store)|\bnoStore\b|\bCacheControl\.noStore|\bsetPrivate\b"
                   r"|expires_now\b", re.I),
        strings=True,
    ),
    _k("removed-account-check", "Account-state check removed", Category.AUTH, Severity.HIGH,
       "a check of the account's state (active, locked, banned, verified)",
       "Restore the check so disabled, locked or unverified accounts stay out.", 0.75,
       r"\bis_active\b|\bisActive\b|\bactive\?|\bis_locked\b|\blocked\?|\baccess_locked\?|\blocked_at\b"
       r"|\bis_banned\b|\bbanned\b|\bis_suspended\b|\bsuspended\b|\bis_disabled\b|\bdisabled\?|\bdeactivated\b"
       r"|\bemail_verified\b|\bis_verified\b|\bconfirmed\?|\bis_blocked\b|\baccount_locked\b|\blockout\w*"),
)  # fmt: skip


_IMPORT = re.compile(
    r"^\s*(?:from\s+\S+\s+import\b|import\b|(?:const|let|var)\s+[\w{}\s,]+=\s*require\(|require(?:_relative)?\b|use\s)"
)


def _count(tree: Tree, d: Def | None, kind: _Kind) -> int:
    lines = tree.code_lines if kind.strings else tree.bare_lines
    lo, hi = (d.start, d.end) if d is not None else (0, len(lines) - 1)
    return sum(len(kind.pattern.findall(lines[i])) for i in range(lo, min(hi, len(lines) - 1) + 1))


def _removed(unit: Unit, kind: _Kind) -> Iterator[SHit]:
    base, head = unit.base, unit.head
    if base is None or head is None:
        return
    lines = base.code_lines if kind.strings else base.bare_lines
    heads = head.by_qualname()
    done: set[str] = set()
    for bl, _ in unit.removed:
        if bl >= len(lines):
            continue
        m = kind.pattern.search(lines[bl])
        if m is None or _IMPORT.match(lines[bl]):
            continue  # an import going away follows the code that used it
        d = base.enclosing(bl, None)
        key = d.qualname if d is not None else ""
        if key in done:
            continue
        hd = heads.get(key) if d is not None else None
        if d is not None and hd is None:
            continue  # the whole function went (or was renamed): not a safeguard taken out of it
        if _count(head, hd, kind) >= _count(base, d, kind):
            continue
        if _count(head, None, kind) >= _count(base, None, kind) or m.group(0).lower() in unit.added_elsewhere:
            continue  # moved within the file, or into another changed file
        head_lines = head.code_lines if kind.strings else head.bare_lines
        if any(kind.pattern.search(head_lines[i]) for i in unit.added if i < len(head_lines)):
            continue  # the change adds the same kind of safeguard elsewhere in this file: moved or reworked
        anchor = unit.anchor_for_removed(bl)
        if anchor is None:
            continue
        done.add(key)
        gone = base.lines[bl].strip()
        gone = gone if len(gone) <= 100 else gone[:97] + "..."
        yield SHit(anchor, None, f"Removed: `{gone.replace('`', '')}`.")


_GUARD = rule(
    "removed-guard-clause",
    "Guard clause removed",
    Category.SECURITY,
    Severity.MEDIUM,
    CODE,
    "The change removes a guard that rejected some input or state with an error (`if ...: raise/throw`), "
    "and the function goes on without it: what it rejected is now accepted.",
    "Restore the guard, or say in the PR what makes that input safe now.",
    confidence=0.7,
)
_IFS = ("if_statement", "if", "unless", "if_modifier", "unless_modifier")
_RAISES = re.compile(
    r"^(?:raise\b|throw\b|fail\b|abort\(\s*4\d\d|return\s+(?:nil,\s*|\w+,\s*)?(?:fmt\.Errorf|errors\.New|Err\w+)\b)"
)


def _guards(tree: Tree) -> list[tuple[str, str, int, int]]:
    """(normalised first line, what it raises, first line, last line) of each ``if <cond>: raise`` guard."""
    out: list[tuple[str, str, int, int]] = []
    for node in find_all(tree.root, *_IFS):
        if node.field("alternative") is not None:
            continue  # an if/else chooses between paths; a guard only stops one
        body = node.field("consequence")
        if body is None and node.kind().endswith("_modifier"):
            body = node.field("body")
        if body is None:
            continue
        blocks = ("block", "statement_block", "then", "body_statement")
        stmts = (
            [c for c in body.children() if c.is_named() and c.kind() != "comment"]
            if body.kind() in blocks
            else [body]
        )
        if len(stmts) != 1 or not _RAISES.match(stmts[0].text().strip()):
            continue
        r = node.range()
        first = " ".join(tree.bare_lines[r.start.line].split())
        out.append((first, " ".join(stmts[0].text().split()), r.start.line, r.end.line))
    return out


def _removed_guard(unit: Unit) -> Iterator[SHit]:
    base, head = unit.base, unit.head
    if base is None or head is None:
        return
    removed = {bl for bl, _ in unit.removed}
    head_guards = _guards(head)
    still = {g for g, _, _, _ in head_guards} | {raised for _, raised, _, _ in head_guards}
    heads = head.by_qualname()
    for key, raised, lo, hi in _guards(base):
        if key in still or raised in still or not all(i in removed for i in range(lo, hi + 1)):
            continue  # the same guard, or one raising the same error, is still there: rewritten, not removed
        d = base.enclosing(lo, "function")
        if d is None or d.qualname not in heads or d.start == lo:
            continue  # outside a function, or the function itself went
        cond = key.removeprefix("if ").removeprefix("unless ").strip(" (:{")[:40].lower()
        if cond and cond in unit.added_elsewhere:
            continue
        anchor = unit.anchor_for_removed(lo)
        if anchor is None:
            continue
        hd = heads[d.qualname]
        rewritten = sum(1 for i in unit.added if hd.start <= i <= hd.end) > 2
        # A guard dropped from a function that is otherwise untouched is the change's point; one dropped
        # while the function is rewritten is likely replaced by something this rule cannot see: a hint only.
        yield SHit(
            anchor, 0.5 if rewritten else None, f"Removed: `{base.lines[lo].strip()[:100].replace('`', '')}`."
        )


def _check(kind: _Kind) -> StructCheck:
    needles = tuple(
        sorted(
            {
                w.lower()
                for w in re.findall(r"[A-Za-z_]{4,}", re.sub(r"\\[a-zA-Z]", " ", kind.pattern.pattern))
            }
        )
    )
    return StructCheck(
        kind.rule, lambda unit: _removed(unit, kind), any_line=True, needles=needles, on_removed=True
    )


CHECKS = (
    *(_check(k) for k in KINDS),
    StructCheck(
        _GUARD,
        _removed_guard,
        any_line=True,
        needles=("raise", "throw", "fail", "abort", "err"),
        on_removed=True,
    ),
)
