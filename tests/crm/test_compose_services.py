"""The exact service commands of docker-compose.yml, run here without Docker.

There is no Docker engine on the test machines, so these tests read
docker-compose.yml, take the `command` and the `environment` of the web, worker
and beat services as compose would give them, and run them as subprocesses
against the test's PostgreSQL and Redis (and a free port instead of 8000).
"""

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from django.conf import settings

from tests.conftest import ROOT, database_url_for_subprocess, wait_until


COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
# What an operator puts in .env: only what the compose file insists on.
OPERATOR_ENV = {"SECRET_KEY": "compose-test-secret-key-not-for-production"}

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text, variables):
    """Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}."""
    out, pos = [], 0
    while True:
        match = re.search(r"\$", text[pos:])
        if not match:
            return "".join(out) + text[pos:]
        start = pos + match.start()
        out.append(text[pos:start])
        rest = text[start:]
        if rest.startswith("$$"):
            out.append("$")
            pos = start + 2
        elif rest.startswith("${"):
            # Find the matching brace: defaults may hold nested ${...}.
            depth, end = 0, None
            for index, char in enumerate(rest):
                if char == "{":
                    depth += 1
                elif char == "}":
                    depth -= 1
                    if depth == 0:
                        end = index
                        break
            assert end is not None, f"unbalanced braces in {text!r}"
            out.append(_expand(rest[2:end], variables))
            pos = start + end + 1
        else:
            named = re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)", rest)
            assert named, f"a lone $ in {text!r}"
            out.append(variables.get(named.group(1), ""))
            pos = start + named.end()


def _expand(expression, variables):
    name = re.match(r"[A-Za-z_][A-Za-z0-9_]*", expression).group(0)
    operator, argument = expression[len(name) : len(name) + 2], expression[len(name) + 2 :]
    value = variables.get(name)
    if operator in (":-", ":?"):
        unset = not value
    else:
        operator, argument = expression[len(name) : len(name) + 1], expression[len(name) + 1 :]
        unset = value is None
    if operator == "":
        return value or ""
    if operator.endswith("-"):
        return interpolate(argument, variables) if unset else value
    if operator.endswith("?"):
        if unset:
            raise AssertionError(f"compose would refuse to start: {name}: {argument}")
        return value
    raise AssertionError(f"unsupported interpolation ${{{expression}}}")


def service(name):
    """(argv, environment) of a compose service, interpolated as compose would."""
    spec = COMPOSE["services"][name]
    command = spec["command"]
    assert isinstance(command, list), f"{name}: write command as a list, so no shell-splitting rules differ"
    argv = [interpolate(part, OPERATOR_ENV) for part in command]
    environment = {key: interpolate(str(value), OPERATOR_ENV) for key, value in spec.get("environment", {}).items()}
    return argv, environment


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """One compose service's command as a local process group, logging to a file."""

    def __init__(self, name, tmp_path, **overrides):
        argv, environment = service(name)
        self.name = name
        self.log_path = tmp_path / f"{name}.log"
        env = {
            # The process sees the compose environment, not the test's.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", str(tmp_path)),
            "LANG": "C.UTF-8",
            **environment,
            # Pointed at this test's database and Redis, and a writable data folder.
            "DATABASE_URL": database_url_for_subprocess(),
            "REDIS_URL": settings.REDIS_URL,
            "DATA_DIR": str(tmp_path / "data"),
            **overrides,
        }
        # The image creates its data folder; so does this test.
        (tmp_path / "data").mkdir(exist_ok=True)
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self):
        return self.log_path.read_text(errors="replace")

    def assert_running(self):
        assert self.process.poll() is None, f"{self.name} exited with {self.process.returncode}:\n{self.output()}"

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()


@pytest.fixture
def run_service(transactional_db, tmp_path):
    import redis

    # A clean broker: nothing queued by earlier tests reaches these processes.
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    started = []

    def start(name, **overrides):
        process = Service(name, tmp_path, **overrides)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def test_compose_declares_the_stack_from_one_image():
    services = COMPOSE["services"]

    assert {"db", "redis", "web", "worker", "beat"} <= set(services)
    assert services["db"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert {services[name]["image"] for name in ("web", "worker", "beat")} == {"crm-app:latest"}
    assert all(services[name]["build"] == "." for name in ("web", "worker", "beat"))
    assert "/health/" in " ".join(services["web"]["healthcheck"]["test"])
    _argv, environment = service("web")
    assert environment["DEBUG"] == "false"


def test_compose_refuses_to_start_without_a_secret_key():
    with pytest.raises(AssertionError, match="SECRET_KEY"):
        interpolate(COMPOSE["services"]["web"]["environment"]["SECRET_KEY"], {})


@pytest.mark.postgres
@pytest.mark.redis
def test_web_command_migrates_collects_static_and_serves(run_service):
    # given the web service's command on a free port
    port = free_port()
    web = run_service("web", PORT=str(port))
    base = f"http://127.0.0.1:{port}"

    # when gunicorn is up
    def health():
        web.assert_running()
        try:
            return requests.get(f"{base}/health/", timeout=10)
        except (requests.ConnectionError, requests.Timeout):
            return None

    response = wait_until(health, timeout=90, interval=0.3, message="the web service to answer /health/")

    # then it is healthy, the API wants a token, and static files are served
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    unauthenticated = requests.get(f"{base}/api/v1/customers/", timeout=30)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["code"] == "not_authenticated"
    assert requests.get(f"{base}/static/admin/css/base.css", timeout=30).status_code == 200
    assert requests.get(f"{base}/admin/login/", timeout=30).status_code == 200


@pytest.mark.postgres
@pytest.mark.redis
def test_worker_command_runs_a_task(run_service):
    from crm.celery import app

    # given the worker service's command
    worker = run_service("worker")

    def ready():
        worker.assert_running()
        return "ready." in worker.output()

    wait_until(ready, timeout=60, interval=0.3, message="the worker to start")

    # when a task is sent through Redis
    task_id = app.send_task("crm.ping").id

    # then the worker ran it and it answered pong
    def done():
        worker.assert_running()
        return re.search(rf"Task crm\.ping\[{task_id}\] succeeded in [0-9.e-]+s: 'pong'", worker.output())

    wait_until(done, timeout=30, interval=0.2, message=f"crm.ping[{task_id}] in the worker log")


@pytest.mark.postgres
@pytest.mark.redis
def test_beat_command_sends_scheduled_tasks_that_the_worker_runs(run_service):
    # given beat and a worker, with the heartbeat due every second
    worker = run_service("worker")
    beat = run_service("beat", BEAT_HEARTBEAT_SECONDS="1")

    # when beat has been running for a moment
    def sent():
        beat.assert_running()
        return "Sending due task crm.heartbeat (crm.ping)" in beat.output()

    wait_until(sent, timeout=60, interval=0.3, message="beat to send the heartbeat")

    # then the worker runs what beat sent, and beat keeps its schedule in the data folder
    def ran():
        worker.assert_running()
        return re.search(r"Task crm\.ping\[[0-9a-f-]+\] succeeded in [0-9.e-]+s: 'pong'", worker.output())

    wait_until(ran, timeout=60, interval=0.3, message="the worker to run the heartbeat")
    assert list((beat.log_path.parent / "data").glob("celerybeat-schedule*"))
