#!/bin/bash
# An emulated cluster on one machine: N hosts as network namespaces on a
# bridge, every link shaped to RATE in both directions (tc tbf), a program
# run across them with one MPI rank per host over TCP (or N, talking
# through shared memory within a host: --ranks-per-host), and everything
# torn down afterwards, also on failure or Ctrl-C.
#
#   bench/cluster.sh --hosts 4 --rate 1gbit [--latency 100ms] [--ranks-per-host 1] \
#       -- PROGRAM ARGS...
#
# COMMPRESS_* variables and LD_PRELOAD of the caller reach every rank. Needs
# root (ip netns, tc). Uses only its own namespaces cpc1..cpcN, bridge cpcbr0
# and addresses 10.215.0.0/24; host i is 10.215.0.i on interface cpcnet.
set -euo pipefail
hosts=4 rate=1gbit latency=100ms per=1
while [ $# -gt 0 ]; do
  case $1 in
    --hosts) hosts=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --latency) latency=$2; shift 2 ;;
    --ranks-per-host) per=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "cluster.sh: unknown option $1 (usage: --hosts N --rate R -- PROGRAM ARGS...)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "cluster.sh: no program after --" >&2; exit 2; }
[[ $hosts =~ ^[0-9]+$ ]] && [ "$hosts" -ge 1 ] && [ "$hosts" -le 64 ] ||
  { echo "cluster.sh: --hosts must be 1..64" >&2; exit 2; }
[[ $per =~ ^[0-9]+$ ]] && [ "$per" -ge 1 ] && [ "$per" -le 16 ] ||
  { echo "cluster.sh: --ranks-per-host must be 1..16" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "cluster.sh: needs root (ip netns, tc)" >&2; exit 2; }
command -v tc >/dev/null || { echo "cluster.sh: tc not found (apt-get install iproute2)" >&2; exit 2; }

BR=cpcbr0 NET=10.215.0
state=$(mktemp -d /tmp/cpcluster.XXXXXX)

down() {
  for i in $(seq 1 "$hosts"); do
    ip netns del "cpc$i" 2>/dev/null || true
    ip link del "cpch$i" 2>/dev/null || true
  done
  ip link del $BR 2>/dev/null || true
  rm -rf "$state"
}
trap down EXIT INT TERM

down_quiet() { for i in $(seq 1 64); do ip netns del "cpc$i" 2>/dev/null || true; done; ip link del $BR 2>/dev/null || true; }
down_quiet # leftovers of an earlier run that was killed hard
mkdir -p "$state"
ip link add $BR type bridge
ip addr add $NET.254/24 dev $BR # mpirun, in the root namespace, reaches the hosts
ip link set $BR up
: > "$state/hosts"
for i in $(seq 1 "$hosts"); do
  ns=cpc$i
  ip netns add $ns
  ip link add cpch$i type veth peer name cpcp$i
  ip link set cpcp$i netns $ns
  # The same name in every host, for libraries that pick an interface by
  # name (gloo: GLOO_SOCKET_IFNAME=cpcnet).
  ip netns exec $ns ip link set cpcp$i name cpcnet
  ip link set cpch$i master $BR up
  ip netns exec $ns ip addr add $NET.$i/24 dev cpcnet
  ip netns exec $ns ip link set cpcnet up
  ip netns exec $ns ip link set lo up
  # Both directions of every link: into the bridge and out of it.
  ip netns exec $ns tc qdisc add dev cpcnet root tbf rate "$rate" burst 256kb latency "$latency"
  tc qdisc add dev cpch$i root tbf rate "$rate" burst 256kb latency "$latency"
  echo "$ns slots=$per" >> "$state/hosts"
done
# Each host gets its own host name too (a UTS namespace). With the
# machine's name in every namespace, the daemons made their session
# directories under one path (/tmp/ompi.<name>.0/jf.N) at the same moment,
# and now and then one failed ("mkdir ... File exists", orte_init failed;
# its peers then reported "unable to complete a TCP connection"): 2
# starts in 40 before, none in 40 after (docs/benchmarks.md).
cat > "$state/rsh" <<'AGENT'
#!/bin/bash
h=$1; shift
exec ip netns exec "$h" unshare --uts /bin/sh -c "hostname $h && $*"
AGENT
chmod +x "$state/rsh"
# Wait until every host reaches the next one (a fresh bridge port may
# drop the first packets; Open MPI's TCP connect then fails the job). A TCP
# connect to the discard port answers at once, accepted or refused, when
# the peer is reachable, and hangs when it is not (no ping needed).
reach() { # reach NAMESPACE|- ADDRESS
  local pre=()
  [ "$1" = - ] || pre=(ip netns exec "$1")
  "${pre[@]}" timeout 1 bash -c "exec 3<>/dev/tcp/$2/9" 2>/dev/null
  [ $? -ne 124 ]
}
ready() {
  local i
  for i in $(seq 1 "$hosts"); do
    reach "cpc$i" "$NET.$(( i % hosts + 1 ))" && reach - "$NET.$i" || return 1
  done
}
tries=20
until ready; do
  tries=$((tries - 1))
  [ "$tries" -gt 0 ] || { echo "cluster.sh: the emulated hosts do not reach each other" >&2; exit 1; }
  sleep 0.5
done
echo "cluster.sh: $hosts hosts at $rate per link, $per rank(s) each" >&2

fwd=()
for v in $(env | grep -o '^COMMPRESS_[A-Z0-9_]*' || true); do fwd+=(-x "$v"); done
if [ -n "${LD_PRELOAD:-}" ]; then fwd+=(-x "LD_PRELOAD=$LD_PRELOAD"); unset LD_PRELOAD; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# The hosts share this machine's cores. Open MPI sees one slot per host,
# so it does not know it is oversubscribed and its waiting ranks spin at
# full speed, taking the core from a rank that computes on it (a real host
# has its own cores). With more hosts than cores, waiting ranks yield.
yield=()
if [ $((hosts * per)) -gt "$(nproc)" ]; then yield=(--mca mpi_yield_when_idle 1); fi
# Ranks of one host talk through shared memory (vader, copy-in/copy-out:
# the namespaces' processes may not read each other's memory), ranks of
# different hosts over the shaped links; MPI_COMM_TYPE_SHARED groups the
# ranks a host's daemon started, as on a real cluster.
btl=tcp,self
if [ "$per" -gt 1 ]; then btl=tcp,vader,self; fi
set +e
# rtc ^hwloc: Open MPI 4.1's daemons map a shared hwloc topology into the
# "biggest" hole of the address space, which now and then lands on the
# stack and crashes orted at startup (seen here). It only serves process
# binding, which these runs do not use.
mpirun --hostfile "$state/hosts" --mca plm_rsh_agent "$state/rsh" --mca rtc ^hwloc \
  --mca btl $btl --mca btl_vader_single_copy_mechanism none \
  --mca btl_tcp_if_include $NET.0/24 --mca oob_tcp_if_include $NET.0/24 \
  --map-by slot -np $((hosts * per)) "${yield[@]}" "${fwd[@]}" "$@"
rc=$?
exit $rc
