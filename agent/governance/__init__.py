"""Governance checks per bot: owner, runbook, lifecycle, certification, alert routing, secrets.

Each check gives `Finding`s; a failed one (`ok=False`) is what the CoE acts on. Findings that
point at something in a file name the file and line, never the text there: a plaintext secret
is reported as its type (from detect-secrets) and where it is, and its value is never kept.

Checks (docs/governance.md):

- `owner`, `runbook`, `lifecycle`: declared in the estate file.
- `certified`: bots with lifecycle `certified` or `production`, or criticality `high`, have a
  certification record (`certified: {by: NAME, date: DATE}`) that has not lapsed (`until:`).
- `team_routed`: the bot's team has a route in the Alertmanager configuration named by
  `agent.alert_routing` (default: the example shipped in botwatch.alerts).
- `plaintext_secret`: no credential in the bot's source files (`source:`), its estate entry,
  its `watch.process.cmdline` pattern or a literal `ping_key`. Files and the estate entry are
  scanned with detect-secrets; the command-line pattern also with botwatch's own redaction
  rules (the ones that mask secrets such as `--password X` before anything is stored), which
  detect-secrets does not look for. detect-secrets comes with the governance extra
  (`pip install 'botwatch[governance]'`): without it only botwatch's own rules run, and the
  finding's detail says that nothing was scanned.

The parts: `checks` (the checks, their findings, the whole estate's), `routing` (the teams an
Alertmanager configuration routes), `secrets` (detect-secrets over files and text), `entries`
(where each bot sits in the estate file) and `refresher` (the agent's periodic refresh).
"""

from .checks import CHECKS, Finding, Governance, check_bot, failed_checks, governance_for_state
from .entries import EstateEntry, estate_entries
from .refresher import GovernanceRefresher
from .routing import RoutingError, RoutingTeams, load_routing_teams, routing_for, routing_teams_from
from .secrets import MAX_CACHE, MAX_FILE_BYTES, MAX_FILES, SKIP_DIRS, SecretScanner, SourceScan

__all__ = [
    "CHECKS", "Finding", "Governance", "check_bot", "failed_checks", "governance_for_state",
    "EstateEntry", "estate_entries",
    "GovernanceRefresher",
    "RoutingError", "RoutingTeams", "load_routing_teams", "routing_for", "routing_teams_from",
    "MAX_CACHE", "MAX_FILE_BYTES", "MAX_FILES", "SKIP_DIRS", "SecretScanner", "SourceScan",
]
