"""The POSIX ``sh`` scripts the SSH driver runs on a host, one round trip each.

Each is run as ``sh -c SCRIPT sh ARG...``: its data arrives as positional arguments
(quoted once, by ``shlex.join``, for the login shell that ssh hands the command to) and
is never spliced into the script's text. Outputs use ASCII separators that no name
gastown makes can contain: ``\\x1e`` between sections, ``\\x1d`` before a pane's block.
"""

from __future__ import annotations

# $1 tmux socket, $2 list-panes format, then log paths. Prints the panes, then
# "\x1e<tmux status>\t<its first complaint>", then `wc -c` of the logs that exist.
SNAPSHOT = r"""
sock=$1; fmt=$2; shift 2
out=$(tmux -u -S "$sock" list-panes -a -F "$fmt" 2>&1); status=$?
if [ "$status" -eq 0 ]; then
  [ -n "$out" ] && printf '%s\n' "$out"
  printf '\036%s\t\n' 0
else
  printf '\036%s\t%s\n' "$status" "${out%%
*}"
fi
[ "$#" -eq 0 ] || wc -c -- "$@" 2>/dev/null
exit 0
"""

# Start an agent in a new window (or a prestarted one, or respawned in a reused pane):
# tag the pane, pipe it to the log, then release the launch file, in that order.
# $1 socket, $2 conf, $3 mode (new|prestarted|reuse), $4 session, $5 pane, $6 spawn,
# $7 log, $8 pipe-pane command, $9 launch file, $10 cwd, $11 window name; the rest is
# tmux's tail: -e K=V ... -- the trampoline's argv. Prints "<pane id> <pane pid>".
START = r"""
sock=$1 conf=$2 mode=$3 session=$4 pane=$5 spawn=$6 log=$7 pipe=$8 launch=$9
shift 9; cwd=$1 window=$2; shift 2
T() { tmux -u -S "$sock" -f "$conf" "$@"; }
release() { mv -f -- "$launch.pending" "$launch"; }
mkdir -p -- "$(dirname -- "$log")" || exit 1
if [ "$mode" = reuse ] && [ "$(T display-message -p -t "$pane" '#{pane_id}' 2>/dev/null)" != "$pane" ]; then
  mode=new
fi
if [ "$mode" = reuse ]; then
  T pipe-pane -t "$pane" 2>/dev/null
  if [ "$(T display-message -p -t "$pane" '#{pane_dead}')" = 1 ]; then
    T respawn-pane -k -t "$pane" -c "$cwd" -- sleep 3600 || exit 1
  fi
  release || exit 1
  T set-option -p -t "$pane" @gt_spawn "$spawn" \; pipe-pane -o -t "$pane" "$pipe" \; \
    respawn-pane -k -t "$pane" -c "$cwd" "$@" || exit 1
else
  if [ "$mode" = new ]; then
    pane=$(T new-window -t "=$session:" -d -P -F '#{pane_id}' -n "$window" -c "$cwd" "$@" 2>/dev/null) ||
    pane=$(T new-session -s "$session" -d -P -F '#{pane_id}' -n "$window" -c "$cwd" "$@" 2>/dev/null) ||
    pane=$(T new-window -t "=$session:" -d -P -F '#{pane_id}' -n "$window" -c "$cwd" "$@") || exit 1
  fi
  T set-option -p -t "$pane" @gt_spawn "$spawn" \; pipe-pane -o -t "$pane" "$pipe" || exit 1
  release || exit 1
fi
T display-message -p -t "$pane" '#{pane_id} #{pane_pid}'
"""

# $1 socket, $2 pane. Prints "gone", "alive", or "dead <status>" and the pane's last lines.
CHECK_STARTED = r"""
sock=$1 pane=$2
T() { tmux -u -S "$sock" "$@"; }
sleep 0.3
state=$(T display-message -p -t "$pane" '#{pane_dead} #{pane_dead_status}' 2>/dev/null) || { echo gone; exit 0; }
case $state in
  1*) T run-shell true 2>/dev/null
      echo "dead $(T display-message -p -t "$pane" '#{pane_dead_status}')"
      T capture-pane -p -J -t "$pane" -S -30 ;;
  *) echo alive ;;
esac
"""

