"""Delivery to a Prometheus Pushgateway, for hosts where no agent runs (`botwatch run --pushgateway URL`).

Each bot is one group, {job="botwatch", bot=<bot>, instance=<host>}, replaced with PUT on every
publication: the totals come from the host's spool and are complete, so a Pushgateway that
restarted empty gets everything back with the next push. The spool's own counter (events it
dropped) is the group {job="botwatch", instance=<host>}, so that it exists once per host.
"""

from __future__ import annotations

from prometheus_client.exposition import delete_from_gateway, push_to_gateway

from .totals import totals_registry

JOB = "botwatch"
TIMEOUT = 10.0


def grouping_key(totals: dict, host: str) -> dict[str, str]:
    key = {"instance": totals.get("host") or host}
    if totals["bot"]:
        key["bot"] = totals["bot"]
    return key


def push_totals(url: str, totals: dict, host: str, timeout: float = TIMEOUT) -> None:
    """PUT one bot's group (or the spool's own group); raises OSError when the Pushgateway is away."""
    push_to_gateway(url, job=JOB, registry=totals_registry(totals), grouping_key=grouping_key(totals, host),
                    timeout=timeout)


def delete_bot(url: str, bot: str, host: str, timeout: float = TIMEOUT) -> None:
    """Delete a retired bot's group (the Pushgateway never forgets a series by itself)."""
    delete_from_gateway(url, job=JOB, grouping_key={"bot": bot, "instance": host}, timeout=timeout)
