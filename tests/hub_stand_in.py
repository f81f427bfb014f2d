"""A stand-in for the Hub endpoints huggingface_hub calls to check a token and push a folder (127.0.0.1 only).

Answers what ``HfApi.whoami``, ``create_repo`` and ``upload_folder`` call: ``GET /api/whoami-v2``,
``POST /api/repos/create``, ``POST /api/validate-yaml`` (a README.md's metadata),
``POST /api/models/{repo}/preupload/{rev}`` (every file "regular", with no remote oid: sent inline in the commit,
so no Xet or LFS transfer follows and no file is skipped as unchanged) and ``POST /api/models/{repo}/commit/{rev}``
(NDJSON); anything else is a 404, and every request is recorded for the test to assert on.
:meth:`StandInHub.pushed` reads back the files of each commit.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD_TOKEN = "hf_standin_secret_token_123"
USER, ORG = "tester", "team"


class StandInHub:
    """A ThreadingHTTPServer on 127.0.0.1 with a random port; ``requests`` holds what arrived."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                hub._handle(self, "GET")

            def do_POST(self) -> None:
                hub._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 5
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "StandInHub":
        """Serve, and put huggingface_hub online for the duration: the caller's shell may have set
        HF_HUB_OFFLINE=1 (offline clusters do), which huggingface_hub reads once, at import."""
        import os

        from huggingface_hub import constants

        self._saved = (os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE)
        os.environ["HF_HUB_OFFLINE"] = "0"
        constants.HF_HUB_OFFLINE = False
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        import os

        from huggingface_hub import constants

        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        environ, constant = self._saved
        if environ is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = environ
        constants.HF_HUB_OFFLINE = constant

    def paths(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.requests]

    def commits(self) -> list[list[dict[str, Any]]]:
        """The NDJSON lines of every commit request."""
        return [[json.loads(line) for line in r["body"].splitlines() if line.strip()]
                for r in self.requests if "/commit/" in r["path"]]

    def pushed(self) -> list[dict[str, bytes]]:
        """The files of every commit, ``{path in repo: content}`` (the stand-in takes every file inline)."""
        return [{line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in commit
                 if line["key"] == "file"} for commit in self.commits()]

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        path = handler.path.split("?")[0]
        authorized = handler.headers.get("Authorization") == f"Bearer {GOOD_TOKEN}"
        status, answer = self._answer(method, path, body, authorized)
        self.requests.append({"method": method, "path": path, "body": body, "authorized": authorized,
                              "status": status})
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, method: str, path: str, body: str, authorized: bool) -> tuple[int, Any]:
        if not authorized:
            return 401, {"error": "Invalid credentials in Authorization header"}
        if method == "GET" and path == "/api/whoami-v2":
            return 200, {"type": "user", "name": USER, "orgs": [{"name": ORG}],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}}
        if method == "POST" and path == "/api/repos/create":
            payload = json.loads(body)
            owner = payload.get("organization") or USER
            return 200, {"url": f"{self.url}/{owner}/{payload['name']}", "name": f"{owner}/{payload['name']}"}
        if method == "POST" and path == "/api/validate-yaml":  # create_commit checks a README.md's metadata
            return _validate_card(json.loads(body)["content"])
        if method == "POST" and (match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/preupload/([^/]+)", path)):
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        if method == "POST" and (match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/([^/]+)", path)):
            return 200, {"commitUrl": f"{self.url}/{match.group(1)}/commit/{'a' * 40}", "commitOid": "a" * 40,
                         "success": True}
        return 404, {"error": f"stand-in Hub does not serve {method} {path}"}


def _validate_card(content: str) -> tuple[int, Any]:
    """What the Hub checks of a model card, in part: the metadata parses and its model-index is well formed."""
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    try:
        data = ModelCard(content).data.to_dict()
        if "model-index" in data:
            model_index_to_eval_results(data["model-index"])
    except Exception as error:
        return 400, {"errors": [{"message": f"{type(error).__name__}: {error}"}]}
    return 200, {"warnings": [], "errors": []}
