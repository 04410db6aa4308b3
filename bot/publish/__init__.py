"""The publish stage: the one place that writes to a destination (issue 11).

- :mod:`bot.publish.markers` and :mod:`bot.publish.body` (pure): the hidden markers a posted body
  carries and reading them back, GitHub's body limits, the 422 fallback's folded body;
- :mod:`bot.publish.base`: the :class:`~bot.publish.base.Publisher` protocol;
- :mod:`bot.publish.review`: posting one review (the 422 fallback, the lookup after a lost answer);
- :mod:`bot.publish.github_app`: the App (review, inline and file comments, check run, outdated
  threads resolved, reactions, replies, the too-large notice);
- :mod:`bot.publish.ci`: a workflow run (review and check run with its token, or annotations and the
  step summary).

Every text that goes out is :data:`~bot.sanitize.Sanitised` or :data:`~bot.sanitize.SanitisedText` by
type (O-03). This package's ``__init__`` imports nothing, so the pure review core may import the pure
modules without pulling in an adapter.
"""
