#!/usr/bin/env bash
# Checks that every C++ source is formatted by the project's .clang-format, with Debian 12's
# clang-format 14 (other versions format some constructs differently). Exits 77 (a skip for
# ctest) when clang-format-14 is not installed. To format: clang-format-14 -i FILE...
set -euo pipefail
cd "$(dirname "$0")/.."
cf=${CLANG_FORMAT:-clang-format-14}
if ! command -v "$cf" >/dev/null; then
  echo "check-format.sh: $cf is not installed (scripts/install-deps.sh installs it): skipped" >&2
  exit 77
fi
mapfile -t files < <(find fs zns mkfs fsck include tests fuzz bench \( -name '*.cc' -o -name '*.h' \) -type f | sort)
bad=()
for f in "${files[@]}"; do
  "$cf" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "check-format.sh: ${#bad[@]} of ${#files[@]} files differ from .clang-format; run: $cf -i ${bad[*]}" >&2
  exit 1
fi
echo "check-format.sh: all ${#files[@]} C++ files are formatted"