# The process tree under a pid, deepest first (ps works on Linux and the BSDs).
_DESCENDANTS = r"""
descendants() {
  ps -A -o pid= -o ppid= | awk -v root="$1" '
    { kids[$2] = kids[$2] " " $1 }
    function walk(p,   n, a, i) { n = split(kids[p], a, " "); for (i = 1; i <= n; i++) { walk(a[i]); print a[i] } }
    END { walk(root) }'
}
"""

# $1 socket, $2 grace in tenths of a second, then panes. For each live pane prints
# "\x1d<pane>" and its last lines; TERMs every process tree at once, waits out the
# grace once, KILLs survivors, closes the windows; ends with "\x1e<trees killed>".
STOP = _DESCENDANTS + r"""
sock=$1 ticks=$2; shift 2
T() { tmux -u -S "$sock" "$@"; }
trees=""
for pane in "$@"; do
  info=$(T display-message -p -t "$pane" '#{pane_dead} #{pane_pid}' 2>/dev/null) || continue
  printf '\035%s\n' "$pane"
  T capture-pane -p -J -t "$pane" -S -40 2>/dev/null
  dead=${info%% *}; pid=${info#* }
  [ "$dead" = 1 ] || trees="$trees $(descendants "$pid" | tr '\n' ' ')$pid,"
done
all=$(printf '%s' "$trees" | tr ',' ' ')
[ -n "${all# }" ] && kill -TERM $all 2>/dev/null
i=0
while [ "$i" -lt "$ticks" ]; do
  left=""; for v in $all; do kill -0 "$v" 2>/dev/null && left=1; done
  [ -z "$left" ] && break
  sleep 0.1; i=$((i + 1))
done
forced=0
IFS=,; for tree in $trees; do
  IFS=' '; hit=""
  for v in $tree; do kill -0 "$v" 2>/dev/null && { kill -KILL "$v" 2>/dev/null; hit=1; }; done
  [ -n "$hit" ] && forced=$((forced + 1))
done
IFS=' '
for pane in "$@"; do T kill-window -t "$pane" 2>/dev/null; done
printf '\036%s\n' "$forced"
"""

# $1 marker, $2 grace in tenths of a second, $3 socket. Stops every process whose
# command line or environment mentions the marker, sparing this script's own chain of
# parents and the tmux server; prints how many it found.
SWEEP = r"""
marker=$1 ticks=$2 sock=$3
spare=" $$ $(tmux -u -S "$sock" display-message -p '#{pid}' 2>/dev/null) "
p=$$
while [ "${p:-1}" -gt 1 ]; do p=$(ps -o ppid= -p "$p" | tr -d ' '); spare="$spare${p:-1} "; done
victims=""
for f in $(grep -lsaF -- "$marker" /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null); do
  pid=${f#/proc/}; pid=${pid%%/*}
  case $spare in *" $pid "*) continue ;; esac
  case " $victims " in *" $pid "*) continue ;; esac
  victims="$victims $pid"
done
[ -n "$victims" ] && kill -TERM $victims 2>/dev/null
i=0
while [ -n "$victims" ] && [ "$i" -lt "$ticks" ]; do
  left=""; for v in $victims; do kill -0 "$v" 2>/dev/null && left=1; done
  [ -z "$left" ] && break
  sleep 0.1; i=$((i + 1))
done
for v in $victims; do kill -KILL "$v" 2>/dev/null; done
set -- $victims; echo "$#"
"""

# $1 path, $2 first byte (1-based), $3 how many bytes.
READ_LOG = r"""tail -c +"$2" -- "$1" 2>/dev/null | head -c "$3"; exit 0"""

# $1 root as configured (absolute, or ~/...): prints it absolute.
RESOLVE_ROOT = r"""root=$1; case $root in "~/"*) root="$HOME/${root#??}" ;; esac; printf '%s\n' "$root" """

# $1 mirror: a bare repository the hub pushes the rig's target into.
INIT_MIRROR = r"""[ -d "$1" ] || { mkdir -p -- "$(dirname -- "$1")" && git init -q --bare -- "$1"; }"""

# $1 the hub socket's directory, $2 the socket: a file left there by an earlier connection
# is removed so sshd can bind the reverse tunnel's end again (StreamLocalBindUnlink is no).
CLEAR_SOCKET = r"""umask 077; mkdir -p -- "$1" && rm -f -- "$2" """
