"""backend-review: reviews pull requests the way a senior backend engineer would."""

__version__ = "0.1.0"
