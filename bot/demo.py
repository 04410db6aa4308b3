"""The `backend-review demo` repository: a small orders service and a PR that plants backend defects.

The files are kept as strings so that linters of this project never mistake the planted defects for
our own code. ``BASE`` is the main branch; ``PR`` lists the files the pull request adds or changes.
"""

from __future__ import annotations

PR_TITLE = "Add user lookup, password reset and payment webhooks"
PR_BODY = (
    "This adds the user search endpoint, moves password hashing into the users module, "
    "notifies the billing service on new orders and verifies payment-provider webhooks."
)

BASE: dict[str, str] = {
    "README.md": "# orders-service\n\nA small Flask service that stores users and their orders.\n",
    "requirements.txt": "flask==3.0.3\nrequests==2.32.3\nPyJWT==2.9.0\npsycopg2-binary==2.9.9\n",
    "app/__init__.py": """from flask import Flask

from app.orders import orders
from app.users import users


def create_app() -> Flask:
    app = Flask(__name__)
    app.register_blueprint(users)
    app.register_blueprint(orders)
    return app
""",
    "app/db.py": """import os

import psycopg2
import psycopg2.extras


def connect():
    return psycopg2.connect(os.environ["DATABASE_URL"], cursor_factory=psycopg2.extras.RealDictCursor)
""",
    "app/users.py": """from flask import Blueprint, jsonify

from app.db import connect

users = Blueprint("users", __name__)


@users.get("/users/<int:user_id>")
def get_user(user_id: int):
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name, email FROM users WHERE id = %s", (user_id,))
        row = cur.fetchone()
    if row is None:
        return jsonify(error="not found"), 404
    return jsonify(row)
""",
    "app/orders.py": """from flask import Blueprint, jsonify, request

from app.db import connect

orders = Blueprint("orders", __name__)


@orders.post("/orders")
def create_order():
    data = request.get_json(force=True)
    with connect() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO orders (user_id, total_cents) VALUES (%s, %s) RETURNING id",
            (data["user_id"], data["total_cents"]),
        )
        order_id = cur.fetchone()["id"]
    return jsonify(id=order_id), 201
""",
    "migrations/001_init.sql": """CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    legacy_id INTEGER
);

CREATE TABLE orders (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    total_cents INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
""",
}

PR: dict[str, str] = {
    "app/users.py": """import hashlib
import logging

import jwt
from flask import Blueprint, jsonify, request

from app.db import connect

users = Blueprint("users", __name__)
logger = logging.getLogger(__name__)


@users.get("/users/<int:user_id>")
def get_user(user_id: int):
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name, email FROM users WHERE id = %s", (user_id,))
        row = cur.fetchone()
    if row is None:
        return jsonify(error="not found"), 404
    return jsonify(row)


@users.get("/users/search")
def search_users():
    name = request.args.get("name", "")
    with connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, name, email FROM users WHERE name = '{name}'")
        return jsonify(cur.fetchall())


def hash_password(password: str) -> str:
    return hashlib.md5(password.encode()).hexdigest()


@users.post("/users/me/password")
def change_password():
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    logger.info("password change for token=%s", token)
    new_hash = hash_password(request.get_json(force=True)["password"])
    with connect() as conn, conn.cursor() as cur:
        cur.execute("UPDATE users SET password_hash = %s WHERE id = %s", (new_hash, claims["sub"]))
    return "", 204
""",
    "app/orders.py": """import hashlib
import hmac
import os

import requests
from flask import Blueprint, jsonify, request

from app.db import connect

orders = Blueprint("orders", __name__)
BILLING_URL = os.environ.get("BILLING_URL", "http://billing.internal/orders")
WEBHOOK_SECRET = os.environ["PAYMENT_WEBHOOK_SECRET"].encode()


@orders.post("/orders")
def create_order():
    data = request.get_json(force=True)
    with connect() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO orders (user_id, total_cents) VALUES (%s, %s) RETURNING id",
            (data["user_id"], data["total_cents"]),
        )
        order_id = cur.fetchone()["id"]
    try:
        requests.post(BILLING_URL, json={"order_id": order_id})
    except Exception:
        pass
    return jsonify(id=order_id), 201


@orders.get("/orders/summary")
def orders_summary():
    summary = []
    with connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, name FROM users")
        for user in cur.fetchall():
            cur.execute("SELECT count(*) AS n FROM orders WHERE user_id = %s", (user["id"],))
            summary.append({"user": user["name"], "orders": cur.fetchone()["n"]})
    return jsonify(summary)


@orders.post("/webhooks/payments")
def payment_webhook():
    signature = request.headers.get("X-Signature", "")
    expected = hmac.new(WEBHOOK_SECRET, request.get_data(), hashlib.sha256).hexdigest()
    if signature == expected:
        return "", 204
    return jsonify(error="bad signature"), 401
""",
    "migrations/002_orders_index.sql": """ALTER TABLE users DROP COLUMN legacy_id;
ALTER TABLE users ADD COLUMN password_hash TEXT;

CREATE TABLE refunds (
    id BIGSERIAL PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES orders (id),
    amount_cents INTEGER NOT NULL
);

CREATE INDEX idx_orders_user ON orders (user_id);
""",
}
