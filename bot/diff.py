"""Unified diff (git output) → :class:`~bot.models.Changeset`, path filters, and the prompt budget. Pure.

Why a hand-written parser: ``unidiff`` needs ~95 ms for the 1 MB reference diff before any conversion to
our models, which alone spends most of the ≤110 ms target (DESIGN "Performance targets"); this single pass
over ``text.split("\\n")`` builds the frozen models directly (figures: ``python -m bench.bench_diff``).

Parsing rules worth knowing:

* Hunk bodies are consumed by their header counts, so a removed line such as ``-- a/b`` (shown as
  ``--- a/b``) is never mistaken for a file header.
* One trailing ``\\r`` is dropped from every line: CRLF files keep their text, not their line ending.
* Paths come from ``rename``/``copy`` lines first, then ``---``/``+++``, then the ``diff --git`` line;
  git's C-style quoting (``"a/t\\303\\251st.py"``) is undone and decoded as UTF-8 (invalid bytes → U+FFFD).
* ``\\ No newline at end of file`` markers carry no line and are dropped.
* Copies (``copy from/to``, only with ``-C``) have no status of their own: they are ADDED with ``old_path``.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import islice

from bot.models import Changeset, DiffLine, FileDiff, FileStatus, Hunk, PromptDiff

__all__ = [
    "PathFilters",
    "budget_prompt",
    "estimate_tokens",
    "format_file_patch",
    "gitattributes",
    "looks_minified",
    "mark_generated",
    "moved_lines",
    "parse_diff",
    "skip_reason",
]


@dataclass(frozen=True)
class PathFilters:
    include: tuple[str, ...] = ()  # globs; when non-empty only matching paths are reviewed
    exclude: tuple[str, ...] = ()  # globs added to the defaults
    use_defaults: bool = True
    # (glob, attribute, value) from the BASE branch's .gitattributes files, in precedence order (the last
    # match wins): see :func:`gitattributes`. value: "true", "false", or None when unset (``!attr``).
    attributes: tuple[tuple[str, str, str | None], ...] = ()


# ---------------------------------------------------------------------------------------------- globs


def _glob_regex(pattern: str) -> str:
    """Translate one gitignore-like glob to a regex over a repo-relative POSIX path.

    ``*``/``?``/``[..]`` never cross ``/``; ``**`` does. A pattern without an inner ``/`` matches at any
    depth (like ``**/pattern``); a leading ``/`` anchors it at the root; a trailing ``/`` or a match on a
    directory covers everything below it, as gitignore does.
    """
    pat = pattern.strip()
    if pat.endswith("/"):
        pat = pat.rstrip("/")
    if pat.startswith("/"):
        pat = pat.lstrip("/")
    elif "/" not in pat:
        pat = "**/" + pat
    out: list[str] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (close := pat.find("]", i + 2 if pat.startswith("[!", i) else i + 1)) > 0:
            body = pat[i + 1 : close]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = close + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out) + "(?:/.*)?"


@lru_cache(maxsize=64)
def _compile(globs: tuple[str, ...]) -> re.Pattern[str] | None:
    """One alternation per glob set, compiled once (configs repeat across jobs, hence the cache)."""
    parts = [_glob_regex(g) for g in globs if g.strip()]
    return re.compile("|".join(f"(?:{p})" for p in parts), re.DOTALL) if parts else None


def _matches(globs: tuple[str, ...], path: str) -> bool:
    rx = _compile(globs)
    return rx is not None and rx.fullmatch(path) is not None


_LOCK_FILES = (
    "poetry.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "Cargo.lock",
    "go.sum",
    "go.work.sum",
    "Gemfile.lock",
    "composer.lock",
    "Pipfile.lock",
    "uv.lock",
    "pdm.lock",
    "mix.lock",
    "pubspec.lock",
    "Podfile.lock",
    "Package.resolved",
    "packages.lock.json",
    "flake.lock",
    "gradle.lockfile",
    "conda-lock.yml",
)
_VENDORED = ("vendor/", "third_party/", "third-party/", "node_modules/", "bower_components/")
_MINIFIED = ("*.min.js", "*.min.mjs", "*.min.css")
# dist/ and build/ only at the root: deeper directories with these names are often real source packages.
_GENERATED = (
    "*_pb2.py",
    "*_pb2.pyi",
    "*_pb2_grpc.py",
    "*.pb.go",
    "*.pb.gw.go",
    "/dist/",
    "/build/",
    "*.map",
    "__generated__/",  # GraphQL/Relay codegen
)

# Checked in this order; the first match names the reason.
_DEFAULT_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("lock file", _LOCK_FILES),
    ("vendored", _VENDORED),
    ("minified", _MINIFIED),
    ("generated", _GENERATED),
)
_GENERATED_MARKER = re.compile(
    r"@generated\b|\bgenerated\b.{0,80}\bdo not (?:edit|modify)\b"
    r"|\bdo not (?:edit|modify)\b.{0,80}\bgenerated\b",
    re.I,
)
_MARKER_LINES = 10  # markers live at the top of a file; look at its first lines only


# Build output with a content hash in its name (webapp/dist/assets/index-3f9a1c2b.js), at any depth.
_HASHED_BUNDLE = re.compile(
    r"(?:^|/)(?:dist/assets|build/static/(?:js|css|media))/"
    r"|(?:^|/)(?:dist|build|out)/(?:[^/]+/)*[\w.-]+[.-](?=[\w-]{0,31}\d)[A-Za-z0-9_-]{8,32}\.(?:js|mjs|cjs|css)$"
)
_LINGUIST = (
    ("linguist-generated", "generated"),
    ("linguist-vendored", "vendored"),
)


def _attribute(filters: PathFilters, path: str, name: str) -> str | bool | None:
    """The value of ``name`` for ``path`` (last matching line wins); False when no line sets it."""
    found: str | bool | None = False
    for glob, attr, value in filters.attributes:
        if attr == name and _matches((glob,), path):
            found = value
    return found


def skip_reason(path: str, added_head: Sequence[str] = (), filters: PathFilters | None = None) -> str | None:
    """Why ``path`` is not reviewed, or None. ``added_head``: the first lines of the new file, for markers.

    Config first (``include`` narrows, ``exclude`` adds), then the base branch's ``.gitattributes``
    (``linguist-generated``, ``linguist-vendored``, ``-diff``; ``=false`` overrides the defaults, as on
    GitHub), then the defaults unless ``use_defaults`` is off: lock files, vendored trees, minified assets,
    generated paths and hashed build bundles, then ``@generated`` / ``Code generated … DO NOT EDIT`` markers.
    Minified text without a telling name is recognised by :func:`looks_minified`.
    """
    flt = filters or _NO_FILTERS
    if flt.include and not _matches(flt.include, path):
        return "excluded by config"
    if flt.exclude and _matches(flt.exclude, path):
        return "excluded by config"
    overridden: set[str] = set()
    if flt.attributes:
        for attr, reason in _LINGUIST:
            value = _attribute(flt, path, attr)
            if value == "true":
                return f"{reason} ({attr} in .gitattributes)"
            if value == "false":
                overridden.add(reason)
        if _attribute(flt, path, "diff") == "false":
            return "not diffed (-diff in .gitattributes)"
    if not flt.use_defaults:
        return None
    for reason, globs in _DEFAULT_RULES:
        if reason not in overridden and _matches(globs, path):
            return reason
    if "generated" in overridden:
        return None
    if _HASHED_BUNDLE.search(path):
        return "generated"
    if any(_GENERATED_MARKER.search(line) for line in islice(added_head, _MARKER_LINES)):
        return "generated"
    return None


_MINIFIED_LINE = 500  # chars: longer lines than hand-written code has
_MACHINE_LINE = 100_000
_MINIFIED_SAMPLE = 4096
# Packed text is a web asset: JavaScript, CSS, JSON bundles. A long line in source code (a Django choices
# list, an embedded constant) is not minification.
_MINIFIED_KINDS = re.compile(r"\.(?:[cm]?js|css|json|map)$", re.I)


def looks_minified(path: str, added: Iterable[str]) -> bool:
    """Whether the added text is machine-packed (minified JS/CSS, one-line bundles): most of it sits in
    long lines with almost no whitespace. Reads at most a few KB of each long line, so a 20 MB one-line
    file costs nothing; one embedded blob in hand-written code is not most of its text."""
    web = _MINIFIED_KINDS.search(path) is not None
    total = packed = 0
    for text in added:
        n = len(text)
        if n >= _MACHINE_LINE:
            return True  # nobody writes a 100,000-character line by hand, whatever the file type
        if not web:
            continue
        total += n
        if n < _MINIFIED_LINE:
            continue
        sample = text[:_MINIFIED_SAMPLE]
        if sample.count(" ") + sample.count("\t") < len(sample) * 0.06:
            packed += n
    return packed > 0 and packed * 2 >= total


def gitattributes(files: Sequence[tuple[str, str]]) -> tuple[tuple[str, str, str | None], ...]:
    """The attributes the review honours from ``.gitattributes`` files ((path, text), any order) as
    :attr:`PathFilters.attributes`. Patterns are relative to the file's directory; deeper files win,
    and within a file the later line wins. ``binary`` is the macro for ``-diff``."""
    out: list[tuple[str, str, str | None]] = []
    for path, text in sorted(files, key=lambda f: (f[0].count("/"), f[0])):
        base = path.rpartition("/")[0]
        for raw in text.splitlines()[:2000]:
            line = raw.strip()
            if not line or line.startswith("#") or line.startswith('"'):
                continue  # quoted patterns are rare; skipping one only means reviewing more
            pattern, *attrs = line.split()
            glob = _attribute_glob(base, pattern)
            for attr in attrs:
                if attr == "binary":
                    out.append((glob, "diff", "false"))
                    continue
                value: str | None = "true"
                if attr.startswith("-"):
                    attr, value = attr[1:], "false"
                elif attr.startswith("!"):
                    attr, value = attr[1:], None
                elif "=" in attr:
                    attr, _, value = attr.partition("=")
                    value = "false" if value.lower() in ("false", "0", "no") else "true"
                if attr in ("linguist-generated", "linguist-vendored", "diff"):
                    out.append((glob, attr, value))
    return tuple(out)


def _attribute_glob(base: str, pattern: str) -> str:
    """A .gitattributes pattern of the file in ``base`` as one of our root-relative globs."""
    if not base:
        return pattern
    inner = pattern.rstrip("/")
    if "/" in inner:
        return f"/{base}/{inner.lstrip('/')}"
    return f"/{base}/**/{inner}"


_NO_FILTERS = PathFilters()

# --------------------------------------------------------------------------------------------- parser

_HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)")
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def _unquote(raw: str) -> str:
    """Undo git's C-style path quoting; unquoted names end at a tab (git appends one after names with
    spaces on ``---``/``+++`` lines, other tools a timestamp)."""
    if not raw.startswith('"'):
        return raw.split("\t", 1)[0]
    out = bytearray()
    i, n = 1, len(raw)
    while i < n:
        c = raw[i]
        if c == '"':
            break
        if c == "\\" and i + 1 < n:
            nxt = raw[i + 1]
            if nxt in "01234567":
                j = i + 2
                while j < min(i + 4, n) and raw[j] in "01234567":
                    j += 1
                out.append(int(raw[i + 1 : j], 8) & 0xFF)
                i = j
                continue
            out.append(_ESCAPES.get(nxt, ord(nxt) & 0xFF))
            i += 2
            continue
        out += c.encode()
        i += 1
    return out.decode("utf-8", "replace")


def _strip_prefix(path: str) -> str:
    return path[2:] if path[:2] in ("a/", "b/") else path


def _split_git_header(rest: str) -> tuple[str, str]:
    """Old and new path of ``diff --git <rest>``. Unquoted names with spaces are ambiguous; the line is
    only consulted when no ``---``/``+++``/``rename`` line says better, i.e. when both names are equal."""
    if rest.startswith('"'):
        end = _quoted_end(rest)
        return _unquote(rest[:end]), _unquote(rest[end:].lstrip(" "))
    if rest.endswith('"'):
        start = rest.rfind(' "')
        return rest[:start], _unquote(rest[start + 1 :])
    half = (len(rest) - 1) // 2
    if rest[half : half + 1] == " " and rest[2:half] == rest[half + 3 :]:
        return rest[:half], rest[half + 1 :]
    old, _, new = rest.partition(" b/")
    return old, "b/" + new


def _quoted_end(s: str) -> int:
    i = 1
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == '"':
            return i + 1
        i += 1
    return len(s)


class _FileBuilder:
    """Mutable accumulator for one file section; frozen into a FileDiff at the end."""

    __slots__ = (
        "additions",
        "binary",
        "copied",
        "deleted",
        "deletions",
        "git_new",
        "git_old",
        "hunks",
        "minus",
        "new",
        "plus",
        "rename_from",
        "rename_to",
        "renamed",
    )

    def __init__(self, git_old: str = "", git_new: str = "") -> None:
        self.git_old = git_old
        self.git_new = git_new
        self.minus: str | None = None  # path on the --- line; "" for /dev/null
        self.plus: str | None = None
        self.rename_from: str | None = None
        self.rename_to: str | None = None
        self.new = self.deleted = self.renamed = self.copied = self.binary = False
        self.hunks: list[Hunk] = []
        self.additions = self.deletions = 0

    def build(self, filters: PathFilters | None) -> FileDiff:
        old = self.rename_from or self.minus or self.git_old
        new = self.rename_to or self.plus or self.git_new
        if self.new or self.minus == "":
            status = FileStatus.ADDED
        elif self.deleted or self.plus == "":
            status = FileStatus.DELETED
        elif self.renamed:
            status = FileStatus.RENAMED
        else:
            status = FileStatus.ADDED if self.copied else FileStatus.MODIFIED
        path = (old or new) if status is FileStatus.DELETED else (new or old)
        old_path = old if (self.renamed or self.copied) and old != path else None
        reason: str | None
        if status is FileStatus.DELETED:
            reason = "deleted"
        elif self.binary:
            reason = "binary"
        else:
            reason = skip_reason(path, _head_lines(self.hunks), filters)
            if (
                reason is None
                and (filters is None or filters.use_defaults)
                and looks_minified(path, _added_texts(self.hunks))
            ):
                reason = "minified"
        return FileDiff(
            path=path,
            old_path=old_path,
            status=status,
            is_binary=self.binary,
            hunks=tuple(self.hunks),
            additions=self.additions,
            deletions=self.deletions,
            skip_reason=reason,
        )


def mark_generated(changeset: Changeset, first_lines: Callable[[str], Sequence[str] | None]) -> Changeset:
    """Mark files generated by a marker in their first lines when the diff does not show those lines (a
    change deep inside a big generated file). ``first_lines`` reads the head file's beginning."""
    files = []
    for f in changeset.files:
        if f.reviewable and f.hunks and f.hunks[0].new_start > _MARKER_LINES:
            head = first_lines(f.path)
            if head and any(_GENERATED_MARKER.search(line) for line in islice(head, _MARKER_LINES)):
                f = replace(f, skip_reason="generated")
        files.append(f)
    return replace(changeset, files=tuple(files))


