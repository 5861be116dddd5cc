#!/usr/bin/env python3
"""A stand-in for the one E2B control-plane call sandbox-mount makes: POST /v2/sandboxes/{id}/connect.

It answers as E2B's API does (spec/openapi.yml's Sandbox and Error models): the X-API-KEY header
must match, an unknown sandbox is a 404, and a known one gets its envd version and access token.
Prints "listening on http://127.0.0.1:PORT" once ready. Each request is appended to --log as one
JSON line, so tests can check what was sent.
"""
import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--sandbox", required=True, help="the one sandbox ID that exists")
    parser.add_argument("--envd-version", default="0.6.13")
    parser.add_argument("--envd-token", help="absent: an insecure sandbox, without envdAccessToken")
    parser.add_argument("--domain", help="the sandbox's domain field (default: null)")
    parser.add_argument("--paused", action="store_true", help="the first connect resumes (201)")
    parser.add_argument("--hang", action="store_true", help="accept requests, never answer")
    parser.add_argument("--log", help="append each request here as a JSON line")
    options = parser.parse_args()
    state = {"paused": options.paused}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            pass

        def answer(self, status, document):
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def error(self, status, message):
            self.answer(status, {"code": status, "message": message})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if options.log:
                with open(options.log, "a") as log:
                    entry = {"path": self.path, "apiKey": self.headers.get("X-API-KEY"),
                             "contentType": self.headers.get("Content-Type"),
                             "body": raw.decode(errors="replace")}
                    log.write(json.dumps(entry) + "\n")
            if options.hang:
                time.sleep(3600)
                return
            parts = self.path.split("/")
            if len(parts) != 5 or parts[:3] != ["", "v2", "sandboxes"] or parts[4] != "connect":
                return self.error(404, "no such route")
            if self.headers.get("X-API-KEY") != options.api_key:
                return self.error(401, "Invalid API key, it must start with 'e2b_' prefix")
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return self.error(400, "request body is not JSON")
            if not isinstance(body, dict) or not isinstance(body.get("timeout", 0), int):
                return self.error(400, "timeout must be an integer")
            sandbox_id = parts[3]
            if sandbox_id != options.sandbox:
                return self.error(404, f"sandbox \"{sandbox_id}\" doesn't exist or you don't have access to it")
            resumed = state["paused"]
            state["paused"] = False
            sandbox = {"templateID": "rki5dems9wqfm4r03t7g", "sandboxID": sandbox_id,
                       "clientID": "6532622b", "envdVersion": options.envd_version,
                       "alias": "base", "trafficAccessToken": None, "domain": options.domain}
            if options.envd_token is not None:
                sandbox["envdAccessToken"] = options.envd_token
            self.answer(201 if resumed else 200, sandbox)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
