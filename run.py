#!/usr/bin/env python3
"""The two commands of the README, on a machine with nothing but Python 3.11+.

    python3 run.py              set up, load the demo data, serve http://127.0.0.1:8000
    python3 run.py test [ARGS]  set up, run the whole test suite (pytest ARGS)
    python3 run.py setup        only create/refresh the virtualenv

    python3 run.py [serve] [--port 8000] [--demo-customers 300] [--demo-interactions 10000]

The virtualenv lives in .venv (or $CRM_VENV). It is rebuilt when
requirements.txt changes: a stamp inside it holds the hash it was built from.
Only the standard library is used here, since nothing else is installed yet.
"""

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REQUIREMENTS = ROOT / "requirements.txt"
VENV = Path(os.environ.get("CRM_VENV") or ROOT / ".venv")
STAMP = VENV / ".requirements.sha256"
HOST = "127.0.0.1"

if sys.version_info < (3, 11):
    sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")


def say(message):
    print(f"==> {message}", flush=True)


def venv_python():
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def requirements_hash():
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(sys.version.split()[0].encode())
    return digest.hexdigest()


def venv_ensure():
    """Create the virtualenv if missing, (re)install requirements if they changed."""
    wanted = requirements_hash()
    if venv_python().exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if not venv_python().exists():
        say(f"Creating the virtualenv in {VENV}")
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        except (subprocess.CalledProcessError, OSError) as exc:
            sys.exit(
                f"Could not create a virtualenv ({exc}). On Debian/Ubuntu install the venv module first: "
                "sudo apt-get install python3-venv"
            )
    say("Installing requirements.txt (once, and again whenever it changes)")
    pip = [str(venv_python()), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "-r", str(REQUIREMENTS)], cwd=ROOT, check=True)
    STAMP.write_text(wanted + "\n")


def manage(*args, env=None, check=True):
    return subprocess.run([str(venv_python()), "manage.py", *args], cwd=ROOT, env=env, check=check)


# Run inside the virtualenv with Django set up: makes sure the demo admin and
# its API token exist and prints them as JSON. The raw token is only known at
# creation, so the demo credentials are kept in DATA_DIR (never committed).
DEMO_LOGIN = r"""
import json, secrets
from pathlib import Path
from django.conf import settings
from django.contrib.auth import get_user_model
from crm.api import SCOPES
from integrations.selectors import api_token_get_active
from integrations.services import api_token_create

path = Path(settings.DATA_DIR) / "demo-login.json"
saved = json.loads(path.read_text()) if path.exists() else {}
username = "admin"
password = saved.get("password") or secrets.token_urlsafe(12)
User = get_user_model()
user = User.objects.filter(username=username).first() or User(username=username, email=f"{username}@example.com")
user.is_staff = user.is_superuser = user.is_active = True
if not user.has_usable_password() or not user.check_password(password):
    user.set_password(password)
user.save()
token = saved.get("token")
live = api_token_get_active(raw=token) if token else None
if live is None or set(live.scopes) != set(SCOPES):
    token = api_token_create(name="demo (run.py)", scopes=list(SCOPES), created_by=user)[1]
path.write_text(json.dumps({"username": username, "password": password, "token": token}))

# Where to look first: a customer the demo merged from two people (a long multi-channel timeline).
from django.urls import NoReverseMatch, reverse
from customers.selectors import merge_list
merge = merge_list().first()
pages = {}
for name, args in (("agent_page", [merge.survivor_id] if merge else None), ("dashboard", [])):
    try:
        pages[name] = reverse("admin:customers_customer_agent" if name == "agent_page" else "admin:kpi_dashboard",
                              args=args) if args is not None else None
    except NoReverseMatch:
        pages[name] = None
print(json.dumps({"username": username, "password": password, "token": token, **pages}))
"""


def serve(port, demo_customers, demo_interactions):
    venv_ensure()
    # The local run is a development server: DEBUG on (so no SECRET_KEY is needed),
    # SQLite under var/ and tasks in-process unless DATABASE_URL / REDIS_URL say otherwise.
    env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "1")}
    say("Migrating the database")
    manage("migrate", "--noinput", "-v", "0", env=env)
    say("Loading the demo data (only into an empty database)")
    manage("load_demo_data", "--customers", str(demo_customers), "--interactions", str(demo_interactions), env=env)
    login = subprocess.run(
        [str(venv_python()), "manage.py", "shell", "-c", DEMO_LOGIN],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    credentials = json.loads(login.stdout.strip().splitlines()[-1])
    base = f"http://{HOST}:{port}"
    pages = ""
    if credentials.get("agent_page"):
        pages += f"\n  Agent's customer page (a demo customer)   {base}{credentials['agent_page']}"
    if credentials.get("dashboard"):
        pages += f"\n  KPI dashboard                             {base}{credentials['dashboard']}"
    print(
        f"""
  The CRM is starting on {base}

  Admin (customers, timelines, standards)   {base}/admin/{pages}
  API docs (Swagger UI)                     {base}/api/docs/
  OpenAPI schema                            {base}/api/schema/
  API root                                  {base}/api/v1/

  Admin login   username: {credentials['username']}   password: {credentials['password']}
  API token     {credentials['token']}
                (all scopes) e.g.  curl -H "Authorization: Bearer {credentials['token']}" {base}/api/v1/customers/

  Stop with Ctrl+C.
""",
        flush=True,
    )
    # A plain `kill` must stop the scheduler too: turn SIGTERM into an exit that runs `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    beat = None
    if not env.get("REDIS_URL"):
        # No broker, so no worker: beat runs each scheduled task in its own process as it falls due
        # (webhook retries, metrics recomputes, compliance watch, purges).
        say("Starting the scheduler (celery beat, tasks in-process)")
        data_dir = Path(env.get("DATA_DIR") or ROOT / "var")
        data_dir.mkdir(parents=True, exist_ok=True)
        beat = subprocess.Popen(
            [str(venv_python()), "-m", "celery", "-A", "crm", "beat", "--loglevel=WARNING",
             "-s", str(data_dir / "celerybeat-schedule")],
            cwd=ROOT,
            env=env,
        )
    try:
        return manage("runserver", f"{HOST}:{port}", env=env, check=False).returncode
    except KeyboardInterrupt:
        return 0
    finally:
        if beat is not None:
            beat.terminate()
            beat.wait(10)


def test(args):
    venv_ensure()
    result = subprocess.run([str(venv_python()), "-m", "pytest", *args], cwd=ROOT)
    return result.returncode


def main(argv):
    if argv[:1] == ["test"]:
        return test(argv[1:])
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "setup", "test"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    parser.add_argument("--demo-customers", type=int, default=300)
    parser.add_argument("--demo-interactions", type=int, default=10_000)
    options = parser.parse_args(argv)
    if options.command == "setup":
        venv_ensure()
        return 0
    return serve(options.port, options.demo_customers, options.demo_interactions)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(f"Failed: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}")
