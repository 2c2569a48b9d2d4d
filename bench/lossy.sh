#!/usr/bin/env bash
# Goodput of sft, rsync over ssh and uftp on the same emulated lossy link.
#
# Link: `sft-netsim link` between the namespaces sftA (10.77.0.1, senders) and
# sftB (10.77.0.2, receivers): RATE (default 100mbit), DELAY each way (25ms,
# i.e. 50 ms RTT), drop-tail QUEUE (50ms, about one BDP), Bernoulli loss N %
# in both directions. Every measurement gets a fresh link seeded with
# SEED + run - 1, so the three tools of one run see the same loss sequence.
#
# Per loss level (LOSSES, default "0 1 5 10 30") and run (RUNS, default 3):
#   sft    `sft recv --once --accept-any` in sftB, `sft send --no-daemon` in sftA
#          (plus SFT_SEND_ARGS, e.g. "--packet-fec on")
#   rsync  rsync --whole-file (no compression) over ssh to a private sshd in sftB
#   uftp   uftpd in sftB, uftp in sftA at a fixed UFTP_KBPS (90000 = 90 Mbit/s,
#          -C none), unicast to 10.77.0.2, closed group of that one client
# File: SIZE_MB (default 100) MiB of random bytes at loss <= 10 %,
# SIZE_MB_HIGH (default 100 too; 20 bounds the sweep's time when a tool is
# slow) above. Each client is killed after TIMEOUT (default 120) s.
# Goodput = file bytes / wall time of the client command (connection set-up
# included); a run that times out, fails or whose received file differs
# (cmp) counts as 0 and as failed. The point is the median of the runs.
#
# Output: name=value lines (lossy_<tool>_mbps_loss<N>, lossy_<tool>_failed_loss<N>)
# and a markdown table on stdout; into OUT (default docs/bench): lossy.dat
# (medians), lossy-runs.csv (every run, with link drop counters and CPU
# seconds), lossy.md (the table) and lossy.png (bench/lossy_plot.gp).
#
# Needs root and /dev/net/tun. Installs its Debian packages if missing.
# Binaries: SFT and NETSIM, or `make build BUILD=$BUILD` (default build).
# Refuses to run if the namespaces sftA or sftB exist.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RATE=${RATE:-100mbit}
DELAY=${DELAY:-25ms}
QUEUE=${QUEUE:-50ms}
LOSSES=${LOSSES:-"0 1 5 10 30"}
RUNS=${RUNS:-3}
SEED=${SEED:-1}
SIZE_MB=${SIZE_MB:-100}
SIZE_MB_HIGH=${SIZE_MB_HIGH:-100} # the same file as below 10 % (was 20 until
                                  # session 7, when sft at 30 % was slow)
HIGH_LOSS=${HIGH_LOSS:-10}        # loss above this uses SIZE_MB_HIGH
TIMEOUT=${TIMEOUT:-120}
UFTP_KBPS=${UFTP_KBPS:-90000}
TCP_CC=${TCP_CC:-bbr}              # TCP congestion control in both namespaces
TOOLS=${TOOLS:-"sft rsync uftp"}
OUT=${OUT:-docs/bench}
BUILD=${BUILD:-build}
NS_A=sftA NS_B=sftB ADDR_A=10.77.0.1 ADDR_B=10.77.0.2

