# Shared by scripts/test and scripts/failover-drill: the pg_auto_failover packages that
# match the installed PostgreSQL major version (Debian 12: 15), when missing.
ha_missing_packages() {
  local major
  major="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sed 's#.*/postgresql/\([0-9]*\)/bin#\1#' | sort -n | tail -1)"
  major="${major:-15}"
  local out=""
  command -v pg_autoctl >/dev/null 2>&1 || out="pg-auto-failover-cli"
  [ -f "/usr/share/postgresql/$major/extension/pgautofailover.control" ] \
    || out="$out postgresql-$major-auto-failover"
  echo "$out"
}