def _added_texts(hunks: list[Hunk]) -> Iterator[str]:
    for h in hunks:
        for ln in h.lines:
            if ln.kind == "+":
                yield ln.text


def _head_lines(hunks: list[Hunk]) -> list[str]:
    """Texts of the new file's first lines visible in the diff, where generated-code markers sit."""
    if not hunks or hunks[0].new_start > _MARKER_LINES:
        return []
    shown = (ln.text for ln in islice(hunks[0].lines, 2 * _MARKER_LINES) if ln.kind != "-")
    # a marker opens its line: a bounded prefix finds it, and a 20 MB one-line file costs nothing
    return [text[:500] for text in islice(shown, _MARKER_LINES)]


def parse_diff(
    text: str, *, base_sha: str = "", head_sha: str = "", filters: PathFilters | None = None
) -> Changeset:
    """Parse ``git diff`` output (also plain ``diff -u``) into a Changeset; skipped files keep a reason."""
    with _gc_paused():
        return _parse(text, base_sha, head_sha, filters)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building one object per diff line: the result holds no cycles, and
    collections triggered by the allocations alone double the time of a 500,000-line diff."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse(text: str, base_sha: str, head_sha: str, filters: PathFilters | None) -> Changeset:
    files: list[FileDiff] = []
    cur: _FileBuilder | None = None
    lines = text.split("\n")
    if "\r" in text:
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    n = len(lines)
    i = 0
    while i < n:
        line = lines[i]
        i += 1
        if line.startswith("@@ ") and cur is not None:
            m = _HUNK.match(line)
            if m is None:
                continue
            i = _parse_hunk(lines, i, m, cur)
        elif line.startswith("diff --git "):
            if cur is not None:
                files.append(cur.build(filters))
            old, new = _split_git_header(line[11:])
            cur = _FileBuilder(_strip_prefix(old), _strip_prefix(new))
        elif line.startswith("--- ") and (cur is None or cur.hunks or cur.minus is not None):
            # plain `diff -u` output has no `diff --git` line: `---` after a hunk starts a new file
            if i < n and lines[i].startswith("+++ "):
                if cur is not None:
                    files.append(cur.build(filters))
                cur = _FileBuilder()
                cur.minus = _header_path(line[4:])
        elif cur is None or cur.hunks:
            continue  # preamble (mail headers, stats) or trailing noise
        elif line.startswith("--- "):
            cur.minus = _header_path(line[4:])
        elif line.startswith("+++ "):
            cur.plus = _header_path(line[4:])
        elif line.startswith("new file mode"):
            cur.new = True
        elif line.startswith("deleted file mode"):
            cur.deleted = True
        elif line.startswith("rename from "):
            cur.renamed, cur.rename_from = True, _unquote(line[12:])
        elif line.startswith("rename to "):
            cur.renamed, cur.rename_to = True, _unquote(line[10:])
        elif line.startswith("copy from "):
            cur.copied, cur.rename_from = True, _unquote(line[10:])
        elif line.startswith("copy to "):
            cur.copied, cur.rename_to = True, _unquote(line[8:])
        elif line.startswith("Binary files ") or line == "GIT binary patch":
            cur.binary = True
            if not cur.plus and not cur.minus and line.endswith(" differ"):
                _binary_paths(line[13:-7], cur)
            while line == "GIT binary patch" and i < n and not lines[i].startswith("diff --git "):
                i += 1  # base85 payload: nothing reviewable
    if cur is not None:
        files.append(cur.build(filters))
    return Changeset(base_sha=base_sha, head_sha=head_sha, files=tuple(files))


