#!/bin/bash
# oc-recover's restore runner: one control-plane host's part of restoring
# etcd from a backup, as "Restoring to a previous cluster state" (OpenShift
# documentation, Backup and restore) lays it out, without the API:
#
#   run.sh peer RECOVERY-NODE   on every other control-plane host that is up;
#   run.sh recovery             on the host that restores;
#   run.sh abort                undoes this host's part while the recovery host
#                               has not restored (oc-recover runs it when it
#                               could not start every host's part).
#
# It reads plan.env beside it (written by oc-recover: the restore's ID, the
# profile, this host and every control-plane host) and runs from that
# directory, on /var: a restore does not rewind it, a reboot keeps it, and
# moving etcd's data there is a rename. Every step leaves a marker in
# state/, and a second run skips what is done: above all it never runs
# cluster-restore.sh twice, which would delete the data the first run set
# aside. Nothing is deleted; what is moved is moved within /var.
#
# A peer stops its etcd and kube-apiserver, moves its data aside, and waits
# for the recovery host to serve a new etcd cluster. Should the recovery host
# still serve the old cluster after PEER_DEADLINE seconds (it never
# restored), the peer puts everything back and the cluster stays as it was.
# The recovery host restores only once etcd answers on no peer.
set -o errexit
set -o nounset
set -o pipefail

D=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091
. "${D}/plan.env"
ROLE="${1:-}"
RECOVERY_NODE="${THIS_NODE}"
[ "${ROLE}" != peer ] || RECOVERY_NODE="${2:-}"
RECOVERY_IP="" PEER_IPS=""
for n in ${NODES}; do
  if [ "${n%%=*}" = "${RECOVERY_NODE}" ]; then
    RECOVERY_IP="${n#*=}"
  fi
  if [ "${n%%=*}" != "${THIS_NODE}" ]; then
    PEER_IPS="${PEER_IPS} ${n#*=}"
  fi
done
STATE="${D}/state"
MANIFEST_DIR=/etc/kubernetes/manifests
ETCD_DATA_DIR=/var/lib/etcd
ETCD_DATA_BACKUP=/var/lib/etcd-backup
MANIFESTS_STOPPED=/home/core/assets/manifests-stopped
ETCD_CONTAINERS='^(etcd|etcdctl|etcd-metrics|etcd-readyz|etcd-rev|etcd-backup-server)$'
ALL_CONTAINERS='^(etcd|etcdctl|etcd-metrics|etcd-readyz|etcd-rev|etcd-backup-server|kube-apiserver|kube-controller-manager|kube-scheduler)$'

say() { echo "oc-recover restore ${RESTORE_ID} on ${THIS_NODE}: $*" | tee -a "${D}/run.log"; }
done_() { [ -f "${STATE}/$1" ]; }
mark() { date -u +%Y-%m-%dT%H:%M:%SZ >"${STATE}/$1"; }

usage() {
  echo "usage: $0 recovery | peer RECOVERY-NODE | abort"
  echo "RECOVERY-NODE is one of the control-plane hosts: ${NODES}"
  exit 2
}
case "${ROLE}" in
recovery | cluster-id | abort) ;;
peer)
  if [ -z "${RECOVERY_IP}" ]; then
    echo "${RECOVERY_NODE:-no recovery host given}: not a control-plane host of this cluster"
    usage
  fi
  if [ "${RECOVERY_NODE}" = "${THIS_NODE}" ]; then
    echo "This host restores: run '$0 recovery' here."
    exit 2
  fi
  ;;
*) usage ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "This must be run as root (sudo -i)."
  exit 1
fi
if [ "${ROLE}" != cluster-id ]; then
  install -d -m 0700 "${STATE}"
fi
if [ "${ROLE}" = abort ]; then
  :
elif done_ done; then
  say "already done at $(cat "${STATE}/done")"
  exit 0
elif done_ rolled-back; then
  say "rolled back at $(cat "${STATE}/rolled-back"): nothing left to do"
  exit 3
fi

# etcd's client certificates as the etcd scripts find them on the host.
# shellcheck disable=SC1091
. /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env
for v in ETCDCTL_CACERT ETCDCTL_CERT ETCDCTL_KEY; do
  if [ ! -f "${!v}" ]; then
    export "${v}=$(echo "${!v}" | sed -e 's|static-pod-certs|static-pod-resources/etcd-certs|')"
  fi
done

# cluster_id IP: the etcd cluster ID the member at IP serves, or nothing
# (always status 0: a member that does not answer is an answer, and under
# errexit a failing id=$(...) would end the runner mid-restore).
cluster_id() {
  {
    curl -sS --max-time 5 --cacert "${ETCDCTL_CACERT}" --cert "${ETCDCTL_CERT}" --key "${ETCDCTL_KEY}" \
      -X POST -d '{}' "https://$1:2379/v3/maintenance/status" 2>/dev/null || true
  } | sed -n 's/.*"cluster_id":"\{0,1\}\([0-9]*\)"\{0,1\}.*/\1/p'
}
if [ "${ROLE}" = cluster-id ]; then
  cluster_id "${THIS_IP}"
  exit 0
