"""The quality bench's scorer: case-list parsing, location matching, totals, archives and pinned downloads.

No network: archives are built here, downloads come from a loopback server, and the one end-to-end case
is synthetic (inline files) and runs through the real review core.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.bench_quality import as_json, run_case, table
from bench.quality import (
    Artifact,
    CaseError,
    Expected,
    IntegrityError,
    Posted,
    cached_path,
    extract,
    fetch,
    load_cases,
    parse_cases,
    score_case,
    totals,
)

SHA = "a" * 64
REAL = """
[[case]]
name = "lib-sqli"
kind = "defect"
registry = "pypi"
package = "lib"
paths = ["lib/db.py"]
base = { version = "1.1", url = "https://files.example/lib-1.1.tar.gz", sha256 = "@SHA@" }
head = { version = "1.0", url = "https://files.example/lib-1.0.tar.gz", sha256 = "@SHA@" }
expected = [{ file = "lib/db.py", lines = [10, 12], category = "security" }]

[[case]]
name = "lib-clean"
kind = "clean"
registry = "npm"
package = "lib"
prefix = "vendor/lib"
paths = ["dist/*.min.js"]
base = { version = "1.0", url = "https://registry.example/lib-1.0.tgz", sha256 = "@SHA@" }
head = { version = "1.1", url = "https://registry.example/lib-1.1.whl", sha256 = "@SHA@" }
""".replace("@SHA@", SHA)


def _posted(path: str, line: int, end: int | None = None) -> Posted:
    return Posted(path, line, end, "rule", "security", "inline", "t")


# ------------------------------------------------------------------------------------- parsing


def test_parses_real_and_clean_cases() -> None:
    defect, clean = parse_cases(REAL)
    assert defect.kind == "defect" and defect.expected == (Expected("lib/db.py", 10, 12, "security"),)
    assert defect.base.artifact is not None and defect.base.artifact.version == "1.1"
    assert defect.base.artifact.strip == 1  # sdists and npm tarballs have one top directory
    assert clean.kind == "clean" and clean.expected == () and clean.prefix == "vendor/lib"
    assert clean.head.artifact is not None and clean.head.artifact.strip == 0  # wheels have none


def test_synthetic_case_carries_its_files() -> None:
    (case,) = parse_cases(
        """