def _header_path(raw: str) -> str:
    """Path on a ``---``/``+++`` line; ``""`` for /dev/null."""
    path = _unquote(raw)
    return "" if path == "/dev/null" else _strip_prefix(path)


def _binary_paths(spec: str, cur: _FileBuilder) -> None:
    """``Binary files A and B differ``: only /dev/null sides are unambiguous; names come from the header."""
    if spec.startswith("/dev/null and "):
        cur.minus = ""
    elif spec.endswith(" and /dev/null"):
        cur.plus = ""


def _parse_hunk(lines: list[str], i: int, m: re.Match[str], cur: _FileBuilder) -> int:
    """Consume one hunk body starting at ``lines[i]``; return the index after it."""
    old_start, old_count = int(m[1]), 1 if m[2] is None else int(m[2])
    new_start, new_count = int(m[3]), 1 if m[4] is None else int(m[4])
    old_left, new_left = old_count, new_count
    old_no, new_no = old_start, new_start
    body: list[DiffLine] = []
    add = body.append
    ctx = 0  # context lines; additions and deletions follow from the line counters
    n = len(lines)
    while i < n and (old_left > 0 or new_left > 0):
        raw = lines[i]
        kind = raw[:1]
        if kind == "+":
            add(DiffLine("+", None, new_no, raw[1:]))
            new_no += 1
            new_left -= 1
        elif kind == "-":
            add(DiffLine("-", old_no, None, raw[1:]))
            old_no += 1
            old_left -= 1
        elif kind == " " or (kind == "" and i < n - 1):  # "" is a context line whose space was stripped
            add(DiffLine(" ", old_no, new_no, raw[1:]))
            old_no += 1
            new_no += 1
            old_left -= 1
            new_left -= 1
            ctx += 1
        elif kind != "\\":
            break  # truncated hunk: the counts promised more than the diff holds
        i += 1
    while i < n and lines[i].startswith("\\"):
        i += 1
    cur.hunks.append(Hunk(old_start, old_count, new_start, new_count, m[5], tuple(body)))
    cur.additions += new_no - new_start - ctx
    cur.deletions += old_no - old_start - ctx
    return i


