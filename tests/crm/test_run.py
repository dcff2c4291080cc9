"""run.py, the README's two commands: the virtualenv stamp, and a real `python3 run.py` serving the demo."""

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, wait_until


@pytest.fixture
def run_module(tmp_path, monkeypatch):
    """run.py loaded as a module, its virtualenv and requirements pointed into tmp_path."""
    spec = importlib.util.spec_from_file_location("run_under_test", ROOT / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("Django==5.2.19\n")
    monkeypatch.setattr(module, "VENV", venv)
    monkeypatch.setattr(module, "STAMP", venv / ".requirements.sha256")
    monkeypatch.setattr(module, "REQUIREMENTS", requirements)
    calls = []

    def run(args, **kwargs):
        # pip is the only subprocess venv_ensure starts; record it instead of installing.
        calls.append([str(a) for a in args])
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(module.subprocess, "run", run)
    module.pip_calls = calls
    return module


def test_setup_installs_once_then_only_when_requirements_change(run_module):
    # given a virtualenv without a stamp
    # when set up twice
    run_module.venv_ensure()
    run_module.venv_ensure()

    # then requirements were installed once, and the stamp holds their hash
    assert len(run_module.pip_calls) == 1
    assert run_module.pip_calls[0][-3:] == ["install", "-r", str(run_module.REQUIREMENTS)]
    assert run_module.STAMP.read_text().strip() == run_module.requirements_hash()

    # when requirements.txt changes, the next setup installs again
    run_module.REQUIREMENTS.write_text("Django==5.2.19\nrequests==2.34.2\n")
    run_module.venv_ensure()
    assert len(run_module.pip_calls) == 2


def test_a_failed_install_leaves_no_stamp(run_module, monkeypatch):
    def failing(args, **kwargs):
        raise subprocess.CalledProcessError(1, args)

    monkeypatch.setattr(run_module.subprocess, "run", failing)

    with pytest.raises(subprocess.CalledProcessError):
        run_module.venv_ensure()
    assert not run_module.STAMP.exists()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_run_py(data_dir, port, log):
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "CRM_REQUIRE_ALL_TESTS", "DJANGO_SETTINGS_MODULE", "DEBUG")}
    # The embedded default, in a data folder of its own, with this test run's virtualenv.
    env.update({"DATA_DIR": str(data_dir), "CRM_VENV": sys.prefix, "PYTHONUNBUFFERED": "1"})
    return subprocess.Popen(
        [sys.executable, "run.py", "--port", str(port), "--demo-customers", "20", "--demo-interactions", "200"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def serve_until_healthy(tmp_path, name):
    port = free_port()
    log_path = tmp_path / f"{name}.log"
    log = open(log_path, "wb")
    process = start_run_py(tmp_path / "data", port, log)

    def healthy():
        assert process.poll() is None, f"run.py exited with {process.returncode}:\n{log_path.read_text()}"
        try:
            return requests.get(f"http://127.0.0.1:{port}/health/", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(healthy, timeout=240, interval=0.5, message="python3 run.py to serve /health/")
    except BaseException:
        stop(process)
        log.close()
        raise
    return process, port, log, log_path


def test_run_py_migrates_loads_the_demo_prints_a_login_and_serves(tmp_path):
    # given a fresh data folder
    # when `python3 run.py` has started
    process, port, log, log_path = serve_until_healthy(tmp_path, "first")
    try:
        output = log_path.read_text()
        base = f"http://127.0.0.1:{port}"
        saved = json.loads((tmp_path / "data" / "demo-login.json").read_text())

        # then it says where to go and how to sign in, and the login and token work
        assert f"{base}/admin/" in output and f"{base}/api/docs/" in output
        assert f"username: admin   password: {saved['password']}" in output
        assert saved["token"] in output
        assert "Demo data: 20 customers" in output
        # and, with no broker, the scheduler runs beside the server (its schedule file appears)
        wait_until(lambda: any((tmp_path / "data").glob("celerybeat-schedule*")), timeout=60,
                   message="celery beat to start beside the server")
        customers = requests.get(f"{base}/api/v1/customers/", headers={"Authorization": f"Bearer {saved['token']}"},
                                 timeout=30)
        assert customers.status_code == 200
        assert customers.json()["count"] == 20
        session = requests.Session()
        login_page = session.get(f"{base}/admin/login/", timeout=30)
        assert login_page.status_code == 200
        signed_in = session.post(
            f"{base}/admin/login/?next=/admin/",
            data={"username": "admin", "password": saved["password"],
                  "csrfmiddlewaretoken": session.cookies["csrftoken"], "next": "/admin/"},
            headers={"Referer": f"{base}/admin/login/"},
            timeout=30,
        )
        assert signed_in.status_code == 200 and signed_in.url == f"{base}/admin/"
        assert session.get(f"{base}/api/docs/", timeout=30).status_code == 200
    finally:
        stop(process)
        log.close()

    # when it is started again on the same data folder
    process, port, log, log_path = serve_until_healthy(tmp_path, "second")
    try:
        output = log_path.read_text()
        # then the demo is not loaded twice and the same login still works
        assert "demo data not loaded" in output
        assert f"password: {saved['password']}" in output and saved["token"] in output
        again = requests.get(f"http://127.0.0.1:{port}/api/v1/customers/",
                             headers={"Authorization": f"Bearer {saved['token']}"}, timeout=30)
        assert again.json()["count"] == 20
    finally:
        stop(process)
        log.close()
    assert Path(tmp_path / "data" / "crm.sqlite3").exists()
