#!/usr/bin/env bash
# ferry's main job on one machine: a device with an encrypted local vault.
# Every command is printed before it runs. Nothing outside a temporary directory is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p ferry-cli
ferry="$PWD/target/release/ferry"
demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
export FERRY_DEMO_PASSPHRASE="demo passphrase"   # a real user types it, or uses --passphrase-command

run() { printf '\n$ %s\n' "$*"; "$@"; }
laptop=(--home "$demo/laptop" --key-from-env FERRY_DEMO_PASSPHRASE)

run "$ferry" init --name laptop "${laptop[@]}"
run "$ferry" put notes n1 '{"title":"hi","body":"first note"}' "${laptop[@]}"
run "$ferry" put notes n2 '{"title":"groceries","body":"milk, eggs"}' "${laptop[@]}"
run "$ferry" put notes n1 '{"title":"hi","body":"edited"}' "${laptop[@]}"
run "$ferry" get notes n1 "${laptop[@]}"
run "$ferry" ls notes "${laptop[@]}"
run "$ferry" rm notes n2 "${laptop[@]}"
run "$ferry" log "${laptop[@]}"
run "$ferry" status "${laptop[@]}"
printf '\n$ grep -c "edited" %s/laptop/vault.db   # the database is encrypted\n' "$demo"
grep -c "edited" "$demo/laptop/vault.db" || true
