"""A local fake of the Stripe and Razorpay HTTP APIs, for the real SDKs to talk to.

Only what Coinpurse calls: Stripe ``POST /v1/checkout/sessions`` (form-encoded, honouring
``Idempotency-Key``), ``GET /v1/checkout/sessions/{id}`` and the list ``GET
/v1/checkout/sessions`` (``created[gte|lt]``, ``status``, ``limit``, ``starting_after``,
newest first, as Stripe pages); Razorpay ``POST /v1/orders`` (JSON, HTTP basic auth) and
``GET /v1/payments`` (``from``, ``to``, ``count``, ``skip``). It records every request so
tests can check what was sent.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit


@dataclass
class FakeState:
    stripe_key: str = ""
    razorpay_auth: tuple[str, str] = ("", "")
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_idempotency_key: dict[str, str] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)  # Razorpay's
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fail_next: int = 0  # answer this many requests with an error
    counter: int = 0

    def reset(self) -> None:
        self.sessions.clear()
        self.by_idempotency_key.clear()
        self.orders.clear()
        self.payments.clear()
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

    def capture_order(self, order_id: str, amount: int | None = None) -> dict[str, Any]:
        """A Razorpay payment of the order, captured now."""
        order = self.orders[order_id]
        payment = {"id": self.next_id("pay_test_"), "entity": "payment",
                   "amount": order["amount"] if amount is None else amount,
                   "currency": order["currency"], "status": "captured",
                   "order_id": order_id, "notes": order.get("notes") or [],
                   "created_at": int(time.time())}
        self.payments[payment["id"]] = payment
        order["status"] = "paid"
        return payment

    def _authorized(self, handler: BaseHTTPRequestHandler, provider: str) -> bool:
        if provider == "stripe":
            return handler.headers.get("Authorization") == f"Bearer {self.stripe_key}"
        expected = base64.b64encode(":".join(self.razorpay_auth).encode()).decode()
        return handler.headers.get("Authorization") == f"Basic {expected}"

    def list_sessions(self, query: dict[str, list[str]]) -> dict[str, Any]:
        def one(name: str) -> str | None:
            return query[name][0] if name in query else None

        found = sorted(self.sessions.values(), key=lambda x: (x["created"], x["id"]),
                       reverse=True)
        if (gte := one("created[gte]")) is not None:
            found = [x for x in found if x["created"] >= int(gte)]
        if (lt := one("created[lt]")) is not None:
            found = [x for x in found if x["created"] < int(lt)]
        if (status := one("status")) is not None:
            found = [x for x in found if x["status"] == status]
        if (after := one("starting_after")) is not None:
            ids = [x["id"] for x in found]
            found = found[ids.index(after) + 1:] if after in ids else []
        limit = int(one("limit") or 10)
        return {"object": "list", "url": "/v1/checkout/sessions", "data": found[:limit],
                "has_more": len(found) > limit}

    def list_payments(self, query: dict[str, list[str]]) -> dict[str, Any]:
        start = int(query.get("from", ["0"])[0])
        end = int(query.get("to", [str(2**62)])[0])
        count, skip = int(query.get("count", ["10"])[0]), int(query.get("skip", ["0"])[0])
        found = sorted((p for p in self.payments.values() if start <= p["created_at"] <= end),
                       key=lambda p: (p["created_at"], p["id"]), reverse=True)
        page = found[skip:skip + count]
        return {"entity": "collection", "count": len(page), "items": page}


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
        url = urlsplit(self.path)
        if url.path in ("/v1/checkout/sessions", "/v1/payments"):
            provider = "stripe" if url.path.startswith("/v1/checkout") else "razorpay"
            if not st._authorized(self, provider):
                self._send(401, {"error": {"message": "bad key"}})
                return
            query = parse_qs(url.query)
            st.requests.append((provider, url.path, {k: v[0] for k, v in query.items()}))
            self._send(200, st.list_sessions(query) if provider == "stripe"
                       else st.list_payments(query))
            return
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
                "created": int(time.time()),
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
