"""A local fake of the Stripe and Razorpay HTTP APIs, for the real SDKs to talk to.

Only what Coinpurse calls: Stripe ``POST /v1/checkout/sessions`` (form-encoded, honouring
``Idempotency-Key``) and ``GET /v1/checkout/sessions/{id}``; Razorpay ``POST /v1/orders``
(JSON, HTTP basic auth). It records every request so tests can check what was sent.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class FakeState:
    stripe_key: str = ""
    razorpay_auth: tuple[str, str] = ("", "")
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_idempotency_key: dict[str, str] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fail_next: int = 0  # answer this many requests with an error
    counter: int = 0

    def reset(self) -> None:
        self.sessions.clear()
        self.by_idempotency_key.clear()
        self.orders.clear()
        self.requests.clear()
        self.fail_next = 0

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:06d}"

    def pay_session(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        session.update(payment_status="paid", status="complete",
                       payment_intent=self.next_id("pi_test_"))
        return session


class _Handler(BaseHTTPRequestHandler):
    state: FakeState

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        st = self.state
        if self.path.startswith("/v1/checkout/sessions/"):
            if self.headers.get("Authorization") != f"Bearer {st.stripe_key}":
                self._send(401, {"error": {"type": "invalid_request_error",
                                           "message": "bad key"}})
                return
            session = st.sessions.get(self.path.rsplit("/", 1)[1])
            if session is None:
                self._send(404, {"error": {"type": "invalid_request_error",
                                           "message": "No such checkout.session"}})
                return
            self._send(200, session)
            return
        self._send(404, {"error": {"message": "no route"}})

    def do_POST(self) -> None:
        st = self.state
        raw = self._body()
        if st.fail_next > 0:
            st.fail_next -= 1
            if self.path.startswith("/v1/orders"):
                self._send(500, {"error": {"code": "SERVER_ERROR",
                                           "description": "fake outage"}})
            else:
                self._send(400, {"error": {"type": "invalid_request_error",
                                           "message": "fake refusal"}})
            return
        if self.path == "/v1/checkout/sessions":
            if self.headers.get("Authorization") != f"Bearer {st.stripe_key}":
                self._send(401, {"error": {"type": "invalid_request_error",
                                           "message": "bad key"}})
                return
            form = dict(parse_qsl(raw.decode()))
            st.requests.append(("stripe", self.path, form))
            key = self.headers.get("Idempotency-Key") or ""
            if key and key in st.by_idempotency_key:
                self._send(200, st.sessions[st.by_idempotency_key[key]])
                return
            sid = st.next_id("cs_test_")
            session = {
                "id": sid, "object": "checkout.session", "mode": "payment",
                "url": f"https://checkout.stripe.test/c/pay/{sid}",
                "payment_status": "unpaid", "status": "open", "payment_intent": None,
                "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
                "currency": form["line_items[0][price_data][currency]"],
                "client_reference_id": form.get("client_reference_id"),
                "metadata": {"order_id": form.get("metadata[order_id]")},
            }
            st.sessions[sid] = session
            if key:
                st.by_idempotency_key[key] = sid
            self._send(200, session)
            return
        if self.path == "/v1/orders":
            expected = base64.b64encode(":".join(st.razorpay_auth).encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                self._send(401, {"error": {"code": "BAD_REQUEST_ERROR",
                                           "description": "Authentication failed"}})
                return
            data = json.loads(raw)
            st.requests.append(("razorpay", self.path, data))
            oid = st.next_id("order_")
            order = {"id": oid, "entity": "order", "amount": data["amount"],
                     "currency": data["currency"], "receipt": data["receipt"],
                     "status": "created", "notes": data.get("notes", {})}
            st.orders[oid] = order
            self._send(200, order)
            return
        self._send(404, {"error": {"message": "no route"}})


class FakeProviders:
    """Both fakes on one local port: Stripe's routes and Razorpay's do not overlap."""

    def __init__(self) -> None:
        self.state = FakeState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
