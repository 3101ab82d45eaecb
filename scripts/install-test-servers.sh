#!/usr/bin/env bash
# Installs the storage servers the tests start on 127.0.0.1: OpenSSH's sshd
# (SFTP), rclone (WebDAV), PostgreSQL and chromium with chromedriver (the
# console's browser tests) from Debian, Azurite (Azure Blob) from npm, moto
# (S3), gcp-storage-emulator (Google Cloud Storage), aiosmtpd (the SMTP
# server of the notification tests, with a test CA made here) and
# schemathesis (checks the service against its OpenAPI document) from PyPI. The npm and
# PyPI ones go under $COFFER_TEST_TOOLS (default ~/.cache/coffer-test-tools),
# pinned, and are installed again only when the pins change.
set -euo pipefail
TOOLS="${COFFER_TEST_TOOLS:-$HOME/.cache/coffer-test-tools}"
AZURITE=3.37.0
MOTO=5.2.5
GCS_EMULATOR=2026.7.19
AIOSMTPD=1.4.6
SCHEMATHESIS=4.32.5
mkdir -p "$TOOLS"

debs=()
[ -x /usr/sbin/sshd ] || debs+=(openssh-server)
command -v ssh >/dev/null 2>&1 || debs+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || debs+=(openssh-client)
command -v rclone >/dev/null 2>&1 || debs+=(rclone)
command -v openssl >/dev/null 2>&1 || debs+=(openssl)
# PostgreSQL (server and client tools) for the database items and the
# disaster-recovery drill; sqlite3 and tar are used by the item tests too.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || debs+=(postgresql)
command -v sqlite3 >/dev/null 2>&1 || debs+=(sqlite3)
command -v tar >/dev/null 2>&1 || debs+=(tar)
# The console's tests drive a real headless browser.
command -v chromium >/dev/null 2>&1 || debs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || debs+=(chromium-driver)
if [ ${#debs[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >/dev/null
fi

stamp="$TOOLS/node/.installed-$AZURITE"
if [ ! -f "$stamp" ]; then
  rm -rf "$TOOLS/node" && mkdir -p "$TOOLS/node"
  npm install --prefix "$TOOLS/node" --no-audit --no-fund --loglevel=error "azurite@$AZURITE" >/dev/null
  touch "$stamp"
fi

stamp="$TOOLS/venv/.installed-$MOTO-$GCS_EMULATOR-$AIOSMTPD-$SCHEMATHESIS"
if [ ! -f "$stamp" ]; then
  rm -rf "$TOOLS/venv"
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check \
    "moto[server]==$MOTO" "gcp-storage-emulator==$GCS_EMULATOR" "aiosmtpd==$AIOSMTPD" \
    "schemathesis==$SCHEMATHESIS"
  touch "$stamp"
fi
# SMTP: a test CA and a certificate for 127.0.0.1 signed by it, for the
# STARTTLS server the notification tests send mail through.
mkdir -p "$TOOLS/smtp"
if [ ! -f "$TOOLS/smtp/server.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=coffer test CA" \
    -keyout "$TOOLS/smtp/ca.key" -out "$TOOLS/smtp/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$TOOLS/smtp/server.key" -out "$TOOLS/smtp/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' > "$TOOLS/smtp/ext.cnf"
  openssl x509 -req -in "$TOOLS/smtp/server.csr" -CA "$TOOLS/smtp/ca.pem" -CAkey "$TOOLS/smtp/ca.key" \
    -CAcreateserial -days 3650 -extfile "$TOOLS/smtp/ext.cnf" -out "$TOOLS/smtp/server.pem" 2>/dev/null
fi
# SFTP: one host key for every test sshd and one client key. The host key is
# trusted for 127.0.0.1 on any port in the system-wide known_hosts, so tests
# keep SSH's strict host-key checking (the default Coffer uses) without
# touching anyone's ~/.ssh.
mkdir -p "$TOOLS/sshd"
[ -f "$TOOLS/sshd/host_key" ] || ssh-keygen -q -t ed25519 -N '' -C coffer-test-host -f "$TOOLS/sshd/host_key"
[ -f "$TOOLS/sshd/client_key" ] || ssh-keygen -q -t ed25519 -N '' -C coffer-test-client -f "$TOOLS/sshd/client_key"
cp "$TOOLS/sshd/client_key.pub" "$TOOLS/sshd/authorized_keys"
line="[127.0.0.1]:* $(cut -d' ' -f1,2 "$TOOLS/sshd/host_key.pub") coffer-test-host"
mkdir -p /etc/ssh
touch /etc/ssh/ssh_known_hosts
if ! grep -qxF "$line" /etc/ssh/ssh_known_hosts; then
  grep -v ' coffer-test-host$' /etc/ssh/ssh_known_hosts > /etc/ssh/ssh_known_hosts.new || true
  echo "$line" >> /etc/ssh/ssh_known_hosts.new
  mv /etc/ssh/ssh_known_hosts.new /etc/ssh/ssh_known_hosts
fi
mkdir -p /run/sshd
echo "test servers ready in $TOOLS"
