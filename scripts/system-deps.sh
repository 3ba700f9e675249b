#!/bin/sh
# Install the Debian packages a target needs, only when they are missing.
#   venv: python3-venv (a fresh Debian/Ubuntu Python cannot create a venv without it)
#   test: prometheus (promtool and the Prometheus server), prometheus-pushgateway
#         (the no-agent delivery tests start their own instances on free loopback ports;
#         on a host with systemd the packages also enable their own services), curl, openssl,
#         prometheus-alertmanager (amtool checks and route-tests alerts/alertmanager.yml; the
#         inhibition test starts its own Alertmanager on a free loopback port), chromium and
#         chromium-driver (the UI drift tests run real Robot Framework/SeleniumLibrary and Python
#         Selenium bots in headless Chromium, driven through /usr/bin/chromedriver, and Python
#         Playwright bots in the same /usr/bin/chromium), victoria-metrics (the estate scale
#         test and benchmark remote-write from a real Prometheus into their own instance on a free
#         loopback port)
#   bench: mtail and prometheus-process-exporter (the benchmarks' references), prometheus and
#          victoria-metrics (the estate benchmark's engines)
set -eu
need=""
case "${1:-test}" in
  venv)
    tmp=$(mktemp -d)
    python3 -m venv "$tmp/v" >/dev/null 2>&1 || need="$need python3-venv"
    rm -rf "$tmp"
    ;;
  test)
    { command -v promtool && [ -x /usr/bin/prometheus ]; } >/dev/null 2>&1 || need="$need prometheus"
    [ -x /usr/bin/prometheus-pushgateway ] || need="$need prometheus-pushgateway"
    command -v curl >/dev/null 2>&1 || need="$need curl"        # the check-in client of the tests
    command -v openssl >/dev/null 2>&1 || need="$need openssl"  # certificates for the TLS test
    { command -v amtool && [ -x /usr/bin/prometheus-alertmanager ]; } >/dev/null 2>&1 || need="$need prometheus-alertmanager"
    [ -x /usr/bin/chromium ] || need="$need chromium"                  # the browser of the UI bots
    [ -x /usr/bin/chromedriver ] || need="$need chromium-driver"       # Selenium's driver for it
    [ -x /usr/bin/victoria-metrics ] || need="$need victoria-metrics"  # the remote_write target
    ;;
  bench)
    # the references the benchmarks measure botwatch against, in the same run
    command -v mtail >/dev/null 2>&1 || need="$need mtail"
    [ -x /usr/bin/prometheus-process-exporter ] || need="$need prometheus-process-exporter"
    # benchmark 6 runs its own Prometheus remote-writing to its own VictoriaMetrics
    { command -v promtool && [ -x /usr/bin/prometheus ]; } >/dev/null 2>&1 || need="$need prometheus"
    [ -x /usr/bin/victoria-metrics ] || need="$need victoria-metrics"
    ;;
esac
[ -z "$need" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"  # a developer's account or a CI runner's
echo "installing Debian packages:$need"
$SUDO apt-get update -qq
# through env: sudo drops the caller's variables
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
