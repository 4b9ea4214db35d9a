#!/bin/sh
# Development credentials for the compose stack, made once (first start) into AUTH_DIR:
#   passwd           Mosquitto password file (mosquitto_passwd): user esp-ingest, and wells
#                    WELL-1 and WELL-00001..WELL-00006 (password: the well id followed by -dev)
#   ingest.password  esp-ingest's own password (MQTT_PASSWORD_FILE), random
#   ca.crt ca.key    a private development CA (10 years)
#   server.crt/.key  the broker's TLS certificate for mosquitto and localhost, signed by it
# Not for production: use your own CA and provision devices as README "Security" shows.
# Run by the mosquitto-credentials service of docker-compose.yml, or by hand:
#   AUTH_DIR=./dev-auth sh ops/mosquitto/dev-credentials.sh
set -eu
AUTH_DIR="${AUTH_DIR:-/mosquitto/auth}"
mkdir -p "$AUTH_DIR"
cd "$AUTH_DIR"
if [ -s passwd ] && [ -s server.crt ]; then
  echo "dev-credentials: $AUTH_DIR already has credentials; nothing to do"
  exit 0
fi
command -v openssl >/dev/null || apk add --no-cache openssl >/dev/null
umask 022
openssl rand -hex 24 > ingest.password
mosquitto_passwd -c -b passwd esp-ingest "$(cat ingest.password)"
for well in WELL-1 WELL-00001 WELL-00002 WELL-00003 WELL-00004 WELL-00005 WELL-00006; do
  mosquitto_passwd -b passwd "$well" "$well-dev"
done
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=esp-ingest development CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=mosquitto" 2>/dev/null
printf 'subjectAltName=DNS:mosquitto,DNS:localhost,IP:127.0.0.1\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 825 -extfile server.ext 2>/dev/null
rm -f server.csr server.ext
# Mosquitto drops root before reading these; esp-ingest runs as user node.
chmod 644 passwd ingest.password ca.crt server.crt server.key
chmod 600 ca.key
echo "dev-credentials: made passwd, ingest.password, ca.crt, server.crt and server.key in $AUTH_DIR"
