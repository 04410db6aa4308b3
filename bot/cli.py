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


def _add_review_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="backend-review",
        description="Reviews changes the way a senior backend engineer would.",
    )
    parser.add_argument("--version", action="version", version=f"backend-review {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    review = sub.add_parser("review", help="review a git repository on disk (base..head)")
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

    demo = sub.add_parser("demo", help="review a throwaway repo with a planted PR (offline)")
    demo.add_argument("--format", choices=FORMATS, default="markdown", help="default: markdown")
    demo.add_argument("--model", metavar="SPEC", help="model spec; default $BACKEND_REVIEW_MODEL or offline")

    serve = sub.add_parser("serve", help="run the GitHub App: webhook receiver plus embedded workers")
    serve.add_argument("--host", help="bind address (default $BACKEND_REVIEW_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default $BACKEND_REVIEW_PORT or 3000)")
    serve.add_argument("--workers", type=int, help="concurrent reviews in this process (0 = receiver only)")

    worker = sub.add_parser("worker", help="run review workers only (scale-out, shared database)")
    worker.add_argument("--workers", type=int, help="concurrent reviews in this process")

    ci = sub.add_parser("ci", help="review the pull request of a GitHub Actions run")
    ci.add_argument("--sarif", metavar="FILE", help="also write SARIF to FILE")
    ci.add_argument("--no-review", action="store_true", help="do not post a pull-request review")
    ci.add_argument("--config", metavar="PATH", help="repo config path (default .github/backend-review.yml)")
    _add_review_options(ci)

    setup = sub.add_parser("setup", help="print the GitHub App manifest, or finish the manifest flow")
    setup.add_argument("--url", default="https://example.com", help="public base URL of this server")
    setup.add_argument(
        "--code", help="the `code` from GitHub's redirect: writes the new App's key and an env file"
    )
    setup.add_argument("--dir", default=".", help="where --code writes its files (default: .)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from bot.errors import BackendReviewError, ConfigError, UsageError

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
