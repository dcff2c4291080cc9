"""The product's settings, as the test suite runs them.

Only what a test run needs and production must not have: a fixed secret so
tests run with DEBUG off. Everything else comes from crm/settings.py and the
environment (DATABASE_URL, REDIS_URL), exactly as in production.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")

from crm.settings import *  # noqa: E402,F403
