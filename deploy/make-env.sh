#!/bin/sh
# Writes the .env that docker-compose.yml reads: a random password for each Redis user of
# deploy/redis/users.acl (REDIS_<USER>_PASSWORD) and for Grafana's admin, readable by you only.
# An existing file is kept as it is (delete it to make new passwords, then `docker compose up -d`).
#
#   deploy/make-env.sh [FILE]        (default: .env, beside docker-compose.yml when run from there)
set -eu
env_file=${1:-.env}
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -e "$env_file" ]; then
  echo "$env_file exists: kept" >&2
  exit 0
fi
password() {  # 24 random bytes as 48 hex digits: no quoting needed in an ACL file or a URL
  od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
}
umask 077
{
  echo "# Made by deploy/make-env.sh: passwords of docker-compose.yml. Keep it out of version control."
  for user in INGEST DETECTOR ALERTS SINKS RECORDER WEB ADMIN; do
    echo "REDIS_${user}_PASSWORD=$(password)"
  done
  echo "GRAFANA_ADMIN_PASSWORD=$(password)"
  # the console's login: the password, and its scrypt hash (web/passwords.py: standard library only)
  web_password=$(password)
  echo "WEB_PASSWORD=$web_password"
  echo "WEB_PASSWORD_HASH='$(printf '%s\n' "$web_password" | PYTHONPATH="$repo" python3 -m web.passwords)'"
} > "$env_file"
echo "wrote $env_file" >&2
