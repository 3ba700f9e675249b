"""Secrets never reach the journal, the metrics or a report: every redaction rule, any case."""

import pytest

from botwatch.core.redact import redact

SECRETS = [
    ("password=hunter2", "hunter2"),
    ("PASSWORD: 'hunter2'", "hunter2"),
    ("Pwd=hunter2;Server=db", "hunter2"),
    ("api_key=abcdef123456", "abcdef123456"),
    ("Client-Secret: s3cr3tvalue", "s3cr3tvalue"),
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("got Bearer eyJhbGciOiJIUzI1NiJ9.x.y back", "eyJhbGciOiJIUzI1NiJ9.x.y"),
    ("https://svc:hunter2@orchestrator.example.com/odata", "hunter2"),
    ("robot --Token abc123def run", "abc123def"),
    ("key id AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
    ("ghp_" + "a" * 36, "a" * 36),
    ("xoxb-1234567890-abcdef", "xoxb-1234567890-abcdef"),
]


@pytest.mark.parametrize("text, secret", SECRETS)
def test_each_rule_removes_its_secret(text, secret):
    out = redact(text)
    assert secret not in out and "[REDACTED]" in out


@pytest.mark.parametrize("text", [
    "Click 'Speichern': SelectorNotFoundException",
    "订单 12345 处理失败 – Überweisung",
    "The browser was not specified for this activity.",
    "",
])
def test_text_without_a_secret_is_left_as_it_is(text):
    assert redact(text) == text
