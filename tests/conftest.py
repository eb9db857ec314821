"""Test-wide settings: the verifier runs between passes, and compiled programs are cached in a
per-session temporary directory (never the user's cache)."""
import os
import tempfile

os.environ.setdefault("GRAPHC_VERIFY", "1")
os.environ.setdefault("GRAPHC_CACHE_DIR", tempfile.mkdtemp(prefix="graphc-test-cache-"))

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=40, deadline=None)
settings.load_profile("ci")
