#!/bin/sh
# Clone each pinned extension of a list (<folder> <git URL> <40-hex commit>) into a folder.
# Usage: install_extensions.sh <list file> <destination folder>
set -eu
list=$1 dest=$2
mkdir -p "$dest"
grep -v '^[[:space:]]*#' "$list" | grep -v '^[[:space:]]*$' | while read -r name url commit; do
  case "$commit" in
    *[!0-9a-f]*|'') echo "extension $name: commit '$commit' is not a 40-hex commit" >&2; exit 1 ;;
  esac
  [ "${#commit}" -eq 40 ] || { echo "extension $name: commit '$commit' is not 40 hex digits" >&2; exit 1; }
  git clone --quiet "$url" "$dest/$name"
  # A named branch at the pinned commit, not a detached head: A1111 reads each extension's
  # branch at start and logs a traceback for a detached one.
  git -C "$dest/$name" checkout --quiet -B sdfleet-pinned "$commit"
  git -C "$dest/$name" submodule update --init --recursive --quiet
done