[[case]]
name = "mine"
kind = "clean"
synthetic = true
[case.base.files]
"a.py" = "x = 1\\n"
[case.head.files]
"a.py" = "x = 2\\n"
"""
    )
    assert case.synthetic and case.registry == "inline"
    assert case.head.files == {"a.py": "x = 2\n"} and case.head.artifact is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('kind = "defect"', 'kind = "bug"', "kind must be"),
        (f'sha256 = "{SHA}" }}\nhead', 'sha256 = "abc" }\nhead', "sha256 must be 64 hex"),
        ("https://files.example/lib-1.1", "http://files.example/lib-1.1", "url must be https"),
        ("lines = [10, 12]", "lines = [12, 10]", "expected lines"),
        ('category = "security"', 'category = "sql"', "unknown category"),
        ('paths = ["lib/db.py"]', "paths = []", "'paths' must list"),
        ('name = "lib-clean"', 'name = "lib-sqli"', "duplicate name"),
        ('prefix = "vendor/lib"', 'prefix = "../up"', "prefix must be a relative path"),
        ("expected = [", "unexpected = [", "needs at least one expected"),
    ],
)
def test_malformed_case_lists_name_the_case_and_field(old: str, new: str, message: str) -> None:
    assert old in REAL
    with pytest.raises(CaseError, match=message):
        parse_cases(REAL.replace(old, new, 1))


def test_clean_case_with_expected_locations_is_refused() -> None:
    text = REAL + '\nexpected = [{ file = "a", lines = [1, 1] }]\n'
    with pytest.raises(CaseError, match="clean case has no expected"):
        parse_cases(text)


def test_the_shipped_case_list_is_valid_and_pinned() -> None:
    cases = load_cases()
    defects = [c for c in cases if c.kind == "defect"]
    clean = [c for c in cases if c.kind == "clean"]
    assert len(defects) >= 10 and len(clean) >= 1
    for c in cases:
        if not c.synthetic:
            assert c.base.artifact and c.head.artifact
            assert (
                c.base.artifact.sha256 != c.head.artifact.sha256 or c.base.artifact.url == c.head.artifact.url
            )
        for e in c.expected:
            assert e.file.startswith(c.prefix)


# ------------------------------------------------------------------------------------- matching


def test_a_finding_is_true_only_in_the_expected_file_and_range_with_tolerance() -> None:
    (case, _) = parse_cases(REAL)
    inside, near, far = _posted("lib/db.py", 11), _posted("lib/db.py", 14), _posted("lib/db.py", 15)
    other_file = _posted("lib/other.py", 11)
    spanning = _posted("lib/db.py", 2, 9)  # a multi-line finding whose span reaches the range
    s = score_case(case, [inside, near, far, other_file, spanning])
    assert s.true == (inside, near, spanning)
    assert s.false == (far, other_file)
    assert s.found


def test_findings_on_clean_cases_are_all_false() -> None:
    (_, clean) = parse_cases(REAL)
    s = score_case(clean, [_posted("vendor/lib/dist/a.min.js", 1)])
    assert s.true == () and not s.found


def test_totals_recall_precision_and_clean_comments() -> None:
    defect, clean = parse_cases(REAL)
    scores = [
        score_case(defect, [_posted("lib/db.py", 10), _posted("lib/db.py", 40)]),
        score_case(defect, []),
        score_case(clean, [_posted("x.py", 1)]),
        score_case(clean, [], error="download failed"),  # not run: counted apart, not as quiet
    ]
    t = totals(scores)
    assert (t.defects, t.found, t.clean, t.posted, t.true_posted, t.clean_comments, t.errors) == (
        2,
        1,
        1,
        3,
        1,
        1,
        1,
    )
    assert t.recall == 0.5 and t.precision == pytest.approx(1 / 3)
    out = table(scores, show_false=True)
    assert "recall                   50.0 %" in out and "false: lib/db.py:40" in out
    data = as_json(scores)
    assert data["clean_comments"] == 1 and data["cases"][0]["posted"][0]["true"] is True


def test_nothing_posted_is_not_perfect_precision() -> None:
    (defect, _) = parse_cases(REAL)
    assert totals([score_case(defect, [])]).precision == 0.0


# ------------------------------------------------------------------------------------- archives


def _tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def test_extract_strips_the_top_directory_and_keeps_only_wanted_regular_files() -> None:
    data = _tar(
        {
            "pkg-1.0/lib/db.py": b"db",
            "pkg-1.0/lib/sub/x.py": b"x",
            "pkg-1.0/docs/index.rst": b"docs",
            "pkg-1.0/../escape.py": b"evil",
        },
        links={"pkg-1.0/lib/link.py": "/etc/passwd"},
    )
    assert extract(data, "pkg-1.0.tar.gz", 1, ["lib"]) == {"lib/db.py": b"db", "lib/sub/x.py": b"x"}
    assert extract(data, "pkg-1.0.tar.gz", 1, ["lib/*.py"]) == {"lib/db.py": b"db", "lib/sub/x.py": b"x"}
    assert extract(data, "pkg-1.0.tar.gz", 1, ["lib/db.py"]) == {"lib/db.py": b"db"}


def test_extract_reads_wheels() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pkg/api.py", "api")
        zf.writestr("pkg-1.0.dist-info/METADATA", "meta")
    assert extract(buf.getvalue(), "pkg-1.0-py3-none-any.whl", 0, ["pkg"]) == {"pkg/api.py": b"api"}


# ------------------------------------------------------------------------------------- downloads


@pytest.fixture
def registry() -> Iterator[tuple[str, dict[str, bytes], list[str]]]:
    """A loopback 'registry': path → bytes; records every request path."""
    files: dict[str, bytes] = {}
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            data = files.get(self.path)
            self.send_response(200 if data is not None else 404)
            self.send_header("content-length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files, hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_fetch_verifies_sha256_and_caches(
    tmp_path: Path, registry: tuple[str, dict[str, bytes], list[str]]
) -> None:
    url, files, hits = registry
    files["/pkg-1.0.tgz"] = b"real bytes"
    art = Artifact("1.0", f"{url}/pkg-1.0.tgz", hashlib.sha256(b"real bytes").hexdigest(), 1)
    assert fetch(art, root=tmp_path) == b"real bytes"
    assert fetch(art, root=tmp_path, offline=True) == b"real bytes"  # from the cache
    assert hits == ["/pkg-1.0.tgz"]


def test_fetch_refuses_bytes_that_do_not_match_the_pin(
    tmp_path: Path, registry: tuple[str, dict[str, bytes], list[str]]
) -> None:
    url, files, _ = registry
    files["/pkg-1.0.tgz"] = b"tampered"
    art = Artifact("1.0", f"{url}/pkg-1.0.tgz", hashlib.sha256(b"real bytes").hexdigest(), 1)
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        fetch(art, root=tmp_path)
    assert not cached_path(art, tmp_path).exists()  # nothing unverified is cached


def test_a_corrupt_cache_entry_is_dropped_and_fetched_again(
    tmp_path: Path, registry: tuple[str, dict[str, bytes], list[str]]
) -> None:
    url, files, hits = registry
    files["/pkg-1.0.tgz"] = b"real bytes"
    art = Artifact("1.0", f"{url}/pkg-1.0.tgz", hashlib.sha256(b"real bytes").hexdigest(), 1)
    cached_path(art, tmp_path).parent.mkdir(parents=True, exist_ok=True)
    cached_path(art, tmp_path).write_bytes(b"corrupt")
    with pytest.raises(FileNotFoundError, match="not cached"):
        fetch(art, root=tmp_path, offline=True)  # offline never reaches the network
    assert hits == []
    assert fetch(art, root=tmp_path) == b"real bytes"
    assert cached_path(art, tmp_path).read_bytes() == b"real bytes"


# ------------------------------------------------------------------------------------- end to end


SYNTHETIC = '''
[[case]]
name = "synthetic-sqli"
kind = "defect"
synthetic = true
[[case.expected]]
file = "app/users.py"
lines = [5, 5]
category = "security"
[case.base.files]
"app/users.py" = """def find(cursor, name):
    cursor.execute("SELECT id FROM users WHERE name = %s", (name,))
    return cursor.fetchone()
