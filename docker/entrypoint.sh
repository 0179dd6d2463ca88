#!/bin/sh
# The container's entrypoint. `serve` and `worker` first wait for the database and apply the
# migrations (safe from several containers at once: one migrator at a time, the others find
# nothing to do); COINPURSE_MIGRATE=0 skips that (migrations run by a release job instead).
# Any coinpurse command runs as `coinpurse <command>`; anything else runs as it is (sh, ...).
set -eu

[ "$#" -gt 0 ] || set -- serve --host 0.0.0.0 --port 8000

case "$1" in
  serve|worker)
    if [ "${COINPURSE_MIGRATE:-1}" != "0" ]; then
      tries="${COINPURSE_DB_WAIT_TRIES:-30}"
      until coinpurse migrate; do
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then
          echo "coinpurse-entrypoint: the database is still not reachable; giving up" >&2
          exit 1
        fi
        echo "coinpurse-entrypoint: waiting for the database..." >&2
        sleep "${COINPURSE_DB_WAIT_S:-2}"
      done
    fi
    if [ "$1" = serve ]; then
      shift
      exec coinpurse serve --no-migrate "$@"
    fi
    exec coinpurse "$@"
    ;;
  migrate|keys|check|export|config|admin|token|--help|--version)
    exec coinpurse "$@"
    ;;
esac
exec "$@"
