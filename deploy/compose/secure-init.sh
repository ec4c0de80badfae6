#!/usr/bin/env bash
# The secure docker-compose stack's keys, certificates and passwords (docker-compose.secure.yml).
#
# Runs once per `docker compose up` as root in the runstream image, before Kafka and
# ClickHouse start; every step keeps what an earlier run made, so passwords and the CA
# survive restarts. Writes into the runstream-secrets volume (/secrets):
#   ca/ca.pem                           the CA every client trusts (public)
#   kafka/broker.keystore.pem           the broker's key + certificate (Kafka's uid only)
#   clickhouse/server.{key,crt}         the server's key + certificate (ClickHouse's uid only)
#   runstream/<principal>.password      Kafka principals and ClickHouse users (the runstream uid only)
#   grafana/runstream_reader.password   the reader's password again, for Grafana's uid
# and into the clickhouse-users volume (/clickhouse-users, ClickHouse's users.d):
#   runstream-users.xml                 runstream_writer and runstream_reader (SHA-256 of the passwords),
#                                       and the password-less `default` user limited to the container itself
# Nothing here is printed: no password reaches a log.
set -euo pipefail
umask 077

S="${SECRETS_DIR:-/secrets}"
USERS="${CLICKHOUSE_USERS_DIR:-/clickhouse-users}"
# The images' users: apache/kafka (appuser), clickhouse/clickhouse-server, grafana/grafana, runstream.
KAFKA_UID=1000 CLICKHOUSE_UID=101 GRAFANA_UID=472 RUNSTREAM_UID=10001
PRINCIPALS=(runstream-producer runstream-ingest runstream-exporter runstream_writer runstream_reader)

mkdir -p "$S/ca" "$S/kafka" "$S/clickhouse" "$S/runstream" "$S/grafana" "$USERS"

if [[ ! -s "$S/ca/ca.pem" ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=runstream compose CA" \
        -keyout "$S/ca/ca.key" -out "$S/ca/ca.pem" 2>/dev/null
fi

# A server certificate for `name`, valid for the compose host name and the host's loopback.
certificate() {
    local name="$1" dir="$S/$1"
    [[ -s "$dir/server.crt" ]] && return 0
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\n' "$name" >"$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$S/ca/ca.pem" -CAkey "$S/ca/ca.key" -CAcreateserial \
        -days 825 -extfile "$dir/san.ext" -out "$dir/server.crt" 2>/dev/null
    rm -f "$dir/server.csr" "$dir/san.ext"
}
certificate kafka
certificate clickhouse
cat "$S/kafka/server.key" "$S/kafka/server.crt" >"$S/kafka/broker.keystore.pem"

for principal in "${PRINCIPALS[@]}"; do
    [[ -s "$S/runstream/$principal.password" ]] || openssl rand -hex 24 >"$S/runstream/$principal.password"
done
cp "$S/runstream/runstream_reader.password" "$S/grafana/runstream_reader.password"

sha256() { tr -d '\n' <"$S/runstream/$1.password" | sha256sum | cut -d' ' -f1; }
cat >"$USERS/runstream-users.xml" <<XML
<clickhouse>
  <profiles>
    <runstream_reader><max_execution_time>60</max_execution_time></runstream_reader>
  </profiles>
  <users>
    <!-- The image's password-less administrator: reachable from inside its container only. -->
    <default><networks replace="replace"><ip>::1</ip><ip>127.0.0.1</ip></networks></default>
    <runstream_writer>
      <password_sha256_hex>$(sha256 runstream_writer)</password_sha256_hex>
      <networks><ip>::/0</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
      <grants>
        <query>GRANT SELECT, INSERT, CREATE TABLE, CREATE VIEW, ALTER, DROP TABLE, DROP VIEW, OPTIMIZE, TRUNCATE ON runstream.*</query>
        <query>GRANT CREATE DATABASE ON runstream.*</query>
        <query>GRANT SELECT ON system.parts</query>
      </grants>
    </runstream_writer>
    <runstream_reader>
      <password_sha256_hex>$(sha256 runstream_reader)</password_sha256_hex>
      <networks><ip>::/0</ip></networks>
      <profile>runstream_reader</profile>
      <quota>default</quota>
      <grants>
        <query>GRANT SELECT ON runstream.*</query>
        <!-- the exporter's table health; 25.8 wants a grant for system tables (tables is open to all) -->
        <query>GRANT SELECT ON system.parts</query>
      </grants>
    </runstream_reader>
  </users>
</clickhouse>
XML

chmod 0755 "$S" "$S"/* "$USERS"
chmod 0644 "$S/ca/ca.pem"
if [[ "$(id -u)" == 0 ]]; then  # (run by hand as another user, e.g. to try it: the files stay yours)
    chown -R "$KAFKA_UID" "$S/kafka"
    chown -R "$CLICKHOUSE_UID" "$S/clickhouse" "$USERS"
    chown -R "$RUNSTREAM_UID" "$S/runstream"
    chown -R "$GRAFANA_UID" "$S/grafana"
fi
echo "secure-init: CA, certificates and passwords are in place"
