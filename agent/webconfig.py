"""TLS and basic auth for the agent, configured like Prometheus' exporter web-config file:

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
    basic_auth_users:
      alice: $2y$10$...   # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .config import ConfigError


class _TLS(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cert_file: str
    key_file: str


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tls_server_config: _TLS | None = None
    basic_auth_users: dict[str, str] = {}

    def resolve(self, base: Path) -> "WebConfig":
        if self.tls_server_config:
            t = self.tls_server_config
            self.tls_server_config = _TLS(cert_file=str(base / t.cert_file), key_file=str(base / t.key_file))
        return self


def load_web_config(path: Path) -> WebConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        cfg = WebConfig.model_validate(data)
    except OSError as exc:
        raise ConfigError([f"{path}:0: cannot read web config: {exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}:1: YAML syntax error: {exc}"]) from None
    except ValidationError as exc:
        raise ConfigError([f"{path}:1: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from None
    for user, hashed in cfg.basic_auth_users.items():
        if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError([f"{path}:1: basic_auth_users.{user}: not a bcrypt hash"])
    return cfg.resolve(path.parent)


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes. bcrypt is slow on purpose, so a
    verified (user, password) pair is remembered by its SHA-256, as the exporter toolkit does."""

    def __init__(self, users: dict[str, str]):
        self.users = {u: h.encode() for u, h in users.items()}
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    def check(self, header: str | None) -> bool:
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = hashlib.sha256(hashed + b"\0" + password.encode()).digest()
        with self._lock:
            if key in self._verified:
                return True
        import bcrypt

        if bcrypt.checkpw(password.encode(), hashed):
            with self._lock:
                self._verified.add(key)
            return True
        return False


def keys_match(given: str, expected: str) -> bool:
    """Constant-time comparison of secrets."""
    return hmac.compare_digest(given.encode(), expected.encode())