"""
[case.head.files]
"app/users.py" = """def find(cursor, name):
    return None


def search(cursor, name):
    cursor.execute(f"SELECT id FROM users WHERE name = '{name}'")
    return cursor.fetchall()
"""
'''


def test_a_case_runs_through_the_review_core_and_counts_posted_findings() -> None:
    (case,) = parse_cases(SYNTHETIC)
    score = run_case(case, offline=True)
    assert score.error == ""
    assert score.changed_files == 1
    assert score.posted and score.found  # the f-string SQL on line 5 is posted, and lands on the range
    assert all(p.placement in ("inline", "file") for p in score.posted)


def test_the_bench_runner_passes_options_to_the_quality_bench(tmp_path: Path) -> None:
    """``python -m bench quality --json …`` end to end, offline, on a one-case list."""
    import json
    import subprocess
    import sys

    cases = tmp_path / "cases.toml"
    cases.write_text(SYNTHETIC)
    out = subprocess.run(
        [sys.executable, "-m", "bench", "quality", "--cases-file", str(cases), "--json", "--offline-only"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    data = json.loads(out.stdout)
    assert (data["defects"], data["defects_found"], data["recall"]) == (1, 1, 1.0)
    assert data["cases"][0]["name"] == "synthetic-sqli" and data["cases"][0]["synthetic"] is True
