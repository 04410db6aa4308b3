"""O-03 by construction: the publishing layer takes only the types :mod:`bot.sanitize` alone produces.

Three guards: (1) the publishers' text parameters are typed ``Sanitised``/``SanitisedText`` and mypy
rejects a ``str`` there; (2) nothing outside bot/sanitize.py creates those types; (3) our own wording
enters them only as literals written in the source.
"""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest

from bot import formats, github, models, pipeline, workflow_commands
from bot.publish import base, github_app
from bot.publish import body as publish_body
from bot.publish import ci as publish_ci
from bot.publish import review as publish_review
from bot.sanitize import Sanitised, SanitisedText

BOT = Path(__file__).resolve().parent.parent / "bot"
ROOT = BOT.parent
TYPES = {"Sanitised", "SanitisedText"}
LITERAL_FIRST = {"fixed", "compose", "join"}
# parameters of a GitHub write that are identifiers, not text anyone reads
IDENTIFIERS = {
    "self",
    "pr",
    "head_sha",
    "path",
    "comment_id",
    "check_id",
    "external_id",
    "status",
    "conclusion",
}


def _hints(fn: object) -> dict[str, object]:
    return typing.get_type_hints(fn, include_extras=False)


def test_o03_github_writes_take_only_sanitised_text() -> None:
    client = github.GitHubClient
    writes = [
        name
        for name, fn in inspect.getmembers(client, inspect.iscoroutinefunction)
        if name.startswith(("post_", "create_", "complete_", "add_", "open_"))
    ]
    assert set(writes) >= {
        "post_issue_comment",
        "post_file_comment",
        "create_review",
        "create_check_run",
        "open_check_run",
        "complete_check_run",
        "add_reaction",
    }
    for name in writes:
        hints = _hints(getattr(client, name))
        for param in inspect.signature(getattr(client, name)).parameters:
            if param in IDENTIFIERS:
                continue
            assert hints[param] is not str, f"GitHubClient.{name}({param}: str) would publish raw text"
    assert _hints(client.post_issue_comment)["body"] is Sanitised
    assert _hints(client.post_file_comment)["body"] is Sanitised
    check = _hints(client.complete_check_run)
    assert (check["title"], check["summary"]) == (SanitisedText, Sanitised)
    assert check["text"] == Sanitised | None
    assert typing.get_args(check["annotations"]) == (formats.Annotation,)
    assert typing.get_args(check["actions"]) == (github.CheckAction,)
    assert _hints(client.create_check_run)["name"] is SanitisedText
    assert _hints(client.open_check_run)["name"] is SanitisedText
    assert typing.get_origin(_hints(client.add_reaction)["content"]) is typing.Literal
    review = _hints(client.create_review)
    assert review["body"] is Sanitised
    assert typing.get_args(review["comments"]) == (models.InlineComment,)
    assert _hints(publish_review.post_review)["draft"] is models.ReviewDraft


def test_o03_the_publishers_take_only_sanitised_text() -> None:
    """Every text the publish stage is handed is sanitised by type; a review travels as the draft."""
    app = github_app.AppPublisher
    assert _hints(app.reply)["text"] is Sanitised
    for method in (app.neutral_check, app.close_unfinished, github_app.CheckRun.complete):
        hints = _hints(method)
        assert (hints["title"], hints["summary"]) == (SanitisedText, Sanitised), method
    assert _hints(app.too_large)["text"] is Sanitised
    assert _hints(app.report_failure)["summary"] is Sanitised
    assert typing.get_origin(_hints(app.react)["reaction"]) is typing.Literal
    for publisher in (app, publish_ci.CiPublisher, base.Publisher):
        assert _hints(publisher.publish)["outcome"] is pipeline.ReviewOutcome
    assert _hints(pipeline.ReviewOutcome)["draft"] is models.ReviewDraft


def test_o03_what_a_review_carries_is_sanitised() -> None:
    draft = _hints(models.ReviewDraft)
    assert (draft["body"], draft["check_summary"], draft["check_title"]) == (
        Sanitised,
        Sanitised,
        SanitisedText,
    )
    assert _hints(models.InlineComment)["body"] is Sanitised
    assert _hints(models.FileComment)["body"] is Sanitised
    annotation = _hints(formats.Annotation)
    assert (annotation["title"], annotation["message"]) == (SanitisedText, SanitisedText)
    action = _hints(github.CheckAction)
    assert (action["label"], action["description"]) == (SanitisedText, SanitisedText)
    assert _hints(publish_body.fold_comments)["return"] is Sanitised


