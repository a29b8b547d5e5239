#!/usr/bin/env bash
# Renders a run directory's report.html in headless Chromium and fails on a console error, a
# broken or external image, an empty figure, or an empty table.
#
#   tests/browser/check_report.sh RUN_DIR [--screenshot FILE.png]
#
# RUN_DIR is a directory written by `ticketlab run` (or a report.html itself). The browser is
# $TICKETLAB_BROWSER, else the first of chromium, chromium-browser, google-chrome on PATH; when
# none is found, Debian's chromium is installed with apt-get (as root, or with sudo).
# Exit status: 0 the report is fine; 1 a problem was found (each is printed); 2 usage error or
# no browser could be found or installed.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

find_browser() {
    if [ -n "${TICKETLAB_BROWSER:-}" ]; then
        command -v "$TICKETLAB_BROWSER" && return 0
        echo "TICKETLAB_BROWSER=$TICKETLAB_BROWSER is not an executable" >&2
        return 1
    fi
    for b in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
    done
    return 1
}

if ! browser="$(find_browser)"; then
    if [ -n "${TICKETLAB_BROWSER:-}" ]; then exit 2; fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "no chromium found and no apt-get to install one: install a headless Chromium" \
            "or set TICKETLAB_BROWSER" >&2
        exit 2
    fi
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    echo "check_report: installing Debian's chromium ..." >&2
    $sudo_cmd apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
    browser="$(command -v chromium)" || { echo "installing chromium failed" >&2; exit 2; }
fi

if ! command -v python3 >/dev/null 2>&1; then
    echo "python3 is needed to check the report" >&2
    exit 2
fi

exec python3 "$here/check_report.py" --browser "$browser" "$@"
