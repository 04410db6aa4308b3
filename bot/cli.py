"""Command line: argument parsing only. Heavy modules are imported inside each command so that
``backend-review --help`` starts fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bot import __version__

FORMATS = ("text", "markdown", "json", "sarif", "codeclimate")
SEVERITIES = ("critical", "high", "medium", "low", "nit")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"backend-review: error: {message}\n")


_HELP = argparse.RawDescriptionHelpFormatter

REVIEW_HELP = """\
Review the changes of a git repository on disk the way a senior backend engineer would, and print
the findings. With no model configured the deterministic offline checks run alone (no network, no
key); with --model (or $BACKEND_REVIEW_MODEL) the backend-engineer agent reviews too.

requires: git on PATH; a model key only with a model (ANTHROPIC_API_KEY or OPENAI_API_KEY, or
          BACKEND_REVIEW_MODEL_API_KEY)
exit codes: 0 clean or below --fail-on, 1 a finding at or above --fail-on, 2 usage or
          configuration error, 3 the review could not complete"""

REVIEW_EXAMPLES = """\
examples:
  backend-review review                                  # HEAD against its merge base with main
  backend-review review ../api --base origin/main --fail-on high
  backend-review review --format sarif -o review.sarif
  backend-review review --model anthropic:claude-sonnet-4-6"""

DEMO_HELP = """\
Build a throwaway repository with an orders service and a pull request that plants backend
defects, review it offline, and print the review as GitHub would show it. Needs nothing but git."""

SERVE_HELP = """\
Run the GitHub App: the webhook receiver (POST /api/github/webhooks, GET /healthz, GET /readyz)
plus embedded review workers, with the queue and the token ledger in SQLite in
$BACKEND_REVIEW_DATA_DIR (./data) or in Postgres from $BACKEND_REVIEW_DATABASE_URL. Settings come
from the environment (BACKEND_REVIEW_*; `backend-review setup` writes an env file with them).

requires: BACKEND_REVIEW_WEBHOOK_SECRET; with workers (the default) also BACKEND_REVIEW_APP_ID (or
          BACKEND_REVIEW_CLIENT_ID) and BACKEND_REVIEW_PRIVATE_KEY_PATH (or BACKEND_REVIEW_PRIVATE_KEY)"""

SERVE_EXAMPLES = """\
examples:
  set -a; . ./secrets/MY-APP.env; set +a; backend-review serve
  backend-review serve --host 0.0.0.0 --port 8080 --workers 4
  backend-review serve --workers 0          # receiver only; run `backend-review worker` elsewhere"""

WORKER_HELP = """\
Run review workers only, for scale-out: they claim jobs from the shared queue that `serve`
receivers fill, check the pull request out, review it and post the result. Use Postgres
(BACKEND_REVIEW_DATABASE_URL=postgresql://...) when workers and receiver are on different hosts.

requires: BACKEND_REVIEW_APP_ID (or BACKEND_REVIEW_CLIENT_ID) and BACKEND_REVIEW_PRIVATE_KEY_PATH
          (or BACKEND_REVIEW_PRIVATE_KEY); BACKEND_REVIEW_DATABASE_URL for a shared queue"""

WORKER_EXAMPLES = """\
example:
  BACKEND_REVIEW_DATABASE_URL=postgresql://review@db/review backend-review worker --workers 4"""

CI_HELP = """\
Review the pull request of a GitHub Actions run (pull_request or issue_comment events): post the
review and a check run with a write token, or annotations and a step summary with a read-only one.
Fork pull requests without secrets get the offline checks.

requires: GITHUB_EVENT_PATH, GITHUB_REPOSITORY and GITHUB_TOKEN (set by GitHub Actions); a model
          key only with a model"""

CI_EXAMPLES = """\
example (a workflow step; see examples/workflows/backend-review.yml):
  backend-review ci --fail-on high --sarif review.sarif"""

SETUP_HELP = """\
Register the GitHub App from a browser. setup serves a page on 127.0.0.1 with a "Register GitHub
App" button that sends the App manifest (app.yml: the four permissions and three events, the webhook
URL from --url) to GitHub's App-creation page. GitHub creates the App and sends the browser back to
the page, which writes the App's private key and an env file (both readable by you only) into --dir
and prints no secret. On a server without a browser, use --manifest and --code instead.

requires: app.yml (in a checkout or the deploy image); a browser signed in to GitHub; network access
          to the GitHub API ($BACKEND_REVIEW_GITHUB_API_URL overrides it)"""

SETUP_EXAMPLES = """\
examples:
  backend-review setup --url https://review.example.com --dir ./secrets
  backend-review setup --url https://review.example.com --github-url https://ghe.example.com --org acme
  backend-review setup --url https://review.example.com --manifest > manifest.json   # headless
  backend-review setup --code 0123abcd --dir ./secrets                                # headless"""


def _add_review_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="output format (default: text on a terminal, markdown for files, pipes and CI)",
    )
    _add_color(p)
    p.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    p.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        metavar="SEVERITY",
        help="exit 1 when a finding reaches SEVERITY (critical|high|medium|low|nit)",
    )
    p.add_argument(
        "--model",
        metavar="SPEC",
        help="model, e.g. anthropic:claude-sonnet-4-6 or openai:gpt-4.1[@BASE_URL]; "
        "default $BACKEND_REVIEW_MODEL; none = offline checks only",
    )
    p.add_argument("--max-comments", type=int, metavar="N", help="inline comments shown (default 10)")


