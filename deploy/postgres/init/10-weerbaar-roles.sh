#!/usr/bin/env bash
# Runs once, when the PostgreSQL data volume is new (the official image's
# /docker-entrypoint-initdb.d), connected as $POSTGRES_USER to the database $POSTGRES_DB.
#
# Least privilege: one schema and one login role per service. Each role owns its own schema (the
# eventsourcing tables, read models, inbox and relay position all live there) and has no other
# rights: it cannot create schemas, cannot see another service's schema and cannot use `public`.
# The services connect as their own role (WEERBAAR_DATABASE_URL per service in compose.yaml);
# the superuser is for the operator (backups, migrations), never for a service.
#
# The passwords come from the container's environment (WEERBAAR_<SERVICE>_DB_PASSWORD). To change
# one later, ALTER ROLE ... PASSWORD as the superuser and restart that service with the new URL:
# this script does not run again on an existing volume.
set -eo pipefail

for service in intake scheduling assessment approval notifications; do
  var="WEERBAAR_${service^^}_DB_PASSWORD"
  if [ -z "${!var}" ]; then
    echo "10-weerbaar-roles.sh: $var is not set" >&2
    exit 1
  fi
done

# psql variables keep the passwords out of the SQL text: :'name' quotes a literal, :"name" an
# identifier.
psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --single-transaction \
  --username="${POSTGRES_USER:-postgres}" --dbname="${POSTGRES_DB:-postgres}" \
  --set=db="${POSTGRES_DB:-postgres}" \
  --set=intake_password="$WEERBAAR_INTAKE_DB_PASSWORD" \
  --set=scheduling_password="$WEERBAAR_SCHEDULING_DB_PASSWORD" \
  --set=assessment_password="$WEERBAAR_ASSESSMENT_DB_PASSWORD" \
  --set=approval_password="$WEERBAAR_APPROVAL_DB_PASSWORD" \
  --set=notifications_password="$WEERBAAR_NOTIFICATIONS_DB_PASSWORD" \
  --file=- <<'SQL'
-- Nobody connects or uses `public` unless granted below.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

CREATE ROLE intake LOGIN PASSWORD :'intake_password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT CONNECT ON DATABASE :"db" TO intake;
CREATE SCHEMA intake AUTHORIZATION intake;
ALTER ROLE intake IN DATABASE :"db" SET search_path = intake;

CREATE ROLE scheduling LOGIN PASSWORD :'scheduling_password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT CONNECT ON DATABASE :"db" TO scheduling;
CREATE SCHEMA scheduling AUTHORIZATION scheduling;
ALTER ROLE scheduling IN DATABASE :"db" SET search_path = scheduling;

CREATE ROLE assessment LOGIN PASSWORD :'assessment_password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT CONNECT ON DATABASE :"db" TO assessment;
CREATE SCHEMA assessment AUTHORIZATION assessment;
ALTER ROLE assessment IN DATABASE :"db" SET search_path = assessment;

CREATE ROLE approval LOGIN PASSWORD :'approval_password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT CONNECT ON DATABASE :"db" TO approval;
CREATE SCHEMA approval AUTHORIZATION approval;
ALTER ROLE approval IN DATABASE :"db" SET search_path = approval;

CREATE ROLE notifications LOGIN PASSWORD :'notifications_password'
  NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
GRANT CONNECT ON DATABASE :"db" TO notifications;
CREATE SCHEMA notifications AUTHORIZATION notifications;
ALTER ROLE notifications IN DATABASE :"db" SET search_path = notifications;
SQL
