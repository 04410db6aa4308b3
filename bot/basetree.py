"""What the review reads from the BASE branch's tree besides the config (P-04: a PR cannot change it):
``.gitattributes`` (file kinds), database settings (migration dialects) and repository rules.

Adapter: lists the tree once (``git ls-tree``), picks files by name, reads them in one ``cat-file --batch``.
Every read is capped (file count, file size); a missing or unreadable base leaves the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from bot.checkout import Workspace
from bot.diff import gitattributes
from bot.errors import WorkspaceError
from bot.log import get_logger
from bot.rules.dialect import (
    MAX_SETTINGS_BYTES,
    MAX_SETTINGS_FILES,
    UNKNOWN_PROJECT,
    ProjectDialects,
    is_settings_file,
    project_dialects,
)
from bot.rules.repo_rules import RULES_DIR, is_rule_file

log = get_logger(__name__)

MAX_ATTRIBUTE_FILES = 50
MAX_ATTRIBUTE_BYTES = 100_000
MAX_RULE_FILES = 50
MAX_RULE_FILE_BYTES = 64_000


@dataclass(frozen=True)
class BaseContext:
    commit: str | None = None
    attributes: tuple[tuple[str, str, str | None], ...] = ()
    project: ProjectDialects = UNKNOWN_PROJECT
    # (path, text) of .github/backend-review/rules/*.yml, and files over the caps by path
    rule_files: tuple[tuple[str, str], ...] = ()
    rule_files_skipped: tuple[str, ...] = field(default=())


async def read_base_context(ws: Workspace, base: str | None) -> BaseContext:
    """The base tree's settings for this review; the defaults when ``base`` is unknown or unreadable."""
    if not base or not await ws.has_commit(base):
        return BaseContext()
    try:
        listing = await ws.git(["ls-tree", "-r", "-l", "-z", "--full-tree", base])
    except WorkspaceError as exc:
        log.warning("base tree unreadable", error=str(exc))
        return BaseContext(commit=base)
    attrs: list[tuple[str, str]] = []
    settings: list[tuple[str, str]] = []
    rules: list[tuple[str, str]] = []
    too_big: list[str] = []
    for entry in listing.split(b"\0"):
        meta, _, raw_path = entry.partition(b"\t")
        parts = meta.split()
        if len(parts) != 4 or parts[1] != b"blob":
            continue
        path = raw_path.decode("utf-8", "replace")
        size = int(parts[3]) if parts[3].isdigit() else 0
        sha = parts[2].decode()
        name = PurePosixPath(path).name
        if name == ".gitattributes":
            if len(attrs) < MAX_ATTRIBUTE_FILES and size <= MAX_ATTRIBUTE_BYTES:
                attrs.append((path, sha))
        elif is_rule_file(path):
            if len(rules) >= MAX_RULE_FILES or size > MAX_RULE_FILE_BYTES:
                too_big.append(path)
            else:
                rules.append((path, sha))
        elif is_settings_file(path) and len(settings) < MAX_SETTINGS_FILES and size <= MAX_SETTINGS_BYTES:
            settings.append((path, sha))
    cap = max(MAX_ATTRIBUTE_BYTES, MAX_RULE_FILE_BYTES, MAX_SETTINGS_BYTES)  # sizes were checked above
    blobs = await ws.read_objects([sha for _, sha in (*attrs, *settings, *rules)], cap)
    texts = {sha: data.decode("utf-8", "replace") for sha, data in blobs.items()}
    attributes = gitattributes([(p, texts.get(sha, "")) for p, sha in attrs])
    project = project_dialects({p: texts.get(sha, "") for p, sha in settings})
    log.info(
        "base tree read",
        base=base[:12],
        gitattributes=len(attrs),
        settings=len(settings),
        rules=len(rules),
        rules_dir=RULES_DIR,
    )
    return BaseContext(
        commit=base,
        attributes=attributes,
        project=project,
        rule_files=tuple((p, texts.get(sha, "")) for p, sha in rules),
        rule_files_skipped=tuple(too_big),
    )
