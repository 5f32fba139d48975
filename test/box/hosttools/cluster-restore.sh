#!/bin/bash
# cluster-in-a-box stand-in for /usr/local/bin/cluster-restore.sh, the etcd
# operator's restore script, on the path the real one takes when it restores
# with etcdctl (ETCD_ETCDCTL_RESTORE): stop this host's control-plane static
# pods, move the etcd data dir aside, put back the static pod resources of
# the backup, restore a one-member etcd from its snapshot with the real
# `etcdutl snapshot restore` (copied out of the etcd image, as the real
# script does), and start the static pods again, etcd first.
# From 4.18 (its etcd-common-tools has mv_static_pods) it stops etcd alone,
# and restores as that release's restore pod does: revisions bumped past
# any the cluster served (1 billion without a revision.json) and marked
# compacted, so that every watcher (the kube-apiservers that kept running)
# relists instead of waiting for revisions that will not come.
# Its messages are the real script's.
set -o errexit
set -o pipefail
set -o errtrace

if [ "$(id -u)" -ne 0 ]; then
  echo "This script must be run as root"
  exit 1
fi

source_required_dependency() {
  if [ ! -f "$1" ]; then
    echo "required dependencies not found, please ensure this script is run on a node with a functional etcd static pod"
    exit 1
  fi
  # shellcheck disable=SC1090
  source "$1"
}
source_required_dependency /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env
source_required_dependency /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd-common-tools

usage() {
  echo 'Path to the directory containing backup files is required: ./cluster-restore.sh <path-to-backup>'
  echo 'The backup directory is expected to be contain two files:'
  echo '        1. etcd snapshot'
  echo '        2. A copy of the Static POD resources at the time of backup'
  exit 1
}
if [ -z "$1" ] || [ ! -d "$1" ]; then
  usage
fi

BACKUP_DIR="$1"
# shellcheck disable=SC2012
SNAPSHOT_FILE=$(ls -vd "${BACKUP_DIR}"/snapshot*.db 2>/dev/null | tail -1) || true
# shellcheck disable=SC2012
BACKUP_FILE=$(ls -vd "${BACKUP_DIR}"/static_kuberesources*.tar.gz 2>/dev/null | tail -1) || true

ETCD_STATIC_POD_LIST=("etcd-pod.yaml")
AUX_STATIC_POD_LIST=("kube-apiserver-pod.yaml" "kube-controller-manager-pod.yaml" "kube-scheduler-pod.yaml")
ETCD_STATIC_POD_CONTAINERS=("etcd" "etcdctl" "etcd-metrics" "etcd-readyz")
AUX_STATIC_POD_CONTAINERS=("kube-controller-manager" "kube-apiserver" "kube-scheduler")

# The real script names the file it looked for, which is empty when there
# is none; the box names the pattern instead.
if [ ! -f "${SNAPSHOT_FILE}" ]; then
  echo "etcd snapshot ${SNAPSHOT_FILE:-${BACKUP_DIR}/snapshot_<timestamp>.db} does not exist"
  exit 1
fi
# The real script finds a missing archive only once it has stopped the
# static pods and moved the data dir; the box refuses before touching
# anything, which is what a careful caller checks anyway.
if [ ! -f "${BACKUP_FILE}" ]; then
  echo "static pod resources ${BACKUP_DIR}/static_kuberesources_<timestamp>.tar.gz do not exist"
  exit 1
fi

# etcdctl and etcdutl come out of the etcd image, as in the real script
# (RHCOS has neither); an image without etcdutl (4.10 and older) restores
# with etcdctl.
dl_etcdctl
ETCD_CLIENT="${ETCD_ETCDUTL_BIN:-etcdctl}"
# etcd.env names no local node: the host's name and its NODE_<name>_IP.
NODE_NAME=$(hostname)
NODE_IP_VAR="NODE_$(echo "${NODE_NAME}" | tr -- '-.' '__')_IP"
NODE_IP="${!NODE_IP_VAR}"

if ! "${ETCD_CLIENT}" snapshot status "${SNAPSHOT_FILE}" -w json; then
  echo "Backup integrity verification failed. Backup appears corrupted. Aborting!"
  exit 1
fi

stop_static_pods() {
  mkdir -p "${MANIFEST_STOPPED_DIR}"
  local pod
  for pod in "$@"; do
    echo "...stopping ${pod}"
    [ -f "${MANIFEST_DIR}/${pod}" ] || continue
    mv "${MANIFEST_DIR}/${pod}" "${MANIFEST_STOPPED_DIR}/"
  done
}

