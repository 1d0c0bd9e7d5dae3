#!/bin/sh
# The redis service's entry point in docker-compose.yml (and in tests/deploy/test_redis_*.py):
#
#   start.sh USERS_ACL OUTPUT redis-server [ARGS...]
#
# writes USERS_ACL to OUTPUT (readable by this user only) with its comment lines dropped and each
# ${NAME} replaced by the environment variable NAME (a password: at least 16 of A-Z a-z 0-9 . _ ~ -,
# so it needs no quoting in an ACL file or percent-encoding in a redis:// URL), then runs
# `redis-server [ARGS...] --aclfile OUTPUT` in its place. A missing or weak password stops it.
set -eu
if [ $# -lt 3 ]; then
  echo "usage: $0 USERS_ACL OUTPUT redis-server [ARGS...]" >&2
  exit 2
fi
template=$1
output=$2
shift 2
umask 077
awk '
  /^[ \t]*(#|$)/ { next }
  {
    rest = $0; line = ""
    while (match(rest, /\$\{[A-Za-z_][A-Za-z0-9_]*\}/)) {
      name = substr(rest, RSTART + 2, RLENGTH - 3)
      value = ENVIRON[name]
      if (length(value) < 16 || value !~ /^[A-Za-z0-9._~-]+$/) {
        printf "%s: %s is unset or weak (16+ characters of A-Z a-z 0-9 . _ ~ -)\n", FILENAME, name > "/dev/stderr"
        exit 1
      }
      line = line substr(rest, 1, RSTART - 1) value
      rest = substr(rest, RSTART + RLENGTH)
    }
    print line rest
  }
' "$template" > "$output" || { rm -f "$output"; exit 1; }
exec "$@" --aclfile "$output"