def test_o03_ci_publishes_only_sanitised_text() -> None:
    """The CI path: the job summary is the sanitised review; workflow-command annotations take plain text."""
    assert _hints(formats.to_markdown)["return"] is Sanitised
    ann = _hints(workflow_commands.annotation)
    assert ann["message"] is SanitisedText and ann["title"] == SanitisedText | None
    source = inspect.getsource(publish_ci.write_summary)
    assert "to_markdown(draft)" in source


def _python_files() -> list[Path]:
    return sorted(p for p in BOT.rglob("*.py") if p.name != "sanitize.py" or p.parent != BOT)


def creations(source: str) -> list[str]:
    """Places that make a sanitised value without a sanitiser: ``Sanitised(x)``, ``cast(Sanitised, x)``,
    a NewType of the same name, or a literal passed where only a literal may go but isn't."""
    tree = ast.parse(source)
    bad: list[str] = []
    from_sanitize: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "bot.sanitize":
            for alias in node.names:
                from_sanitize[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in TYPES:
            bad.append(f"line {node.lineno}: {name}(...)")
        if name in ("cast", "NewType") and any(
            isinstance(a, ast.Name | ast.Constant) and getattr(a, "id", getattr(a, "value", None)) in TYPES
            for a in node.args
        ):
            bad.append(f"line {node.lineno}: {name}(...) of a sanitised type")
        original = from_sanitize.get(name) if isinstance(func, ast.Name) else None
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "sanitize"
        ):
            original = func.attr
        if original in LITERAL_FIRST:
            first = node.args[0] if node.args else None
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                bad.append(f"line {node.lineno}: {original}() needs a string literal first")
    return bad


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(BOT)))
def test_o03_only_the_sanitiser_creates_sanitised_text(path: Path) -> None:
    assert creations(path.read_text()) == []


def test_o03_the_creation_check_can_fail() -> None:
    source = (
        "from typing import cast\n"
        "from bot.sanitize import Sanitised, compose, fixed, join as j\n"
        "a = Sanitised(err)\n"
        "b = cast(Sanitised, err)\n"
        "c = fixed(err)\n"
        "d = compose(f'{err}', x)\n"
        "e = j(sep, parts)\n"
        "ok = compose('{} x', y), fixed('z'), ', '.join(parts)\n"
    )
    assert [b.split(":")[0] for b in creations(source)] == ["line 3", "line 4", "line 5", "line 6", "line 7"]


def test_o03_mypy_rejects_raw_strings_where_github_text_goes(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    snippet = tmp_path / "publish_raw.py"
    snippet.write_text(
        "from bot.github import GitHubClient\n"
        "from bot.publish.base import CHECK_NAME\n"
        "from bot.models import PullRequestRef\n"
        "from bot.sanitize import compose, inert_plain, plain_text\n\n\n"
        "async def raw(gw: GitHubClient, pr: PullRequestRef, stderr: str) -> None:\n"
        "    await gw.post_issue_comment(pr, f'git failed: {stderr}')\n"
        "    await gw.complete_check_run(pr, 1, conclusion='neutral', title='x', summary=stderr)\n"
        "    await gw.post_file_comment(pr, 'sha', 'a.py', stderr)\n"
        "    await gw.add_reaction(pr, 1, stderr)\n\n\n"
        "async def sanitised(gw: GitHubClient, pr: PullRequestRef, stderr: str) -> None:\n"
        "    await gw.post_issue_comment(pr, compose('git failed: {}', inert_plain(stderr)))\n"
        "    await gw.complete_check_run(\n"
        "        pr, 1, conclusion='neutral', title=plain_text(stderr), summary=inert_plain(stderr)\n"
        "    )\n"
        "    await gw.open_check_run(pr, 'sha', name=CHECK_NAME, external_id='j')\n"
    )
    out, err, _status = api.run(["--strict", "--no-error-summary", str(snippet)])
    errors = [line for line in out.splitlines() if ": error:" in line]
    lines = sorted({int(line.split(":")[1]) for line in errors})
    assert lines == [8, 9, 10, 11], out + err
    assert 'expected "Sanitised"' in out and 'expected "SanitisedText"' in out


def test_o03_only_bot_github_sends_requests_to_github() -> None:
    """The typed publishers are the only way out: no other module sends its own request bodies."""
    senders = []
    for path in _python_files():
        if path == BOT / "github.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("arequest", "_request", "rest"):
                senders.append(f"{path.relative_to(BOT)}:{node.lineno} .{node.attr}")
    assert senders == []