wait_for_containers_to_stop() {
  local container
  for container in "$@"; do
    echo "Waiting for container ${container} to stop"
    while [ -n "$(crictl ps --label io.kubernetes.container.name="${container}" -q)" ]; do
      echo -n "."
      sleep 1
    done
    echo "complete"
  done
}

start_static_pods_from_backup() {
  local pod path
  for pod in "$@"; do
    path=$(tar -tzf "${BACKUP_FILE}" | grep "/${pod}\$" | head -1) || true
    if [ -z "${path}" ]; then
      echo "${pod} does not exist in ${BACKUP_FILE}"
      exit 1
    fi
    echo "starting ${pod}"
    tar -xvzf "${BACKUP_FILE}" --strip-components=2 -C "${MANIFEST_DIR}/" "${path}"
  done
}

new_uuid() {
  local h
  h=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  echo "${h:0:8}-${h:8:4}-4${h:13:3}-a${h:17:3}-${h:20:12}"
}

MODERN=""
BUMP_ARGS=()
if declare -F mv_static_pods >/dev/null; then
  MODERN=1
  AUX_STATIC_POD_LIST=()
  ETCD_STATIC_POD_CONTAINERS=("etcd" "etcdctl" "etcd-metrics" "etcd-readyz" "etcd-rev" "etcd-backup-server")
  REV_JSON="${ETCD_DATA_DIR}/revision.json"
  BUMP_REV=1000000000
  if [ -s "${REV_JSON}" ]; then
    BUMP_REV=$(jq -r "(.maxRaftIndex*1.2|floor)" "${REV_JSON}")
  fi
  BUMP_ARGS=(--mark-compacted --bump-revision "${BUMP_REV}")
  mv_static_pods "${ETCD_STATIC_POD_LIST[@]}"
else
  stop_static_pods "${AUX_STATIC_POD_LIST[@]}"
  wait_for_containers_to_stop "${AUX_STATIC_POD_CONTAINERS[@]}"
  stop_static_pods "${ETCD_STATIC_POD_LIST[@]}"
fi
wait_for_containers_to_stop "${ETCD_STATIC_POD_CONTAINERS[@]}"

mkdir -p "${ETCD_DATA_DIR_BACKUP}"
if [ -d "${ETCD_DATA_DIR}/member" ]; then
  if [ -d "${ETCD_DATA_DIR_BACKUP}/member" ]; then
    echo "removing previous backup ${ETCD_DATA_DIR_BACKUP}/member"
    rm -rf "${ETCD_DATA_DIR_BACKUP}/member"
  fi
  echo "Moving etcd data-dir ${ETCD_DATA_DIR}/member to ${ETCD_DATA_DIR_BACKUP}"
  mv "${ETCD_DATA_DIR}/member" "${ETCD_DATA_DIR_BACKUP}/"
fi

# the static pod resources (revision dirs) of the backup
tar -C "${CONFIG_FILE_DIR}" -xzf "${BACKUP_FILE}" static-pod-resources
cp -p "${SNAPSHOT_FILE}" "${ETCD_DATA_DIR_BACKUP}/snapshot.db"

if [ -n "${MODERN}" ]; then
  [ ! -f "${ETCD_DATA_DIR}/revision.json" ] || mv -f "${ETCD_DATA_DIR}/revision.json" "${ETCD_DATA_DIR_BACKUP}/revision.json"
  rm -f "${ETCD_DATA_DIR}"/etcd_perf*
  if [ -n "$(ls -A "${ETCD_DATA_DIR}" 2>/dev/null)" ]; then
    echo "folder ${ETCD_DATA_DIR} is not empty, please review and remove all files in it"
    exit 1
  fi
  echo "bumping revisions by ${BUMP_REV}"
fi
echo "removing etcd data dir..."
rm -rf "${ETCD_DATA_DIR}"

echo "starting snapshot restore through ${ETCD_CLIENT}..."
UUID=$(new_uuid)
if ! "${ETCD_CLIENT}" snapshot restore "${SNAPSHOT_FILE}" \
  --name "${NODE_NAME}" \
  --initial-cluster "${NODE_NAME}=https://${NODE_IP}:2380" \
  --initial-cluster-token "openshift-etcd-${UUID}" \
  --initial-advertise-peer-urls "https://${NODE_IP}:2380" \
  --data-dir "${ETCD_DATA_DIR}" "${BUMP_ARGS[@]}"; then
  echo "Snapshot restore failed. Aborting!"
  exit 1
fi

# start the original etcd static pod again, on the restored data
echo "restoring old etcd pod to start etcd again"
mv "${MANIFEST_STOPPED_DIR}/etcd-pod.yaml" "${MANIFEST_DIR}/etcd-pod.yaml"

start_static_pods_from_backup "${AUX_STATIC_POD_LIST[@]}"
