"""Remove secrets from text before it is stored or exported (output tails, command lines).

Only the secret value is replaced by `[REDACTED]`; the key, flag or scheme in front of it and
the text around it stay, so that a redacted line still says what went wrong.

Every rule takes time linear in the text, hostile text too: a repeat that could scan on past
the next place where a match may start is bounded (`{0,300}`) or tried once per run of
characters (JWTs), never once per start (tests/test_adversarial_text.py).

What is recognised (docs and tests: tests/test_security.py holds one case of every shape):

- `key=value` and `key: value` (also quoted, JSON `"key": "value"`, ODBC `{value}`) for keys that
  name a secret: password, passwd, pass, pwd, passphrase, secret, token (access_token, ...),
  api_key, access_key, private_key, account_key (Azure AccountKey), client_secret, auth, and
  compounds ending in one (DB_PASSWORD, aws_secret_access_key, SECRET_KEY). A key word must start
  a word: `compass=`, `bypass=` or `monkey=` are left alone. A bare value ends at whitespace, or
  at `&`/`;` that start the next `key=` (query strings, connection strings).
- command-line options naming one: `--password X`, `--password=X`, `--db-password X`,
  `-Password X` (PowerShell), `--api-key X`, `--token X`. The value after a space is not taken
  when it looks like the next option (starts with `-`).
- short `-p`: only where it is unambiguous. `mysql`/`mariadb` tools take the password glued to
  the flag (`-pSECRET`; `-p NAME` prompts and NAME is a database) and `sshpass -p SECRET`. Any
  other `-p` (a port for ssh/docker, `mkdir -p`) is left alone; so is `-P3306`.
- `curl -u user:SECRET` / `--user user:SECRET` (curl only: `docker --user 1000:1000` is not one).
- credentials in URLs: `scheme://user:SECRET@host`, also without user (`redis://:SECRET@host`).
- `Authorization:` headers (Basic, Bearer, Token, Digest, Negotiate, NTLM, or a bare long
  token), `Bearer X`, `X-...-Key`/`X-...-Token`/`X-...-Secret` headers.
- Azure SAS `sig=`, the ping key in botwatch/Healthchecks check-in URLs (`/ping/KEY/...`).
- token shapes that need no key: AWS access key ids (AKIA/ASIA), GitHub (`ghp_`, `gho_`, ...,
  `github_pat_`), Slack (`xoxb-`, ...), Stripe (`sk_live_`, `rk_test_`), Google API keys
  (`AIza`), JWTs (`eyJ...eyJ...`), and PEM private key blocks (to the END line, or to the end of
  the text when the END line is not in it).
"""

import re
from collections.abc import Callable

_MASK = "[REDACTED]"

# Key words that name a secret, as the last part of a key (db_password, aws_secret_access_key).
_SECRET_WORD = (
    r"(?:pass(?:word|wd|phrase|(?![\"']?\s*:\s*\d+(?![^\s,;])))|pwd|pgpassword"  # not a count: "pass: 12"
    r"|(?:aws[_-]?)?secret(?:[_-]?access)?(?:[_-]?key)?"
    r"|(?:(?:access|refresh|auth|api|id|bearer|session|client|app|personal|private)[_-]?)?token"
    r"|(?:api|access|account|shared[_-]?access|private|auth|master|signing|encryption|subscription)[_-]?key"
    r"|apikey|client[_-]?secret|auth)"
)
# A bare value: up to whitespace, or up to `&`/`;` that start the next key=value.
_BARE_VALUE = r"(?:[^\s&;]|[&;](?![A-Za-z_][\w. -]{0,40}=))+"
# An ODBC `{value}` is taken as up to 256 characters (SQL Server's passwords: 128), longer ones
# as a bare value: a `{` does not end the value before it, so `\{[^}\n]*\}` would scan to the end
# of the line from every `pwd={` of a line of them.
_VALUE = r"(?!\[REDACTED\])(\"[^\"\n]*\"|'[^'\n]*'|\{[^}\n]{0,256}+\}|" + _BARE_VALUE + ")"
_OPTION_VALUE = r"(?!\[REDACTED\])(\"[^\"\n]*\"|'[^'\n]*'|(?!-)\S+)"

_KEY_WORDS = ("pass", "pwd", "secret", "token", "key", "auth")  # one of them is in every _SECRET_WORD


def _sub(mask_group: int | None = 1, keep_after: int | None = None) -> Callable[[re.Match[str]], str]:
    """A replacement: the text of group `mask_group` (what names the secret), the mask, then
    group `keep_after` when given; only the mask when `mask_group` is None."""
    def repl(m: re.Match[str]) -> str:
        head = m.group(mask_group) if mask_group else ""
        return head + _MASK + ((m.group(keep_after) or "") if keep_after else "")
    return repl


