#!/usr/bin/env bash
# ferry's main job on one machine: two devices, each with its own encrypted vault, editing
# offline and converging through a folder store (think NAS share, USB disk, Syncthing folder).
# Every command is printed before it runs. Nothing outside a temporary directory is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p ferry-cli
ferry="$PWD/target/release/ferry"
demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
export FERRY_DEMO_PASSPHRASE="demo passphrase"   # a real user types it, or uses --passphrase-command
store="folder:$demo/nas/ferry"
mkdir -p "$demo/nas"

run() { printf '\n$ %s\n' "$*" | sed "s#$demo#\$DEMO#g; s#$ferry#ferry#g"; "$@"; }
laptop=(--home "$demo/laptop" --key-from-env FERRY_DEMO_PASSPHRASE)
desktop=(--home "$demo/desktop" --key-from-env FERRY_DEMO_PASSPHRASE)

echo "# The laptop creates the vault in the folder store and writes a note."
run "$ferry" init --name laptop --store "$store" "${laptop[@]}"
run "$ferry" put notes n1 '{"title":"hi","body":"written on the laptop"}' "${laptop[@]}"
run "$ferry" sync "${laptop[@]}"

echo; echo "# The desktop joins with the vault passphrase and gets the note."
run "$ferry" join "$store" --name desktop "${desktop[@]}"
run "$ferry" get notes n1 "${desktop[@]}"

echo; echo "# Both edit while apart, the same note included."
run "$ferry" put notes n1 '{"title":"hi","body":"edited on the laptop"}' "${laptop[@]}"
run "$ferry" put notes n2 '{"title":"groceries","body":"milk, eggs"}' "${laptop[@]}"
run "$ferry" put notes n1 '{"title":"hi","body":"edited on the desktop, later"}' "${desktop[@]}"
run "$ferry" put todos t1 '{"task":"call mum"}' "${desktop[@]}"

echo; echo "# They sync, and converge: the later edit of n1 wins on both, nothing is lost from the log."
run "$ferry" sync "${laptop[@]}"
run "$ferry" sync "${desktop[@]}"
run "$ferry" sync "${laptop[@]}"
run "$ferry" ls notes "${laptop[@]}"
run "$ferry" ls notes "${desktop[@]}"
run "$ferry" log notes n1 "${desktop[@]}"
run "$ferry" sync status "${laptop[@]}"

echo; echo "# The store holds only sealed objects: no record content is readable there."
run find "$demo/nas/ferry" -type f
printf '\n$ grep -rl "groceries" $DEMO/nas $DEMO/laptop/vault.db   # nothing found\n'
grep -rl "groceries" "$demo/nas" "$demo/laptop/vault.db" || echo "(no match)"