def _add_color(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the text report (auto: on a terminal, unless NO_COLOR; FORCE_COLOR forces it)",
    )


def _add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--verbose", action="store_true", help="also log events to stderr as JSON lines (off by default)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="backend-review",
        description="Reviews changes the way a senior backend engineer would.",
    )
    parser.add_argument("--version", action="version", version=f"backend-review {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    review = sub.add_parser(
        "review",
        help="review a git repository on disk (base..head)",
        description=REVIEW_HELP,
        epilog=REVIEW_EXAMPLES,
        formatter_class=_HELP,
    )
    review.add_argument("path", nargs="?", default=".", help="repository (default: .)")
    review.add_argument(
        "--base",
        metavar="REF",
        help="base ref (default: merge base with the default branch)",
    )
    review.add_argument("--head", metavar="REF", default="HEAD", help="head ref (default: HEAD)")
    review.add_argument("--include", action="append", default=[], metavar="GLOB", help="only review these")
    review.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip these paths")
    _add_review_options(review)
    _add_verbose(review)

    demo = sub.add_parser(
        "demo",
        help="review a throwaway repo with a planted PR (offline)",
        description=DEMO_HELP,
        epilog="example:\n  backend-review demo --format text",
        formatter_class=_HELP,
    )
    demo.add_argument(
        "--format", choices=FORMATS, help="default: text on a terminal, markdown for pipes and CI"
    )
    _add_color(demo)
    demo.add_argument("--model", metavar="SPEC", help="model spec; default $BACKEND_REVIEW_MODEL or offline")
    _add_verbose(demo)

    serve = sub.add_parser(
        "serve",
        help="run the GitHub App: webhook receiver plus embedded workers",
        description=SERVE_HELP,
        epilog=SERVE_EXAMPLES,
        formatter_class=_HELP,
    )
    serve.add_argument("--host", help="bind address (default $BACKEND_REVIEW_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default $BACKEND_REVIEW_PORT or 3000)")
    serve.add_argument("--workers", type=int, help="concurrent reviews in this process (0 = receiver only)")

    worker = sub.add_parser(
        "worker",
        help="run review workers only (scale-out, shared database)",
        description=WORKER_HELP,
        epilog=WORKER_EXAMPLES,
        formatter_class=_HELP,
    )
    worker.add_argument("--workers", type=int, help="concurrent reviews in this process")

    ci = sub.add_parser(
        "ci",
        help="review the pull request of a GitHub Actions run",
        description=CI_HELP,
        epilog=CI_EXAMPLES,
        formatter_class=_HELP,
    )
    ci.add_argument("--sarif", metavar="FILE", help="also write SARIF to FILE")
    ci.add_argument("--no-review", action="store_true", help="do not post a pull-request review")
    ci.add_argument("--config", metavar="PATH", help="repo config path (default .github/backend-review.yml)")
    _add_review_options(ci)

    setup = sub.add_parser(
        "setup",
        help="print the GitHub App manifest, or finish the manifest flow",
        description=SETUP_HELP,
        epilog=SETUP_EXAMPLES,
        formatter_class=_HELP,
    )
    setup.add_argument(
        "--url", help="public https base URL GitHub sends webhooks to (asked for on the page when missing)"
    )
    setup.add_argument(
        "--github-url",
        metavar="URL",
        help="GitHub's web address: https://github.com (default) or your GitHub Enterprise Server",
    )
    setup.add_argument("--org", help="create the App for this organisation instead of your account")
    setup.add_argument("--dir", default=".", help="where the key and env file are written (default: .)")
    setup.add_argument(
        "--port", type=int, default=0, help="port of the local setup page on 127.0.0.1 (default: any free)"
    )
    setup.add_argument("--open", action="store_true", help="open the setup page in the default browser")
    setup.add_argument(
        "--timeout", type=float, default=1800, help="seconds to wait for the registration (default: 1800)"
    )
    setup.add_argument(
        "--code", help="headless: the `code` from GitHub's redirect; writes the new App's key and env file"
    )
    setup.add_argument(
        "--manifest", action="store_true", help="print the App manifest as JSON (needs --url) and exit"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from bot.errors import BackendReviewError, ConfigError, UsageError

    if args.command in ("review", "demo", "setup"):
        from bot.log import configure, silence

        # interactive commands print a report, not log lines, unless asked
        if getattr(args, "verbose", False):
            configure("INFO")
        else:
            silence()
    try:
        if args.command in ("review", "demo"):
            from bot.local import run_demo, run_local_review

            return run_demo(args) if args.command == "demo" else run_local_review(args)
        if args.command in ("serve", "worker"):
            from bot.app import run_serve, run_worker

            return run_serve(args) if args.command == "serve" else run_worker(args)
        if args.command == "ci":
            from bot.ci import run_ci

            return run_ci(args)
        if args.command == "setup":
            from bot.app import run_setup

            return run_setup(args)
    except (ConfigError, UsageError) as exc:
        print(f"backend-review: {exc}", file=sys.stderr)
        return 2
    except BackendReviewError as exc:  # e.g. a blocked SecretLeak or an unreachable model host
        print(f"backend-review: the review could not complete: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
