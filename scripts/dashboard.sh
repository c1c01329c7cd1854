# shellcheck shell=bash
# Helpers for the web dashboard (web/), sourced by scripts/up and scripts/test after lib.sh:
#
#   tv_node_check            # Node.js >= 20.19 and npm on PATH, or one line saying what to install
#   tv_web_install           # `npm ci` in web/ when node_modules is missing or older than package-lock.json
#   tv_web_build             # `npm run build` when a source of the app changed since the last build
#   tv_ensure_chromium       # Debian's chromium at /usr/bin/chromium (for the browser tests), installed if missing
#
# Like lib.sh, functions return non-zero on failure and never `exit`.

TV_WEB_DIR="$TV_ROOT/web"
# What the build depends on; a change in any of these rebuilds the app.
TV_WEB_SOURCES=(src public index.html vite.config.ts tsconfig.json package-lock.json)

tv_node_check() {
  tv_have node && tv_have npm ||
    { tv_fail "Node.js 20.19 or newer (with npm) is needed for the dashboard: install it, then retry"; return 1; }
  local version
  version=$(node -p 'process.versions.node')
  local major=${version%%.*} rest=${version#*.}
  local minor=${rest%%.*}
  if ((major < 20 || (major == 20 && minor < 19))); then
    tv_fail "Node.js $version is too old for the dashboard (Vite needs 20.19 or newer): upgrade it, then retry"
    return 1
  fi
}

tv_web_install() {
  local stamp="$TV_WEB_DIR/node_modules/.package-lock.json"
  if [[ ! -f $stamp || $TV_WEB_DIR/package-lock.json -nt $stamp ]]; then
    tv_say "installing the dashboard's npm packages (npm ci)"
    (cd "$TV_WEB_DIR" && npm ci --no-audit --no-fund --loglevel=error) ||
      { tv_fail "'npm ci' in web/ failed (see above)"; return 1; }
  fi
}

# A hash of every file the build reads.
tv_web_source_hash() {
  (cd "$TV_WEB_DIR" && find "${TV_WEB_SOURCES[@]}" -type f -not -name '*.test.ts' -print0 2>/dev/null |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

tv_web_build() {
  local hash stamp="$TV_WEB_DIR/dist/.source-hash"
  hash=$(tv_web_source_hash)
  if [[ -f $stamp && $(<"$stamp") == "$hash" && -f $TV_WEB_DIR/dist/index.html ]]; then
    return 0
  fi
  tv_say "building the dashboard (npm run build)"
  (cd "$TV_WEB_DIR" && npm run --silent build -- --logLevel warn) ||
    { tv_fail "the dashboard build failed (see above)"; return 1; }
  printf '%s\n' "$hash" >"$stamp"
}

tv_ensure_chromium() {
  [[ -x /usr/bin/chromium ]] && return 0
  tv_apt_install chromium || return 1
  [[ -x /usr/bin/chromium ]] || { tv_fail "the chromium package did not install /usr/bin/chromium"; return 1; }
}
