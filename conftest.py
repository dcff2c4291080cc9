import os

# Tests run with the development secret; DEBUG itself is forced off by Django's test runner.
os.environ.setdefault("DEBUG", "1")
