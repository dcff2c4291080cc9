"""Settings come from the environment, and every variable is documented."""

import json
import os
import re
import subprocess
import sys

import yaml

from tests.conftest import ROOT

SETTINGS = (ROOT / "crm" / "settings.py").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
README = (ROOT / "README.md").read_text()

# env("X"), env_bool("X", …), env_int(…), env_float(…), env_list(…), os.environ.get("X"), os.environ["X"]
_READ = re.compile(r"""(?:\benv(?:_\w+)?\(|os\.environ\.get\(|os\.environ\[|os\.getenv\()\s*["']([A-Z][A-Z0-9_]*)["']""")


def documented():
    return {line.split("=", 1)[0].strip() for line in ENV_EXAMPLE.splitlines() if re.match(r"^[A-Z][A-Z0-9_]*=", line)}


def settings_in_subprocess(env, *names):
    """The named settings as a fresh process with exactly `env` loads them."""
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        f"print(json.dumps({{n: str(getattr(settings, n)) for n in {list(names)!r}}}))"
    )
    base = {"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "crm.settings"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_every_variable_the_settings_read_is_in_env_example():
    read = set(_READ.findall(SETTINGS))

    assert len(read) > 10
    assert read - documented() == set()


def test_every_variable_the_compose_file_interpolates_is_in_env_example():
    compose = (ROOT / "docker-compose.yml").read_text()
    # ${NAME…} but not $${NAME}, which the container's shell expands.
    interpolated = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", compose))

    assert "SECRET_KEY" in interpolated
    assert interpolated - documented() == set()


def test_every_documented_variable_is_in_the_readme():
    missing = {name for name in documented() if f"`{name}`" not in README}

    assert missing == set()


def test_compose_environment_names_only_documented_variables():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

    names = set(compose["x-app"]["environment"])

    assert names - documented() == set()


def test_production_mode_refuses_to_start_without_a_secret_key():
    result = settings_in_subprocess({"DEBUG": "false"}, "DEBUG")

    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_embedded_default_is_sqlite_with_tasks_in_process(tmp_path):
    result = settings_in_subprocess({"DEBUG": "1", "DATA_DIR": str(tmp_path)}, "DATABASES", "CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_URL")

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "sqlite3" in loaded["DATABASES"]
    assert str(tmp_path / "crm.sqlite3") in loaded["DATABASES"]
    assert loaded["CELERY_TASK_ALWAYS_EAGER"] == "True"
    assert loaded["CELERY_BROKER_URL"] == "memory://"


def test_production_settings_come_from_the_environment():
    env = {
        "DEBUG": "false",
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": "postgresql://crm:pw@db.internal:5433/crm",
        "REDIS_URL": "redis://cache.internal:6379/2",
        "ALLOWED_HOSTS": "crm.example.com, api.example.com",
    }

    result = settings_in_subprocess(env, "DATABASES", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "ALLOWED_HOSTS", "DEBUG")

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "'ENGINE': 'django.db.backends.postgresql'" in loaded["DATABASES"]
    assert "'HOST': 'db.internal'" in loaded["DATABASES"] and "'PORT': 5433" in loaded["DATABASES"]
    assert loaded["CELERY_BROKER_URL"] == "redis://cache.internal:6379/2"
    assert loaded["CELERY_TASK_ALWAYS_EAGER"] == "False"
    assert loaded["ALLOWED_HOSTS"] == "['crm.example.com', 'api.example.com']"
    assert loaded["DEBUG"] == "False"


def test_a_malformed_number_stops_start_up_with_its_name():
    result = settings_in_subprocess({"DEBUG": "1", "CONVERSATION_CONTINUE_HOURS": "three days"}, "DEBUG")

    assert result.returncode != 0
    assert "CONVERSATION_CONTINUE_HOURS must be an integer" in result.stderr