fi

# answers IP: whether anything listens on etcd's client port at IP.
answers() { timeout 3 bash -c "exec 3<>/dev/tcp/$1/2379" 2>/dev/null; }
containers() { crictl ps -q --name "$1" 2>/dev/null || true; }

# wait_stopped PATTERN SECONDS: until no container matches, or fail.
wait_stopped() {
  local until=$((SECONDS + $2))
  while [ -n "$(containers "$1")" ]; do
    if [ "${SECONDS}" -ge "${until}" ]; then
      return 1
    fi
    sleep 2
  done
}

# move_new SRC DST: rename SRC to DST, or to DST.N when DST exists.
move_new() {
  local dst="$2" n=1
  while [ -e "${dst}" ]; do
    dst="$2.${n}"
    n=$((n + 1))
  done
  mv "$1" "${dst}"
  say "moved $1 to ${dst}"
}

record_old_cluster() {
  done_ old-cluster-id && return
  local id
  id=$(cluster_id "${THIS_IP}")
  id="${id:-${OLD_CLUSTER_ID:-}}"
  if [ -z "${id}" ]; then
    say "cannot tell which etcd cluster this host served (its member does not answer and plan.env does not say): nothing was changed"
    exit 1
  fi
  echo "${id}" >"${STATE}/old-cluster-id"
}

stop_pods() {
  done_ pods-stopped && return
  if [ "${PROFILE}" = modern ]; then
    say "stopping etcd (disable-etcd.sh)"
    /usr/local/bin/disable-etcd.sh
  else
    install -d -m 0700 "${D}/manifests"
    local m
    for m in etcd-pod.yaml kube-apiserver-pod.yaml kube-controller-manager-pod.yaml kube-scheduler-pod.yaml; do
      if [ -f "${MANIFEST_DIR}/${m}" ]; then
        mv "${MANIFEST_DIR}/${m}" "${D}/manifests/${m}"
        say "stopped ${m%-pod.yaml}"
      fi
    done
    say "waiting for etcd, kube-apiserver, kube-controller-manager and kube-scheduler to stop"
    if ! wait_stopped "${ALL_CONTAINERS}" "${STOP_TIMEOUT}"; then
      say "their containers still run after ${STOP_TIMEOUT}s: $(containers "${ALL_CONTAINERS}" | tr '\n' ' ')"
      put_back
      exit 3
    fi
  fi
  mark pods-stopped
}

move_data() {
  done_ data-moved && return
  if [ "${DATA_MOVE}" = within ]; then
    # /var/lib/etcd is a file system of its own: rename within it.
    [ ! -d "${ETCD_DATA_DIR}/member" ] || move_new "${ETCD_DATA_DIR}/member" "${ETCD_DATA_DIR}/.oc-recover-${RESTORE_ID}-member"
  else
    move_new "${ETCD_DATA_DIR}" "${D}/etcd-data"
    install -d -m 0700 "${ETCD_DATA_DIR}"
  fi
  mark data-moved
}

