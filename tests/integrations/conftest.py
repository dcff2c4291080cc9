import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Receiver:
    """A local webhook receiver: answers from a script of responses, records every request."""

    def __init__(self):
        self.requests = []
        self.script = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    status, headers, text = receiver.script.pop(0) if receiver.script else (200, {}, "ok")
                payload = text.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/crm?source=test"

    def respond(self, *responses):
        """Queue responses: (status,) or (status, headers) or (status, headers, text)."""
        with self.lock:
            for response in responses:
                status = response[0]
                headers = response[1] if len(response) > 1 else {}
                text = response[2] if len(response) > 2 else ""
                self.script.append((status, headers, text or json.dumps({"status": status})))

    def count(self):
        with self.lock:
            return len(self.requests)


@pytest.fixture
def receiver():
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def private_targets(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    return settings
