"""The agent's two read-only tools, ``grep`` and ``view``, jailed to one checkout (T-01…T-05, S-05…S-08).

The model is assumed hijacked, so every argument is hostile. Confinement is by construction:

1. **Normalise.** Only relative POSIX paths: absolute paths, ``~``, backslashes, drive letters, NUL
   and control characters and any ``..`` component get one uniform "invalid path" error before
   the filesystem is touched (S-07). ``.git`` is refused at any depth, in any case (S-12).
2. **Resolve.** ``os.path.realpath`` of the result must stay under the root (``commonpath``).
3. **Open beneath the root** (:mod:`bot.jail`, the one reader of head files). The path is walked
   one component at a time from a descriptor of the root, with ``O_NOFOLLOW`` at every step: a
   symlink anywhere, a hard link, a device, a FIFO or a socket is refused without being opened for
   reading, and a component swapped between ``lstat`` and ``open`` is detected (S-05, S-06).

``rg`` runs with an argv built here (pattern as ``--regexp=…``, paths after ``--``), ``--no-config``,
a minimal environment and the checkout as working directory (T-02, T-05). Every result is capped
(T-04), scrubbed of our secrets and credential patterns (K-03), and tools never raise to the caller.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import ToolRefused
from bot.jail import Refused, is_plain_file, list_fd, open_beneath, read_fd
from bot.process import child_env, kill_group, reap
from bot.redact import SECRETS, SecretSet, redact_patterns

READ_ONLY_TOOLS = ("grep", "view")

INVALID_PATH = "invalid path: give a relative path inside the checkout, like src/app.py"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"\A[A-Za-z]:")
# Glob characters the model may use: no '!' (a negation could keep files out of the search, T-02)
_GLOB_OK = re.compile(r"\A[A-Za-z0-9_.*?/{},\-\[\]]+\Z")
_MAX_PATH = 1024
_MAX_GLOB = 200
_MAX_PATTERN = 500
_MAX_LINE_CHARS = 2000
_BINARY_SNIFF = 8192


@dataclass(frozen=True)
class ToolLimits:
    max_calls: int = 40
    max_output_bytes: int = 24_000  # per result (T-04)
    max_file_bytes: int = 1_000_000  # read cap per file (S-09)
    max_view_lines: int = 400
    grep_timeout: float = 10.0  # per call (T-03)
    max_grep_matches: int = 200
    max_total_output_bytes: int = 400_000  # cumulative per toolbox, i.e. per job (T-04)
    max_total_seconds: float = 120.0  # cumulative tool time per job (T-03)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    text: str
    is_error: bool = False


_SPECS: dict[str, ToolSpec] = {
    "grep": ToolSpec(
        name="grep",
        description=(
            "Search the checked-out pull request head with ripgrep (Rust regex syntax). Returns "
            "matching lines as path:line:text, capped. Use `path` to limit the search to a file or "
            "directory and `glob` to limit it to matching file names."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "pattern": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": _MAX_PATTERN,
                    "description": "Regular expression (or literal text with fixed_string).",
                },
                "path": {
                    "type": "string",
                    "maxLength": _MAX_PATH,
                    "description": "Relative file or directory to search; default: the whole checkout.",
                },
                "glob": {
                    "type": "string",
                    "maxLength": _MAX_GLOB,
                    "description": "Only search files matching this glob, e.g. *.py or src/**/*.sql.",
                },
                "ignore_case": {"type": "boolean", "description": "Case-insensitive match."},
                "fixed_string": {"type": "boolean", "description": "Treat the pattern as literal text."},
            },
            "required": ["pattern"],
            "additionalProperties": False,
        },
    ),
    "view": ToolSpec(
        name="view",
        description=(
            "Show a file of the checked-out pull request head with line numbers (optionally a "
            "1-based inclusive line range), or list a directory (directories end with /)."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "maxLength": _MAX_PATH,
                    "description": "Relative file or directory path; '.' is the checkout root.",
                },
                "start_line": {"type": "integer", "minimum": 1, "description": "First line to show."},
                "end_line": {"type": "integer", "minimum": 1, "description": "Last line to show."},
            },
            "required": ["path"],
            "additionalProperties": False,
        },
    ),
}


def normalise_path(raw: object) -> tuple[str, ...]:
    """The components of a model-supplied path, or :class:`ToolRefused` (S-07). No filesystem access."""
    if not isinstance(raw, str) or len(raw) > _MAX_PATH:
        raise ToolRefused(INVALID_PATH)
    if (
        raw.startswith(("/", "~"))
        or "\\" in raw
        or _CONTROL.search(raw)
        or _DRIVE.match(raw)
        or raw.strip() != raw
    ):
        raise ToolRefused(INVALID_PATH)
    parts = tuple(p for p in raw.split("/") if p not in ("", "."))
    if ".." in parts:
        raise ToolRefused(INVALID_PATH)
    if any(p.lower() == ".git" for p in parts):
        raise ToolRefused("refused: .git is not accessible")
    return parts


def find_rg() -> str | None:
    """ripgrep from this interpreter's environment (the ``ripgrep`` wheel), else from PATH."""
    beside = Path(sys.executable).parent / "rg"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("rg")


