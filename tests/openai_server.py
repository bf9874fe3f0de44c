"""A real local HTTP server speaking the OpenAI chat-completions protocol, answering from a script.

Each POST /v1/chat/completions takes the next step of the script:
  {"content": str, "reasoning_content": str, "reasoning": str, "finish_reason": str}  an answer
  {"status": 429}            an HTTP error (with Retry-After of 10 ms, so the client's backoff stays short)
  {"drop": True}             close the connection without answering
  {"drop_after": n, ...}     a streamed answer that breaks off after n events
  {"delay": seconds, ...}    wait first
  {"match": text, ...}       only for a prompt containing `text` (concurrent problems each get their own steps)
Each call takes the first remaining step that matches; when none does, `default` answers.
Run it as a program to serve a JSON script file: python tests/openai_server.py SCRIPT.json PORT_FILE
"""
from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NO_CODE = {"content": "I could not find a better kernel."}


class ScriptedServer:
    def __init__(self, script: list[dict], default: dict | None = None, models: list[str] | None = ("deepseek-r1",),
                 api_key: str | None = None):
        self.script, self.default, self.models, self.api_key = list(script), default or NO_CODE, models, api_key
        self.requests: list[dict] = []  # the bodies of chat calls, in arrival order (including refused ones)
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if not self.path.rstrip("/").endswith("/models") or server.models is None:
                    return self.reply(404, {"error": {"message": "not found"}})
                if not server.authorized(self):
                    return self.reply(401, {"error": {"message": "invalid api key"}})
                self.reply(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test"}
                                                            for m in server.models]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                prompt = body["messages"][0]["content"]
                if not server.authorized(self):
                    return self.reply(401, {"error": {"message": "invalid api key"}})
                with server.lock:
                    server.requests.append(body)
                    step = next((s for s in server.script if s.get("match", "") in prompt), server.default)
                    if step is not server.default:
                        server.script.remove(step)
                time.sleep(step.get("delay", 0))
                if step.get("drop"):
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if "status" in step:
                    return self.reply(step["status"], {"error": {"message": f"scripted {step['status']}"}},
                                      {"Retry-After-Ms": "10"})
                message = {"role": "assistant", "content": step.get("content", "")}
                for key in ("reasoning_content", "reasoning"):
                    if key in step:
                        message[key] = step[key]
                tokens = step.get("completion_tokens", len(message["content"].split()))
                usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": tokens, "total_tokens": tokens,
                         "completion_tokens_details": {"reasoning_tokens": step.get("reasoning_tokens", 0)}}
                head = {"id": f"chatcmpl-{len(server.requests)}", "created": int(time.time()),
                        "model": body.get("model", "")}
                finish = step.get("finish_reason", "stop")
                try:
                    if body.get("stream"):
                        return self.stream(head, message, finish, usage, step.get("drop_after"))
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client hung up (a call cancelled at the end of a budget)
                self.reply(200, {**head, "object": "chat.completion", "usage": usage,
                                 "choices": [{"index": 0, "message": message, "finish_reason": finish}]})

            def stream(self, head: dict, message: dict, finish: str, usage: dict, drop_after: int | None):
                """Server-sent events as OpenAI sends them: reasoning and content in pieces, a finish, usage, [DONE].
                `drop_after` closes the connection after that many events."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                events = []
                for key in ("reasoning_content", "reasoning", "content"):
                    text = message.get(key, "")
                    for i in range(0, len(text), 40):
                        events.append({"index": 0, "delta": {key: text[i:i + 40]}, "finish_reason": None})
                events.append({"index": 0, "delta": {}, "finish_reason": finish})
                chunks = [{**head, "object": "chat.completion.chunk", "choices": [e]} for e in events]
                chunks.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
                for n, chunk in enumerate(chunks):
                    if drop_after is not None and n == drop_after:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

            def reply(self, status: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def authorized(self, handler) -> bool:
        return self.api_key is None or handler.headers.get("Authorization") == f"Bearer {self.api_key}"

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fenced(code: str, before: str = "Here is the kernel.") -> str:
    return f"{before}\n\n```python\n{code.strip()}\n```\n"


if __name__ == "__main__":
    script = json.loads(open(sys.argv[1]).read())
    with ScriptedServer(script["steps"], script.get("default")) as srv:
        with open(sys.argv[2], "w") as f:
            f.write(srv.url)
        threading.Event().wait()