# (trigger words, pattern, replacement), applied in this order. A rule runs only when one of its
# trigger words is in the lower-cased text; its pattern cannot match without one. The fast
# precheck below is the union of all trigger words.
_RULES = [
    # mysql/mariadb -pSECRET (glued; -p alone prompts), sshpass -p SECRET
    (("mysql", "mariadb"),
     re.compile(r"((?i:\b(?:mysql(?:dump|admin|import|check|sh)?|mariadb(?:-dump|-admin|-import|-check)?)"
                r"(?:\.exe)?)\b[^\n]{0,300}?\s-p)(\S+)"), _sub()),
    (("sshpass",), re.compile(r"((?i:\bsshpass(?:\.exe)?)\b[^\n]{0,100}?\s-p\s*)(\S+)"), _sub()),
    # curl -u user:SECRET / --user user:SECRET
    (("curl",), re.compile(r"((?i:\bcurl(?:\.exe)?)\b[^\n]{0,300}?\s(?:-u\s*+|--user[=\s]\s*+)[\"']?[^\s:\"']*+:)"
                           r"([^\s\"']+)"), _sub()),
    # Authorization headers (with a scheme, or a bare long token), bearer tokens, X-...-Key headers
    (("authorization",), re.compile(r"(?i)\b(authorization\s*[=:]\s*(?:basic|bearer|token|digest|negotiate|ntlm)\s+)"
                                    r"\S+"), _sub()),
    (("authorization",), re.compile(r"(?i)\b(authorization\s*[=:]\s*)(?!(?:basic|bearer|token|digest|negotiate|ntlm)\b)"
                                    r"[A-Za-z0-9._~+/=-]{16,}"), _sub()),
    (("bearer",), re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), _sub()),
    (("key", "token", "secret", "signature", "auth", "pass"),
     re.compile(r"(?i)(?<![\w-])(x-[a-z0-9-]*(?:key|token|secret|signature|auth|password)\s*:\s*)(\S+)"), _sub()),
    # credentials inside URLs: scheme://user:pass@host, scheme://:pass@host
    # (a scheme starts a word: trying every position of a long token would take quadratic time)
    (("://",), re.compile(r"(?<![a-zA-Z0-9+.-])([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(@)"), _sub(1, 2)),
    # Azure shared access signatures: ...&sig=SECRET
    (("sig=",), re.compile(r"(?i)(?<![A-Za-z0-9])(sig=)[^\s&;\"']+"), _sub()),
    # botwatch / Healthchecks check-in URLs: /ping/<key>/<bot>
    (("/ping/",), re.compile(r"(/ping/)[^/\s?#\"']+(?=/)"), _sub()),
    # well-known token shapes
    (("akia", "asia"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), _sub(None)),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), _sub(None)),
    (("github_pat_",), re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"), _sub(None)),
    (("xox",), re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"), _sub(None)),
    (("k_live_", "k_test_"), re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"), _sub(None)),
    (("aiza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), _sub(None)),
    # JWTs: from the first `eyJ` of a run of token characters (`-eyJ` starts a word too), tried
    # once per run: every later `eyJ` of the run meets the same end of it, so the search would
    # only scan the rest of the run again from each, quadratic on `eyJaaaaaaaa-eyJaaaaaaaa-...`
    (("eyj",), re.compile(r"(?<![A-Za-z0-9_-])((?>[A-Za-z0-9_-]*?\b(?=eyJ[A-Za-z0-9_-]{8})))"
                          r"eyJ[A-Za-z0-9_-]{8,}+\.eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]*+"), _sub()),
    # PEM private keys: the body up to the END line, or all that follows when it is cut off
    (("private key",), re.compile(r"(-----BEGIN [A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----)(?:.*?(-----END [A-Z ]{0,40}"
                                  r"PRIVATE KEY(?: BLOCK)?-----)|.*)", re.S), _sub(1, 2)),
    # key=value / key: value / "key": "value" for secret-naming keys (last: the rules above have
    # shortened long tokens, which these two would otherwise scan again)
    (_KEY_WORDS, re.compile(r"(?i)(?<![A-Za-z0-9])(" + _SECRET_WORD + r"[\"']?\s*[=:]\s*)" + _VALUE), _sub()),
    # command-line options: --password X, --db-password=X, -Password X (not: --password-file X)
    (_KEY_WORDS, re.compile(r"(?i)(?<![\w-])(--?(?:[a-z0-9]+[-_])*" + _SECRET_WORD + r"(?:=|\s+))" + _OPTION_VALUE),
     _sub()),
]

# Text without any trigger word (most of it) is returned after this one scan instead of one per
# rule. Matched on the lower-cased text, as a case-insensitive pattern is ten times slower.
_MAYBE_SECRET = re.compile("|".join(sorted({re.escape(w) for words, _, _ in _RULES for w in words})))


def redact(text: str) -> str:
    low = text.lower()
    if not _MAYBE_SECRET.search(low):
        return text
    for words, pattern, repl in _RULES:
        if any(w in low for w in words):
            text = pattern.sub(repl, text)
    return text


# A URL's user information (user:password@, or a bare token@), up to the last @ before the path.
_URL_USERINFO = re.compile(r"(?<![a-zA-Z0-9+.-])([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s?#]*@")


def redact_url(text: str) -> str:
    """A URL, or a message naming URLs, fit for a log line or a terminal: each URL's user
    information replaced by `***` (`http://***@agent:9464`), and what `redact` masks (a
    `?token=` query, a ping key) masked."""
    text = str(text)
    if "@" in text:
        text = _URL_USERINFO.sub(r"\1***@", text)
    return redact(text)