# put_back undoes a peer's part: its data, then its pods, as they were.
put_back() {
  say "putting etcd's data and the static pods back: the cluster stays as it was"
  # What was moved, marker or not: a run stopped mid-step may not have
  # marked it.
  local moved="${ETCD_DATA_DIR}/.oc-recover-${RESTORE_ID}-member"
  if [ "${DATA_MOVE}" = within ]; then
    if [ -d "${moved}" ] && [ ! -e "${ETCD_DATA_DIR}/member" ]; then
      mv "${moved}" "${ETCD_DATA_DIR}/member"
    fi
  elif [ -d "${D}/etcd-data" ]; then
    if [ -e "${ETCD_DATA_DIR}" ]; then
      rmdir "${ETCD_DATA_DIR}" 2>/dev/null || move_new "${ETCD_DATA_DIR}" "${D}/etcd-data-empty"
    fi
    mv "${D}/etcd-data" "${ETCD_DATA_DIR}"
  fi
  local m
  if [ "${PROFILE}" = modern ]; then
    [ ! -f "${MANIFESTS_STOPPED}/etcd-pod.yaml" ] || mv "${MANIFESTS_STOPPED}/etcd-pod.yaml" "${MANIFEST_DIR}/"
  else
    for m in "${D}"/manifests/*.yaml; do
      [ ! -f "${m}" ] || mv "${m}" "${MANIFEST_DIR}/"
    done
  fi
  mark rolled-back
}

restart_kubelet() {
  [ "${PROFILE}" = legacy ] || return 0
  done_ kubelet-restarted && return
  say "restarting the kubelet"
  systemctl restart kubelet
  mark kubelet-restarted
}

peer() {
  record_old_cluster
  local old
  old=$(cat "${STATE}/old-cluster-id")
  stop_pods
  move_data
  if ! done_ restored-seen; then
    say "waiting for ${RECOVERY_NODE} (${RECOVERY_IP}) to serve a new etcd cluster (run '$0 recovery' there)"
    local until=$((SECONDS + PEER_DEADLINE)) id
    while :; do
      id=$(cluster_id "${RECOVERY_IP}")
      if [ -n "${id}" ] && [ "${id}" != "${old}" ]; then
        break
      fi
      if [ "${SECONDS}" -ge "${until}" ] && [ -n "${id}" ]; then
        say "${RECOVERY_NODE} still serves the old etcd cluster after ${PEER_DEADLINE}s: it did not restore"
        put_back
        exit 3
      fi
      sleep 3
    done
    mark restored-seen
  fi
  restart_kubelet
  mark done
  say "done: this host's etcd rejoins once the etcd operator redeploys it"
}

# decide: the recovery host's decision to restore (peers-stopped) and an
# abort (aborted) are each taken under this lock, so exactly one of them
# wins: an abort that comes first keeps the recovery host from ever
# beginning, one that comes later finds the restore begun and refuses.
decide() {
  (
    flock 9
    ! done_ "$2" || exit 1
    mark "$1"
  ) 9>"${STATE}/.decide.lock"
}

# abort: a peer puts back what it moved, the recovery host marks that it
# will not restore. Neither happens once the recovery host has decided to
# restore (it may be restoring) or a peer has seen it restored.
abort() {
  if done_ rolled-back; then
    say "already rolled back at $(cat "${STATE}/rolled-back")"
    return 0
  fi
  if done_ restored-seen || done_ done || ! decide aborted peers-stopped; then
    say "too late to abort: the restore has begun on the recovery host"
    exit 3
  fi
  if done_ pods-stopped || done_ data-moved || [ -d "${D}/manifests" ]; then
    put_back
  else
    mark rolled-back
  fi
  say "aborted: this host is as it was"
}

recovery() {
  record_old_cluster
  local old
  old=$(cat "${STATE}/old-cluster-id")
  if ! done_ peers-stopped; then
    say "waiting until etcd answers on no other control-plane host (run '$0 peer ${THIS_NODE}' there)"
    local until=$((SECONDS + RECOVERY_DEADLINE)) running ip
    while :; do
      if done_ aborted; then
        say "aborted (run.sh abort) before the restore began: nothing was changed here"
        exit 3
      fi
      running=""
      for ip in ${PEER_IPS}; do
        if answers "${ip}"; then running="${running} ${ip}"; fi
      done
      [ -n "${running}" ] || break
      if [ "${SECONDS}" -ge "${until}" ]; then
        say "etcd still answers on${running} after ${RECOVERY_DEADLINE}s: nothing was changed here"
        exit 3
      fi
      sleep 2
    done
    if ! decide peers-stopped aborted; then
      say "aborted (run.sh abort) before the restore began: nothing was changed here"
      exit 3
    fi
  fi
  if ! done_ prior-moved; then
    install -d -m 0700 "${D}/prior"
    # cluster-restore.sh deletes the data an earlier restore set aside.
    [ ! -d "${ETCD_DATA_BACKUP}/member" ] || move_new "${ETCD_DATA_BACKUP}/member" "${D}/prior/etcd-backup-member"
    mark prior-moved
  fi
  if ! done_ restored; then
    if done_ restore-started; then
      # An interrupted run: what it set aside is kept before trying again.
      [ ! -d "${ETCD_DATA_BACKUP}/member" ] || move_new "${ETCD_DATA_BACKUP}/member" "${D}/pre-restore-member"
    fi
    if [ "${PROFILE}" = modern ] && ! done_ pods-stopped; then
      say "stopping etcd (disable-etcd.sh)"
      /usr/local/bin/disable-etcd.sh
      mark pods-stopped
    fi
    mark restore-started
    say "restoring etcd from ${D}/backup (cluster-restore.sh)"
    /usr/local/bin/cluster-restore.sh "${D}/backup"
    mark restored
  fi
  restart_kubelet
  if ! done_ pre-restore-moved; then
    [ ! -d "${ETCD_DATA_BACKUP}/member" ] || move_new "${ETCD_DATA_BACKUP}/member" "${D}/pre-restore-member"
    mark pre-restore-moved
  fi
  say "waiting for etcd to serve the restored cluster and the kube-apiserver to answer"
  local id
  until id=$(cluster_id "${THIS_IP}") && [ -n "${id}" ] && [ "${id}" != "${old}" ] &&
    [ "$(curl -ksS --max-time 5 https://${THIS_IP}:6443/readyz 2>/dev/null)" = ok ]; do
    sleep 3
  done
  mark done
  say "done: etcd serves cluster ${id} with one member; the API answers"
}

"${ROLE}"