# --------------------------------------------------------------------------------------------- budget


def estimate_tokens(text: str) -> int:
    """Cheap token estimate, the one every budget uses: ⌈len(text) / 3⌉, no tokenizer.

    Deliberately pessimistic for English, code and JSON with BPE tokenizers (≈3.5-4 characters per
    token); it still under-counts dense non-ASCII text, so callers keep headroom under the real limit.
    """
    return -(-len(text) // 3)


def _max_chars(max_tokens: int) -> int:
    """Largest length whose estimate stays within ``max_tokens`` (inverse of :func:`estimate_tokens`)."""
    return max(0, 3 * max_tokens)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _show(path: str) -> str:
    """A path as one inert prompt line: control characters (a newline in a name could forge headers)
    become ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", path)


def _file_header(f: FileDiff) -> str:
    label = f.status.value
    if f.old_path:
        label += f" from {_show(f.old_path)}"
    return f"### {_show(f.path)} ({label}, +{f.additions} -{f.deletions})\n"


def _patch_lines(f: FileDiff) -> Iterator[str]:
    """Lines of :func:`format_file_patch`, each ending in ``\\n``; lazy so clipping stops early."""
    yield _file_header(f)
    if not f.hunks:
        yield "(no content change)\n"
    for h in f.hunks:
        yield f"@@ -{h.old_start},{h.old_count} +{h.new_start},{h.new_count} @@ {h.section}".rstrip() + "\n"
        for ln in h.lines:
            num = "" if ln.new_no is None else ln.new_no
            yield f"{num:>6} {ln.kind} {ln.text}\n"


def format_file_patch(f: FileDiff) -> str:
    """One file's patch for the model: a ``###`` header, then each hunk with the new-file line number in
    a 6-wide column before the ``+``/``-``/`` `` marker (blank for removed lines), so the model can cite
    lines."""
    return "".join(_patch_lines(f))


def _approx_size(f: FileDiff) -> int:
    """Formatted length without formatting: ``10 + len(text)`` per line plus headers (ordering only)."""
    return (
        60
        + len(f.path)
        + sum(24 + len(h.section) + sum(10 + len(ln.text) for ln in h.lines) for h in f.hunks)
    )


_CODE_EXT = frozenset(
    [
        "py",
        "pyi",
        "go",
        "java",
        "kt",
        "kts",
        "scala",
        "rb",
        "php",
        "cs",
        "rs",
        "ts",
        "tsx",
        "js",
        "jsx",
        "mjs",
        "cjs",
        "ex",
        "exs",
        "erl",
        "clj",
        "c",
        "h",
        "cc",
        "cpp",
        "hpp",
        "swift",
        "sql",
        "proto",
        "graphql",
        "gql",
        "prisma",
        "sh",
    ]
)
_CONFIG_EXT = frozenset(
    ["yml", "yaml", "toml", "ini", "cfg", "conf", "json", "xml", "tf", "hcl", "env", "properties", "gradle"]
)
_CONFIG_NAMES = frozenset({"dockerfile", "makefile", "procfile", "containerfile"})


def _tier(path: str) -> int:
    """0: application code, 1: tests and config, 2: everything else (docs, data)."""
    name = path.rsplit("/", 1)[-1].lower()
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    is_test = name.startswith("test_") or "_test." in name or ".test." in name or ".spec." in name
    is_test = is_test or any(
        p in ("test", "tests", "__tests__", "spec") for p in path.lower().split("/")[:-1]
    )
    if ext in _CODE_EXT:
        return 1 if is_test else 0
    return 1 if ext in _CONFIG_EXT or name in _CONFIG_NAMES else 2


def _is_deletion_only(h: Hunk) -> bool:
    return all(ln.kind != "+" for ln in h.lines) and any(ln.kind == "-" for ln in h.lines)


_CLIP_MARK = "[clipped: {} more lines of this file not shown; use view]\n"
_MIN_CLIP_LINES = 4  # a clip shorter than this says nothing useful; omit the file instead


def budget_prompt(changeset: Changeset, max_tokens: int = 24_000) -> PromptDiff:
    """The reviewable part of ``changeset`` as the model's first message, within ``max_tokens`` (estimated).

    Order: first every file's deletion-only hunks (cheap, and removed code is what breaks callers), then
    the remaining hunks file by file, sorted by (tier, approximate size, path) — tier 0 application code,
    1 tests and config, 2 the rest — so the most important and the most files fit. A part that does not fit
    is cut at a line boundary with a ``[clipped …]`` marker, or left out when too little room is left.
    A file is ``included`` when all its parts are shown whole, ``omitted`` when no part is shown, and
    ``clipped`` otherwise. A closing section names clipped and omitted files as far as room allows; the
    tuples in the result always name all of them. Deleted files (not reviewable) are named at the top, in
    at most a twentieth of the budget. Linear in the size of the changeset.
    """
    files = changeset.reviewable_files
    limit = _max_chars(max_tokens)
    parts: list[tuple[int, int, str, FileDiff]] = []  # (section, sort key..., part)
    for f in files:
        dels = tuple(h for h in f.hunks if _is_deletion_only(h))
        rest = tuple(h for h in f.hunks if not _is_deletion_only(h)) if dels else f.hunks
        tier = _tier(f.path)
        if dels:
            part = replace(f, hunks=dels)
            parts.append((0, tier * 10**12 + _approx_size(part), f.path, part))
        if rest or not dels:
            part = replace(f, hunks=rest) if dels else f
            parts.append((1, tier * 10**12 + _approx_size(part), f.path, part))
    parts.sort(key=lambda p: (p[0], p[1], p[2]))

    # Room for the closing list of names, so a tight budget still says what is missing.
    names_room = min(limit // 10, sum(len(f.path) + 13 for f in files) + 200)
    room = limit - names_room
    # Deleted files are not reviewable, but removing a module is what breaks its importers: name them.
    deleted = [f"- {_show(f.path)}\n" for f in changeset.files if f.status is FileStatus.DELETED]
    chunks = [_names_section("## Deleted files\n", deleted, min(room, limit // 20))]
    used = len(chunks[0])
    shown: dict[str, int] = {}  # path -> parts shown whole
    cut: set[str] = set()
    total: dict[str, int] = {}
    titles = ("## Deletion-only hunks\n", "## Changes\n")
    section = -1
    for sec, _key, path, part in parts:
        total[path] = total.get(path, 0) + 1
        title = titles[sec] if sec != section else ""
        text, whole = _fit(part, room - used - len(title))
        if text:
            chunks.append(title + text)
            used += len(title) + len(text)
            section = sec
            if whole:
                shown[path] = shown.get(path, 0) + 1
            else:
                cut.add(path)

    included = tuple(f.path for f in files if shown.get(f.path, 0) == total[f.path])
    clipped_paths = tuple(f.path for f in files if f.path in cut or 0 < shown.get(f.path, 0) < total[f.path])
    omitted = tuple(f.path for f in files if f.path not in cut and f.path not in shown)
    missing = [f"- {_show(p)} (clipped)\n" for p in clipped_paths] + [
        f"- {_show(p)} (omitted)\n" for p in omitted
    ]
    chunks.append(_names_section("## Not shown in full (read them with view)\n", missing, limit - used))
    text = "".join(chunks)
    return PromptDiff(text, included, clipped_paths, omitted, estimate_tokens(text))


def _fit(part: FileDiff, room: int) -> tuple[str, bool]:
    """``part``'s patch if it fits in ``room`` (True), else its leading whole lines plus the clip marker
    (False), or "" when fewer than a useful few lines fit. Lines are formatted lazily, so a file that
    does not fit costs only the lines tried."""
    out: list[str] = []
    used = 0
    for line in _patch_lines(part):
        if used + len(line) > room:
            break
        out.append(line)
        used += len(line)
    else:
        return "".join(out), True
    total = 1 + (0 if part.hunks else 1) + sum(1 + len(h.lines) for h in part.hunks)
    mark_room = len(_CLIP_MARK.format(total))
    while out and used + mark_room > room:
        used -= len(out.pop())
    if len(out) < _MIN_CLIP_LINES:
        return "", False
    return "".join(out) + _CLIP_MARK.format(total - len(out)), False


def _names_section(head: str, names: list[str], room: int) -> str:
    """``head`` and as many ``names`` lines as fit in ``room``, then "… and N more"; "" if none fit."""
    if not names:
        return ""
    out = [head]
    used = len(head)
    for k, name in enumerate(names):
        more = f"- … and {len(names) - k} more\n"
        if used + len(name) + len(f"- … and {len(names)} more\n") > room:
            if used + len(more) <= room:
                out.append(more)
                used += len(more)
            break
        out.append(name)
        used += len(name)
    return "".join(out) if len(out) > 1 and used <= room else ""


# ------------------------------------------------------------------------------------------ moved code

MOVED_MIN_LINES = 3  # significant lines: shorter runs (a closing brace and a return) repeat by chance
_TRIVIAL = frozenset(
    {"end", "else", "else:", "pass", "return", "return;", "try:", "finally:", "break", "break;"}
)


def _moved_key(text: str) -> str | None:
    """The line as compared for moves: without indentation; None for lines too trivial to count."""
    key = text.strip()
    if not key.strip("{}()[];, ") or key in _TRIVIAL or key == "} else {":
        return None
    return key


def moved_lines(changeset: Changeset, paths: Iterable[str] | None = None) -> dict[str, frozenset[int]]:
    """New-file lines (per path) of added code that the same change deleted elsewhere: a block of at least
    :data:`MOVED_MIN_LINES` significant lines, same text ignoring indentation, each consecutive pair of
    which was also consecutive among the deleted lines (same or another file); and lines that only had
    their spacing changed in the same file. ``paths``: only look in these files (the ones with
    findings); the deleted side is always the whole change.

    Moved code is not new code: nothing is posted on it. A line edited while moving differs and stays new.
    """
    pairs: set[tuple[str, str]] = set()  # (deleted line, the deleted line right after it)
    for f in changeset.files:
        for h in f.hunks:
            prev: str | None = None
            for ln in h.lines:
                if ln.kind == "-":
                    key = _moved_key(ln.text)
                    if key is None:
                        continue
                    if prev is not None:
                        pairs.add((prev, key))
                    prev = key
                elif ln.text.strip():
                    prev = None
    wanted = None if paths is None else set(paths)
    k = MOVED_MIN_LINES
    out: dict[str, frozenset[int]] = {}
    for f in changeset.files:
        if f.status is FileStatus.DELETED or (wanted is not None and f.path not in wanted):
            continue
        found: set[int] = set()
        # a line only re-spaced (a formatter's change: "[:a, :b]" → "[ :a, :b ]") is not new either
        respaced = {"".join(r.text.split()) for h in f.hunks for r in h.lines if r.kind == "-"}
        respaced.discard("")
        for h in f.hunks:
            for a in h.lines:
                if a.kind == "+" and a.new_no is not None and "".join(a.text.split()) in respaced:
                    found.add(a.new_no)
            keys: list[str] = []
            nos: list[list[int]] = []  # per significant line: it and the trivial lines just before it
            pending: list[int] = []
            for dl in (*h.lines, None):
                if dl is not None and dl.kind == "+" and dl.new_no is not None:
                    key = _moved_key(dl.text)
                    if key is None:
                        pending.append(dl.new_no)
                        continue
                    keys.append(key)
                    nos.append([*pending, dl.new_no])
                    pending = []
                    continue
                if dl is not None and (dl.kind == "-" or not dl.text.strip()):
                    continue  # removed or blank lines between added ones don't break an added run
                linked = [(keys[j], keys[j + 1]) in pairs for j in range(len(keys) - 1)]
                for i in range(len(keys) - k + 1):
                    if all(linked[i : i + k - 1]):
                        found.add(nos[i][-1])
                        for block in nos[i + 1 : i + k]:
                            found.update(block)
                keys, nos, pending = [], [], []
        if found:
            out[f.path] = frozenset(found)
    return out
