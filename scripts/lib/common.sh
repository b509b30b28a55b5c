# shellcheck shell=bash
# scripts/lib/common.sh — shared helpers for Agora's dev/test scripts. Source it, don't run it.
#
# Provides: REPO_ROOT, AGORA_STATE_DIR, AGORA_CACHE_DIR, logging (info/warn/die), is_root,
# apt_install, with_lock, port_open, wait_until.

if [[ -n "${AGORA_COMMON_SH_LOADED:-}" ]]; then
  return 0
fi
AGORA_COMMON_SH_LOADED=1

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO_ROOT

# State (data, logs, pid files) and cache (downloaded jars) live outside the repository.
AGORA_STATE_DIR="${AGORA_STATE_DIR:-${HOME:-/root}/.cache/agora}"
AGORA_CACHE_DIR="${AGORA_CACHE_DIR:-${HOME:-/root}/.cache/agora}"
export AGORA_STATE_DIR AGORA_CACHE_DIR

_agora_tag="$(basename "${BASH_SOURCE[1]:-$0}" .sh)"

info() { printf '[%s] %s\n' "$_agora_tag" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$_agora_tag" "$*" >&2; }
die() {
  printf '[%s] ERROR: %s\n' "$_agora_tag" "$*" >&2
  exit 1
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# apt_install PKG... — install Debian packages (root, or via sudo when available).
_agora_apt_updated=""
apt_install() {
  local sudo=()
  if ! is_root; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install $*"
    sudo=(sudo)
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
  if [[ -z "$_agora_apt_updated" ]]; then
    info "apt-get update"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _agora_apt_updated=1
  fi
  info "apt-get install -y $*"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# with_lock FILE CMD... — run CMD holding an exclusive flock on FILE (serialises concurrent
# start/stop calls). The lock fd is closed for CMD's children so daemons don't inherit it.
with_lock() {
  local lock_file="$1"
  shift
  mkdir -p "$(dirname "$lock_file")"
  (
    exec 9>"$lock_file"
    if command -v flock >/dev/null 2>&1; then
      flock -w 600 9 || die "could not lock $lock_file within 600 s"
    fi
    "$@" 9>&-
  )
}

# port_open HOST PORT — true when something accepts TCP connections there.
# terminate NAME PID [SECONDS] — SIGTERM to PID, then SIGKILL if it has not exited within
# SECONDS (default 20); returns once it is gone.
terminate() {
  local name="$1" pid="$2" grace="${3:-20}"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      warn "$name did not stop within $grace s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.25
  done
}

port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# wait_until SECONDS DESCRIPTION CMD... — poll CMD (every 0.25 s) until it succeeds or the
# deadline passes.
wait_until() {
  local seconds="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      warn "timed out after ${seconds}s waiting for $what"
      return 1
    fi
    sleep 0.25
  done
}

# close_extra_fds — close every inherited file descriptor above 2 in the current (sub)shell,
# so daemons started from it don't keep a caller's pipes open (which would make a caller that
# waits for EOF on its output hang).
close_extra_fds() {
  local path fd
  for path in /proc/"$BASHPID"/fd/*; do
    fd="${path##*/}"
    if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then
      exec {fd}>&- || true
    fi
  done
}