def tool_env() -> dict[str, str]:
    """The entire environment of an ``rg`` child: no RIPGREP_CONFIG_PATH, no secrets (T-05, K-03)."""
    return child_env()


def _display(parts: tuple[str, ...]) -> str:
    return "/".join(parts) or "."


def _cap(text: str, max_bytes: int, hint: str) -> tuple[str, bool]:
    """Cut ``text`` to ``max_bytes`` UTF-8 bytes at a line boundary."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text, False
    cut = raw[:max_bytes].decode("utf-8", "ignore")
    if "\n" in cut:
        cut = cut[: cut.rindex("\n")]
    return f"{cut}\n[truncated: {hint}]", True


def _escape_name(name: str) -> str:
    # a file name with a newline must not forge extra listing lines (S-08)
    return json.dumps(name) if _CONTROL.search(name) else name


class Toolbox:
    """``grep`` and ``view`` rooted at one checkout; counts calls, caps output and time."""

    def __init__(
        self,
        root: Path,
        limits: ToolLimits = ToolLimits(),  # frozen, so a shared default is safe
        allowed: Collection[str] = READ_ONLY_TOOLS,
        secrets: SecretSet | None = None,
        rg_path: str | None = None,
    ) -> None:
        self._root = os.path.realpath(root)
        self._limits = limits
        # the intersection with the hard-coded read-only set (T-01): nothing else can be granted
        self._allowed = tuple(name for name in READ_ONLY_TOOLS if name in set(allowed))
        self._secrets = secrets
        self._rg = rg_path or find_rg()
        self.calls = 0
        self._seconds = 0.0
        self._output_bytes = 0
        self._handlers: dict[str, Callable[[Mapping[str, Any]], Awaitable[str]]] = {
            "grep": self._grep,
            "view": self._view,
        }

    @property
    def root(self) -> Path:
        return Path(self._root)

    def specs(self) -> list[ToolSpec]:
        return [_SPECS[name] for name in self._allowed]

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Run one tool call. Never raises for bad input: refusals come back as ``is_error`` results."""
        self.calls += 1
        limits = self._limits
        if self.calls > limits.max_calls:
            return ToolResult("tool budget exhausted", is_error=True)
        if self._seconds >= limits.max_total_seconds:
            return ToolResult("tool time budget exhausted", is_error=True)
        if self._output_bytes >= limits.max_total_output_bytes:
            return ToolResult("tool output budget exhausted", is_error=True)
        if not isinstance(name, str) or name not in self._allowed:
            shown = name[:40] if isinstance(name, str) else type(name).__name__
            return self._finish(
                ToolResult(f"unknown tool {shown!r}; available: {', '.join(self._allowed)}", True)
            )
        started = time.monotonic()
        try:
            if not isinstance(arguments, Mapping):
                raise ToolRefused("arguments must be a JSON object")
            known = set(_SPECS[name].input_schema["properties"])
            unknown = sorted(str(k)[:40] for k in arguments if k not in known)
            if unknown:
                raise ToolRefused(f"unknown argument(s) for {name}: {', '.join(unknown)}")
            result = ToolResult(await self._handlers[name](arguments))
        except ToolRefused as exc:
            result = ToolResult(str(exc), is_error=True)
        except Exception:  # a tool must never take the agent down; the detail could be sensitive
            result = ToolResult(f"{name} failed", is_error=True)
        finally:
            self._seconds += time.monotonic() - started
        return self._finish(result)

    def _finish(self, result: ToolResult) -> ToolResult:
        text = result.text
        for secrets in (self._secrets, SECRETS):
            if secrets is not None:
                if secrets.find(text):
                    return ToolResult("result withheld: it contained a protected value", is_error=True)
                text = secrets.scrub(text)
        text = redact_patterns(text)
        self._output_bytes += len(text.encode("utf-8"))
        return ToolResult(text, result.is_error)

    def _open(self, parts: tuple[str, ...]) -> tuple[int, os.stat_result]:
        try:
            return open_beneath(self._root, parts)
        except Refused as exc:
            raise ToolRefused(str(exc)) from None

    # -- view -------------------------------------------------------------------------------------

    async def _view(self, args: Mapping[str, Any]) -> str:
        parts = normalise_path(args.get("path"))
        start = _optional_line(args, "start_line")
        end = _optional_line(args, "end_line")
        if start is not None and end is not None and end < start:
            raise ToolRefused("end_line must not be before start_line")
        fd, st = self._open(parts)
        try:
            if stat.S_ISDIR(st.st_mode):
                return self._listing(fd, parts)
            return self._file(fd, st, parts, start, end)
        finally:
            os.close(fd)

    def _listing(self, fd: int, parts: tuple[str, ...]) -> str:
        suffix = {
            "link": "@ (symbolic link, not followed)",
            "dir": "/",
            "file": "",
            "special": " (special file)",
        }
        lines = [_escape_name(name) + suffix[kind] for name, kind in list_fd(fd)]
        lines.sort()
        total = len(lines)
        shown = lines[: self._limits.max_view_lines]
        header = f"{_display(parts)}/ — {total} entries"
        text = "\n".join([header, *shown])
        if total > len(shown):
            text += f"\n[truncated: {total - len(shown)} more entries; view a subdirectory]"
        return _cap(text, self._limits.max_output_bytes, "view a subdirectory")[0]

    def _file(
        self, fd: int, st: os.stat_result, parts: tuple[str, ...], start: int | None, end: int | None
    ) -> str:
        limits = self._limits
        data = read_fd(fd, limits.max_file_bytes + 1)
        shown_path = _display(parts)
        if b"\0" in data[:_BINARY_SNIFF]:
            return f"{shown_path}: binary file, {st.st_size} bytes"
        partial = len(data) > limits.max_file_bytes
        data = data[: limits.max_file_bytes]
        text = data.decode("utf-8", "replace")
        lines = text.split("\n")
        if lines and lines[-1] == "" and not partial:
            lines.pop()
        if partial and len(lines) > 1:
            lines.pop()  # the last line was cut by the read cap
        total = len(lines)
        first = start or 1
        if total == 0:
            return f"{shown_path}: empty file"
        if first > total:
            raise ToolRefused(f"start_line {first} is past the end of {shown_path} ({total} lines)")
        last = min(total, end or total, first + limits.max_view_lines - 1)
        body = []
        for n in range(first, last + 1):
            line = lines[n - 1].rstrip("\r")
            if len(line) > _MAX_LINE_CHARS:
                line = line[:_MAX_LINE_CHARS] + " …[line truncated]"
            body.append(f"{n:>6}\t{line}")
        of = f"of the first {total} lines (file is {st.st_size} bytes)" if partial else f"of {total}"
        header = f"{shown_path} (lines {first}-{last} {of})"
        text, cut = _cap("\n".join([header, *body]), limits.max_output_bytes, "use start_line/end_line")
        if not cut and last < total and (end is None or last < end):
            text += f"\n[truncated: {total - last} more lines; use start_line={last + 1}]"
        return text

    # -- grep -------------------------------------------------------------------------------------

    def grep_argv(self, args: Mapping[str, Any]) -> list[str]:
        """The complete ``rg`` argv for validated ``args`` (T-02). Raises ToolRefused on bad input."""
        if self._rg is None:
            raise ToolRefused("grep is unavailable: ripgrep is not installed")
        limits = self._limits
        pattern = args.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ToolRefused("pattern must be a non-empty string")
        if len(pattern) > _MAX_PATTERN or "\0" in pattern:
            raise ToolRefused(f"pattern must be at most {_MAX_PATTERN} characters, without NUL")
        path = args.get("path")
        parts = normalise_path("." if path is None else path)
        fd, _ = self._open(parts)  # the same jail as view: no links, no devices, no .git
        os.close(fd)
        argv = [
            self._rg,
            "--no-config",
            "--no-follow",
            "--hidden",
            "--no-ignore",  # with --hidden this is -uu: no repository file can hide a file (T-02)
            "--no-messages",
            "--no-pre",
            "--no-search-zip",
            "--engine=default",  # linear time; never PCRE2 (T-03)
            "--regex-size-limit=10M",
            "--dfa-size-limit=10M",
            "--color=never",
            "--no-heading",
            "--line-number",
            "--with-filename",
            "--null",  # a NUL after each path: parsed exactly, whatever the file name holds
            "--max-columns=300",
            "--max-columns-preview",
            f"--max-count={limits.max_grep_matches}",
            f"--max-filesize={limits.max_file_bytes}",
            "--sort=path",
        ]
        argv.append("--ignore-case" if _flag(args, "ignore_case") else "--case-sensitive")
        if _flag(args, "fixed_string"):
            argv.append("--fixed-strings")
        glob = args.get("glob")
        if glob is not None:
            argv.append(f"--glob={_check_glob(glob)}")
        # after the model's glob, so that it wins over anything the model gave (later globs win)
        argv += ["--iglob=!.git", f"--regexp={pattern}", "--", _display(parts)]
        return argv

    def _matches(self, output: str, flooded: bool) -> tuple[list[str], int]:
        """``path:line:text`` lines from rg's ``path\\0line:text`` records, keeping only matches in
        regular files with a single link: a hard link could name a file outside the checkout (S-05)."""
        lines: list[str] = []
        withheld = 0
        verdicts: dict[str, bool] = {}
        pos = 0
        while (nul := output.find("\0", pos)) != -1:
            end = output.find("\n", nul)
            if end == -1:
                if flooded:  # cut mid-record by the flood cap
                    break
                end = len(output)
            path, rest = output[pos:nul].removeprefix("./"), output[nul + 1 : end]
            pos = end + 1
            if path not in verdicts:
                verdicts[path] = is_plain_file(self._root, path)
            if verdicts[path]:
                lines.append(f"{_escape_name(path)}:{rest}")
            else:
                withheld += 1
        return lines, withheld

    async def _grep(self, args: Mapping[str, Any]) -> str:
        argv = self.grep_argv(args)
        limits = self._limits
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self._root,
            env=tool_env(),
            start_new_session=True,
        )
        assert proc.stdout is not None
        buf = bytearray()
        newlines = 0
        flooded = False
        try:
            async with asyncio.timeout(limits.grep_timeout):
                while chunk := await proc.stdout.read(1 << 16):
                    buf += chunk
                    newlines += chunk.count(b"\n")
                    if len(buf) > limits.max_output_bytes or newlines > limits.max_grep_matches:
                        flooded = True
                        kill_group(proc)
                        break
                _, err = await proc.communicate()
        except TimeoutError:
            kill_group(proc)
            await reap(proc)
            raise ToolRefused(
                f"grep timed out after {limits.grep_timeout:g} s; narrow the pattern or path"
            ) from None
        except BaseException:
            kill_group(proc)
            await asyncio.shield(reap(proc))
            raise
        lines, withheld = self._matches(buf.decode("utf-8", "replace"), flooded)
        if withheld:
            lines.append(f"[{withheld} matches in linked or special files withheld]")
        if not lines:
            if proc.returncode == 2 and not flooded:
                message = err.decode("utf-8", "replace").strip().splitlines()
                raise ToolRefused("grep failed: " + (message[-1][:300] if message else "ripgrep error"))
            return "no matches"
        shown = lines[: limits.max_grep_matches]
        text, cut = _cap("\n".join(shown), limits.max_output_bytes, "narrow the pattern, path or glob")
        if not cut and (flooded or len(lines) > len(shown)):
            text += "\n[truncated: more matches; narrow the pattern, path or glob]"
        return text


def _optional_line(args: Mapping[str, Any], key: str) -> int | None:
    value = args.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ToolRefused(f"{key} must be a positive integer")
    return value


def _flag(args: Mapping[str, Any], key: str) -> bool:
    value = args.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ToolRefused(f"{key} must be true or false")
    return value


def _check_glob(glob: object) -> str:
    if not isinstance(glob, str) or not glob or len(glob) > _MAX_GLOB or not _GLOB_OK.match(glob):
        raise ToolRefused("invalid glob: use letters, digits and _ . * ? / { } , - [ ] only (no !)")
    segments = glob.split("/")
    if glob.startswith("/") or ".." in segments or any(s.lower() == ".git" for s in segments):
        raise ToolRefused("invalid glob: it must stay inside the checkout")
    return glob


__all__ = [
    "INVALID_PATH",
    "READ_ONLY_TOOLS",
    "ToolLimits",
    "ToolResult",
    "ToolSpec",
    "Toolbox",
    "find_rg",
    "normalise_path",
    "tool_env",
]
