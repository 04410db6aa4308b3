"""The quality benchmark's data side: the case list, pinned downloads, materialising a case, scoring.

A case is a pull request made of real published code: the base and the head are two pinned releases of
a package (PyPI sdist or wheel, npm tarball), restricted to a few paths. A *defect* case is usually a
security fix reversed (base = fixed release, head = vulnerable one), so the PR reintroduces the defect;
a *clean* case is an ordinary change between releases. Cases we wrote ourselves carry their files
inline and are marked ``synthetic = true``. Nothing third-party lives in the repository: artifacts are
downloaded at run time, verified by the sha256 pinned in the case list and cached outside the repo.

Scoring counts what the review would *post* (inline or file-level comments after review assembly),
not raw rule hits: a posted finding is true when it lands in an expected file within an expected line
range (± ``TOLERANCE``); a defect case is found when at least one posted finding is true.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import tarfile
import tomllib
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

CASES_FILE = Path(__file__).with_name("quality_cases.toml")
TOLERANCE = 2  # lines either side of an expected range that still count as "on the defect"
MAX_ARTIFACT_BYTES = 200_000_000
MAX_MEMBER_BYTES = 20_000_000
# the product's finding categories (bot.models.Category): what a reviewer should call the defect
CATEGORIES = frozenset(
    {"api", "database", "migration", "auth", "security", "performance", "errors", "observability", "other"}
)


class CaseError(ValueError):
    """The case list is malformed: the message names the case and the field."""


class IntegrityError(RuntimeError):
    """A downloaded or cached artifact does not match the sha256 pinned in the case list."""


@dataclass(frozen=True)
class Artifact:
    version: str
    url: str
    sha256: str
    strip: int  # leading path components dropped from archive members (sdist/npm top directory)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0]


@dataclass(frozen=True)
class Expected:
    file: str
    start: int
    end: int
    category: str

    def hit(self, path: str, line: int, tolerance: int = TOLERANCE) -> bool:
        return path == self.file and self.start - tolerance <= line <= self.end + tolerance


@dataclass(frozen=True)
class Side:
    """One side of the PR: a pinned artifact or inline files (synthetic cases)."""

    artifact: Artifact | None = None
    files: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    name: str
    kind: Literal["defect", "clean"]
    registry: str  # "pypi" | "npm" | "inline"
    package: str
    base: Side
    head: Side
    paths: tuple[str, ...]  # archive paths (after strip) taken from both sides; globs allowed
    prefix: str  # where the taken paths go in the PR's repository
    expected: tuple[Expected, ...]
    advisory: str = ""
    link: str = ""
    synthetic: bool = False
    title: str = ""
    note: str = ""


# ------------------------------------------------------------------------------------- parsing


def _req(raw: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in raw:
        raise CaseError(f"{where}: missing {key!r}")
    value = raw[key]
    if not isinstance(value, kind):
        raise CaseError(f"{where}: {key!r} must be {kind.__name__}")
    return value


def _artifact(raw: Any, where: str, default_strip: int) -> Artifact:
    if not isinstance(raw, Mapping):
        raise CaseError(f"{where}: must be a table with version, url and sha256")
    url = _req(raw, "url", str, where)
    sha = _req(raw, "sha256", str, where).lower()
    if not url.startswith("https://"):
        raise CaseError(f"{where}: url must be https")
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise CaseError(f"{where}: sha256 must be 64 hex digits")
    name = url.rsplit("/", 1)[-1]
    strip = raw.get("strip", 0 if name.endswith((".whl", ".zip")) else default_strip)
    if not isinstance(strip, int) or strip < 0:
        raise CaseError(f"{where}: strip must be a non-negative integer")
    return Artifact(version=_req(raw, "version", str, where), url=url, sha256=sha, strip=strip)


def _side(raw: Any, where: str, synthetic: bool) -> Side:
    if synthetic:
        files = raw.get("files") if isinstance(raw, Mapping) else None
        if not isinstance(files, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()
        ):
            raise CaseError(f"{where}: a synthetic case needs a files table of path = text")
        return Side(files=dict(files))
    return Side(artifact=_artifact(raw, where, default_strip=1))


def parse_cases(text: str) -> list[Case]:
    """Parse and validate the case list (TOML); every error names the case and field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(f"case list: {exc}") from exc
    raws = data.get("case", [])
    if not isinstance(raws, list):
        raise CaseError("case list: [[case]] tables expected")
    cases: list[Case] = []
    seen: set[str] = set()
    for n, raw in enumerate(raws):
        where = f"case #{n + 1}"
        name = _req(raw, "name", str, where)
        where = f"case {name!r}"
        if name in seen:
            raise CaseError(f"{where}: duplicate name")
        seen.add(name)
        kind = _req(raw, "kind", str, where)
        if kind not in ("defect", "clean"):
            raise CaseError(f"{where}: kind must be 'defect' or 'clean'")
        synthetic = bool(raw.get("synthetic", False))
        registry = "inline" if synthetic else _req(raw, "registry", str, where)
        if registry not in ("pypi", "npm", "inline"):
            raise CaseError(f"{where}: registry must be 'pypi' or 'npm' (or synthetic = true)")
        paths = tuple(raw.get("paths", ()))
        if not synthetic and not paths:
            raise CaseError(f"{where}: 'paths' must list what to take from the package")
        expected: list[Expected] = []
        for e in raw.get("expected", []):
            lines = _req(e, "lines", list, f"{where} expected")
            if len(lines) != 2 or not all(isinstance(x, int) and x > 0 for x in lines) or lines[0] > lines[1]:
                raise CaseError(f"{where}: expected lines must be [first, last] (1-based)")
            category = e.get("category", "security")
            if category not in CATEGORIES:
                raise CaseError(f"{where}: unknown category {category!r}")
            expected.append(Expected(_req(e, "file", str, f"{where} expected"), lines[0], lines[1], category))
        if kind == "defect" and not expected:
            raise CaseError(f"{where}: a defect case needs at least one expected location")
        if kind == "clean" and expected:
            raise CaseError(f"{where}: a clean case has no expected locations")
        prefix = raw.get("prefix", "")
        if prefix and (prefix.startswith("/") or ".." in PurePosixPath(prefix).parts):
            raise CaseError(f"{where}: prefix must be a relative path")
        cases.append(
            Case(
                name=name,
                kind=kind,
                registry=registry,
                package=raw.get("package", "") if synthetic else _req(raw, "package", str, where),
                base=_side(raw.get("base"), f"{where} base", synthetic),
                head=_side(raw.get("head"), f"{where} head", synthetic),
                paths=paths,
                prefix=prefix.strip("/"),
                expected=tuple(expected),
                advisory=raw.get("advisory", ""),
                link=raw.get("link", ""),
                synthetic=synthetic,
                title=raw.get("title", ""),
                note=raw.get("note", ""),
            )
        )
    return cases


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    return parse_cases(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------- downloads


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "backend-review" / "bench-quality"


def verify(data: bytes, sha256: str) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise IntegrityError(f"sha256 mismatch: pinned {sha256}, got {digest}")
    return data


def cached_path(art: Artifact, root: Path | None = None) -> Path:
    return (root or cache_dir()) / f"{art.sha256[:16]}-{art.filename}"


def fetch(art: Artifact, *, offline: bool = False, root: Path | None = None) -> bytes:
    """The artifact's bytes, from the cache or the registry; always checked against the pinned sha256."""
    path = cached_path(art, root)
    if path.exists():
        try:
            return verify(path.read_bytes(), art.sha256)
        except IntegrityError:
            path.unlink()  # a corrupt or tampered cache entry is dropped, then fetched again
    if offline:
        raise FileNotFoundError(f"{art.filename} is not cached ({path}) and --offline-only was given")
    import httpx

    chunks: list[bytes] = []
    size = 0
    with httpx.Client(timeout=120, follow_redirects=True) as client, client.stream("GET", art.url) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > MAX_ARTIFACT_BYTES:
                raise IntegrityError(f"{art.filename} is larger than {MAX_ARTIFACT_BYTES:,} bytes")
            chunks.append(chunk)
    data = verify(b"".join(chunks), art.sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")  # several benches may share the cache
    tmp.write_bytes(data)
    tmp.replace(path)
    return data


def _wanted(rel: str, patterns: Sequence[str]) -> bool:
    for p in patterns:
        p = p.rstrip("/")
        if rel == p or rel.startswith(p + "/") or fnmatch.fnmatchcase(rel, p):
            return True
    return False


def _clean_rel(name: str, strip: int) -> str | None:
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts or name.startswith("/"):
        return None
    parts = parts[strip:]
    return "/".join(parts) if parts else None


def extract(data: bytes, filename: str, strip: int, patterns: Sequence[str]) -> dict[str, bytes]:
    """Regular files of the archive whose stripped path matches ``patterns`` (no links, no escapes)."""
    out: dict[str, bytes] = {}
    if filename.endswith((".whl", ".zip")):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                rel = _clean_rel(info.filename, strip)
                if info.is_dir() or rel is None or not _wanted(rel, patterns):
                    continue
                if info.file_size <= MAX_MEMBER_BYTES:
                    out[rel] = zf.read(info)
        return out
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        for member in tf:
            rel = _clean_rel(member.name, strip)
            if not member.isreg() or rel is None or not _wanted(rel, patterns):
                continue
            if member.size <= MAX_MEMBER_BYTES:
                fh = tf.extractfile(member)
                if fh is not None:
                    out[rel] = fh.read()
    return out


def side_files(
    case: Case, side: Side, *, offline: bool = False, root: Path | None = None
) -> dict[str, bytes]:
    """The files one side of the PR holds, keyed by their path in the PR's repository."""
    if side.artifact is None:
        files = {k: v.encode() for k, v in side.files.items()}
    else:
        data = fetch(side.artifact, offline=offline, root=root)
        files = extract(data, side.artifact.filename, side.artifact.strip, case.paths)
        if not files:
            raise CaseError(f"case {case.name!r}: no file of {side.artifact.filename} matches {case.paths}")
    return {(f"{case.prefix}/{k}" if case.prefix else k): v for k, v in files.items()}


# ------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Posted:
    path: str
    line: int
    end_line: int | None
    source: str
    category: str
    placement: str
    title: str


@dataclass(frozen=True)
class CaseScore:
    case: Case
    posted: tuple[Posted, ...]
    true: tuple[Posted, ...]
    error: str = ""
    changed_files: int = 0  # files in the PR's diff: a case that materialised to nothing is visible
    raw_hits: int = 0  # rule findings before review assembly (what the agent would get as hints)

    @property
    def found(self) -> bool:
        return self.case.kind == "defect" and bool(self.true)

    @property
    def false(self) -> tuple[Posted, ...]:
        return tuple(p for p in self.posted if p not in self.true)


def is_true(p: Posted, expected: Iterable[Expected], tolerance: int = TOLERANCE) -> bool:
    """On an expected location: any line of the finding's span within the range ± tolerance."""
    last = p.end_line if p.end_line is not None and p.end_line >= p.line else p.line
    return any(
        p.path == e.file and p.line <= e.end + tolerance and last >= e.start - tolerance for e in expected
    )


def score_case(
    case: Case, posted: Sequence[Posted], error: str = "", *, changed_files: int = 0, raw_hits: int = 0
) -> CaseScore:
    true = tuple(p for p in posted if case.kind == "defect" and is_true(p, case.expected))
    return CaseScore(case, tuple(posted), true, error, changed_files, raw_hits)


@dataclass(frozen=True)
class Totals:
    defects: int
    found: int
    clean: int
    posted: int
    true_posted: int
    clean_comments: int
    errors: int

    @property
    def recall(self) -> float:
        return self.found / self.defects if self.defects else 0.0

    @property
    def precision(self) -> float:
        # nothing posted at all: no false comment either, but nothing earned; report 0 so it cannot pass
        return self.true_posted / self.posted if self.posted else 0.0


def totals(scores: Sequence[CaseScore]) -> Totals:
    ok = [s for s in scores if not s.error]
    return Totals(
        defects=sum(1 for s in ok if s.case.kind == "defect"),
        found=sum(1 for s in ok if s.found),
        clean=sum(1 for s in ok if s.case.kind == "clean"),
        posted=sum(len(s.posted) for s in ok),
        true_posted=sum(len(s.true) for s in ok),
        clean_comments=sum(len(s.posted) for s in ok if s.case.kind == "clean"),
        errors=len(scores) - len(ok),
    )
