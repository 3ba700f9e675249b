"""Remove secrets from text before it is stored or exported (output tails, command lines)."""

import re

_MASK = "[REDACTED]"
_RULES = [
    # key=value / key: value for secret-looking keys
    (re.compile(r"(?i)\b((?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret|auth)"
                r"\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"), lambda m: m.group(1) + _MASK),
    # Authorization headers and bearer tokens
    (re.compile(r"(?i)\b(authorization\s*:\s*(?:basic|bearer|token)\s+)\S+"), lambda m: m.group(1) + _MASK),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), lambda m: m.group(1) + _MASK),
    # credentials inside URLs: scheme://user:pass@host
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@"), lambda m: m.group(1) + _MASK + "@"),
    # command-line flags: --password X, -p=X is too ambiguous to touch
    (re.compile(r"(?i)(--(?:password|passwd|pwd|token|secret|api-key|apikey)(?:=|\s+))(\S+)"), lambda m: m.group(1) + _MASK),
    # well-known token shapes
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), lambda m: _MASK),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), lambda m: _MASK),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"), lambda m: _MASK),
]


# Every rule above needs one of these words or shapes (in any case): text without any (most of
# it) is returned after one scan instead of one per rule. Matched on the lower-cased text, as a
# case-insensitive pattern is ten times slower.
_MAYBE_SECRET = re.compile(r"pass|pwd|secret|token|key|auth|bearer|://|akia|asia|gh[pousr]_|xox")


def redact(text: str) -> str:
    if not _MAYBE_SECRET.search(text.lower()):
        return text
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text