die() { echo "lossy.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, TUN device)"
[ -c /dev/net/tun ] || die "/dev/net/tun is missing"

# ---- dependencies (idempotent, like scripts/install-deps) ------------------
PKGS=(openssh-server openssh-client rsync uftp gnuplot-nox iproute2 bc coreutils)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "lossy.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -z "${SFT:-}" ] || [ -z "${NETSIM:-}" ]; then
  make -s build BUILD="$BUILD" >&2
  SFT=${SFT:-$ROOT/$BUILD/sft}
  NETSIM=${NETSIM:-$ROOT/$BUILD/sft-netsim}
fi
{ [ -x "$SFT" ] && [ -x "$NETSIM" ]; } || die "no sft ($SFT) or sft-netsim ($NETSIM)"

for ns in "$NS_A" "$NS_B"; do
  if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
    die "network namespace $ns exists (a stale run?); remove it with: ip netns delete $ns"
  fi
done

# ---- work dir and cleanup -----------------------------------------------------
W=$(mktemp -d /tmp/sft-lossy.XXXXXX)
LINK_PID='' SRV_PID='' CLI_PID=''
stop_pid() { # PID: TERM, wait up to 5 s, then KILL
  local p=$1
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
stop_tree() { # PID and its descendants (sshd's per-connection children outlive
  local p=$1 c  # the listener and hang in the deleted namespace otherwise)
  [ -n "$p" ] || return 0
  for c in $(pgrep -P "$p" || true); do stop_tree "$c"; done
  stop_pid "$p"
}
cleanup() {
  stop_tree "$CLI_PID"; CLI_PID=
  stop_tree "$SRV_PID"; SRV_PID=
  stop_pid "$LINK_PID"; LINK_PID=   # the link deletes the namespaces it made
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- link -----------------------------------------------------------------------
cpu_s() { # PID -> utime+stime in seconds
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}
link_up() { # SPEC
  : >"$W/link.out"
  "$NETSIM" link --spec "$1" --ns-a "$NS_A" --ns-b "$NS_B" \
    --stats-json "$W/link.json" >"$W/link.out" 2>"$W/link.err" &
  LINK_PID=$!
  for _ in $(seq 1 200); do
    grep -q '^ready' "$W/link.out" && break
    kill -0 "$LINK_PID" 2>/dev/null || { cat "$W/link.err" >&2; die "sft-netsim link failed"; }
    sleep 0.05
  done
  grep -q '^ready' "$W/link.out" || die "sft-netsim link not ready"
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_congestion_control="$TCP_CC"
  done
}
link_down() { # -> LINK_CPU, UP_LOSS, UP_QUEUE (model drops A->B)
  LINK_CPU=$(cpu_s "$LINK_PID")
  stop_pid "$LINK_PID"; LINK_PID=
  UP_LOSS=$(sed -n 's/.*"up":{[^}]*"drop_loss":\([0-9]*\).*/\1/p' "$W/link.json" 2>/dev/null)
  UP_QUEUE=$(sed -n 's/.*"up":{[^}]*"drop_queue":\([0-9]*\).*/\1/p' "$W/link.json" 2>/dev/null)
  rm -f "$W/link.json"
}
wait_listen() { # NS PROTO(t|u) PORT: until a socket listens (10 s)
  for _ in $(seq 1 200); do
    [ -n "$(ip netns exec "$1" ss -Hl"$2"n "sport = :$3" 2>/dev/null)" ] && return 0
    kill -0 "$SRV_PID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# ---- ssh set-up (once) -----------------------------------------------------------
SSH_PORT=2222
mkdir -p "$W/ssh" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$W/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$W/ssh/client_key"
cp "$W/ssh/client_key.pub" "$W/ssh/authorized_keys"
cat >"$W/ssh/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress $ADDR_B
HostKey $W/ssh/host_key
PidFile $W/ssh/sshd.pid
PermitRootLogin prohibit-password
AuthorizedKeysFile $W/ssh/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
Compression no
EOF
SSH_CMD="ssh -p $SSH_PORT -i $W/ssh/client_key -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o Compression=no"
UFTP_PORT=11044
UFTP_UID=0x$(printf '%02x' ${ADDR_B//./ })

# ---- one measurement --------------------------------------------------------------
# measure TOOL FILE -> RUN_S (wall seconds), RUN_OK (1/0), CLI_CPU (client user+sys)
measure() {
  local tool=$1 f=$2 rc=0 dst="$W/dst" t
  rm -rf "$dst"; mkdir -p "$dst"
  RUN_OK=0 RUN_S=$TIMEOUT CLI_CPU=0
  case $tool in
  sft)
    ip netns exec "$NS_B" "$SFT" recv --dir "$dst" --listen "$ADDR_B:5000" --once \
      --accept-any --data-dir "$W/sft-r" >"$W/srv.out" 2>"$W/srv.err" &
    SRV_PID=$!
    for _ in $(seq 1 200); do
      grep -q '^listening on' "$W/srv.out" 2>/dev/null && break
      kill -0 "$SRV_PID" 2>/dev/null || break
      sleep 0.05
    done
    grep -q '^listening on' "$W/srv.out" || { cat "$W/srv.err" >&2; return 0; }
    # shellcheck disable=SC2086 # SFT_SEND_ARGS: extra options, word-split
    set -- timeout -k 5 "$TIMEOUT" ip netns exec "$NS_A" "$SFT" send "$f" "$ADDR_B:5000" \
      --no-daemon --data-dir "$W/sft-s" ${SFT_SEND_ARGS:-}
    ;;
  rsync)
    ip netns exec "$NS_B" /usr/sbin/sshd -D -e -f "$W/ssh/sshd_config" \
      >"$W/srv.out" 2>"$W/srv.err" &
    SRV_PID=$!
    wait_listen "$NS_B" t "$SSH_PORT" || { cat "$W/srv.err" >&2; return 0; }
    set -- timeout -k 5 "$TIMEOUT" ip netns exec "$NS_A" rsync --whole-file \
      --no-compress -e "$SSH_CMD" "$f" "root@$ADDR_B:$dst/"
    ;;
  uftp)
    ip netns exec "$NS_B" uftpd -d -I "$ADDR_B" -U "$UFTP_UID" -p "$UFTP_PORT" \
      -D "$dst" -B 8388608 >"$W/srv.out" 2>"$W/srv.err" &
    SRV_PID=$!
    wait_listen "$NS_B" u "$UFTP_PORT" || { cat "$W/srv.err" >&2; return 0; }
    # -M unicast: everything goes to that address; -H: closed group of its UID
    # (no open-registration wait); -C none: fixed rate -R (Kbit/s); -Y none.
    set -- timeout -k 5 "$TIMEOUT" ip netns exec "$NS_A" uftp -M "$ADDR_B" -I "$ADDR_A" \
      -p "$UFTP_PORT" -H "$UFTP_UID" -R "$UFTP_KBPS" -C none -Y none -B 8388608 "$f"
    ;;
  esac
  local TIMEFORMAT='%R %U %S'
  # in the background so that a TERM/INT trap runs at once (bash defers traps
  # until a foreground child ends)
  (time "$@" >"$W/cli.out" 2>"$W/cli.err") 2>"$W/time" &
  CLI_PID=$!
  wait "$CLI_PID" || rc=$?
  CLI_PID=
  # shellcheck disable=SC2034
  read -r RUN_S u s <"$W/time"
  CLI_CPU=$(echo "$u + $s" | bc | xargs printf '%.2f')
  if [ "$tool" = sft ]; then # the receiver exits by itself after --once
    for _ in $(seq 1 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  stop_tree "$SRV_PID"; SRV_PID=
  t=$dst/$(basename "$f")
  if [ "$rc" -eq 0 ] && cmp -s "$f" "$t"; then
    RUN_OK=1
  else
    RUN_OK=0
    [ "$rc" -ge 124 ] && RUN_S=$TIMEOUT
    if [ "$rc" -ge 124 ]; then why="timed out after $TIMEOUT s (exit $rc)"
    elif [ "$rc" -ne 0 ]; then why="exit $rc"
    elif [ -f "$t" ]; then why="received file differs"
    else why="no file received"; fi
    echo "lossy.sh: $tool run failed: $why" >&2
    tail -n 3 "$W/cli.err" >&2 || true
  fi
  rm -rf "$dst"
}

# ---- the sweep ---------------------------------------------------------------------
case $OUT in /*) OUTD=$OUT ;; *) OUTD=$ROOT/$OUT ;; esac
mkdir -p "$OUTD"
CSV=$OUTD/lossy-runs.csv
DAT=$OUTD/lossy.dat
MD=$OUTD/lossy.md
echo "loss_pct,tool,run,seed,size_bytes,seconds,mbps,ok,up_drop_loss,up_drop_queue,link_cpu_s,client_cpu_s" >"$CSV"
rate_mbit=$(echo "$RATE" | awk '/gbit$/{print $0*1000; next} /mbit$/{print $0+0; next} /kbit$/{print $0/1000; next} {print $0/1e6}')
declare -A MED FAILS
for loss in $LOSSES; do
  if awk -v l="$loss" -v h="$HIGH_LOSS" 'BEGIN{exit !(l > h)}'; then mb=$SIZE_MB_HIGH; else mb=$SIZE_MB; fi
  f=$W/file-${mb}m
  [ -f "$f" ] || head -c "$((mb << 20))" /dev/urandom >"$f"
  cat "$f" >/dev/null
  bytes=$(stat -c %s "$f")
  declare -A R=()
  for run in $(seq 1 "$RUNS"); do
    seed=$((SEED + run - 1))
    for tool in $TOOLS; do
      link_up "rate=$RATE,delay=$DELAY,queue=$QUEUE,loss=$loss%,seed=$seed"
      measure "$tool" "$f"
      link_down
      if [ "$RUN_OK" = 1 ]; then
        mbps=$(echo "$bytes * 8 / $RUN_S / 1000000" | bc -l)
      else
        mbps=0
        FAILS[$tool,$loss]=$((${FAILS[$tool,$loss]:-0} + 1))
      fi
      R[$tool]="${R[$tool]:-} $mbps"
      printf '%s,%s,%s,%s,%s,%s,%.2f,%s,%s,%s,%s,%s\n' "$loss" "$tool" "$run" "$seed" \
        "$bytes" "$RUN_S" "$mbps" "$RUN_OK" "${UP_LOSS:-}" "${UP_QUEUE:-}" "$LINK_CPU" \
        "$CLI_CPU" >>"$CSV"
      printf 'lossy.sh: loss %s%% run %s %-5s %6.1f Mbit/s (%ss)%s\n' "$loss" "$run" "$tool" \
        "$mbps" "$RUN_S" "$([ "$RUN_OK" = 1 ] || echo ' FAILED')" >&2
    done
  done
  for tool in $TOOLS; do
    # shellcheck disable=SC2086 # one number per word
    MED[$tool,$loss]=$(printf '%s\n' ${R[$tool]} | sort -g | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]}')
  done
  unset R
done

# ---- results -----------------------------------------------------------------------
for loss in $LOSSES; do
  for tool in $TOOLS; do
    echo "lossy_${tool}_mbps_loss${loss}=${MED[$tool,$loss]}"
    echo "lossy_${tool}_failed_loss${loss}=${FAILS[$tool,$loss]:-0}"
  done
done

{
  echo "# loss_pct ideal_mbps $(for t in $TOOLS; do printf '%s_mbps ' "$t"; done)  (median of $RUNS; ideal = (1-loss) x $rate_mbit)"
  for loss in $LOSSES; do
    line="$loss $(echo "(1 - $loss / 100) * $rate_mbit" | bc -l | xargs printf '%.1f')"
    for tool in $TOOLS; do line="$line ${MED[$tool,$loss]}"; done
    echo "$line"
  done
} >"$DAT"

{
  hdr="| loss | (1-loss) x rate |" sep="|---|---|"
  for tool in $TOOLS; do hdr="$hdr $tool Mbit/s | $tool % |"; sep="$sep---|---|"; done
  echo "$hdr"; echo "$sep"
  for loss in $LOSSES; do
    ideal=$(echo "(1 - $loss / 100) * $rate_mbit" | bc -l)
    line=$(printf '| %s %% | %.1f |' "$loss" "$ideal")
    for tool in $TOOLS; do
      m=${MED[$tool,$loss]} n=${FAILS[$tool,$loss]:-0}
      note=""; [ "$n" -gt 0 ] && note=" ($n/$RUNS failed)"
      line="$line $(printf '%s%s | %.0f |' "$m" "$note" "$(echo "$m * 100 / $ideal" | bc -l)")"
    done
    echo "$line"
  done
} | tee "$MD"

gnuplot -e "datafile='$DAT'; outfile='$OUTD/lossy.png'; rate=$rate_mbit; runs=$RUNS; tools='$TOOLS'; rtt='2 x $DELAY'" \
  "$ROOT/bench/lossy_plot.gp"
echo "lossy.sh: wrote $OUT/lossy.png, $OUT/lossy.dat, $OUT/lossy-runs.csv, $OUT/lossy.md" >&2
