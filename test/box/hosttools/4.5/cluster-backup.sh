#!/usr/bin/env bash
# cluster-in-a-box stand-in for /usr/local/bin/cluster-backup.sh of
# OpenShift 4.4/4.5, written from that release's script: no --force and no
# checks; etcdctl copied out of the etcd image first; of each static pod the
# most recently modified revision dir; `etcdctl snapshot save`, no
# integrity check. Same file names, output lines and exit codes.
set -o errexit
set -o pipefail
set -o errtrace

if [[ $EUID -ne 0 ]]; then
  echo "This script must be run as root"
  exit 1
fi

function usage {
  echo 'Path to backup dir required: ./cluster-backup.sh <path-to-backup-dir>'
  exit 1
}
if [ -z "$1" ] || [ -f "$1" ]; then
  usage
fi
[ -d "$1" ] || mkdir -p "$1"

function backup_latest_kube_static_resources {
  local dirs=() resource latest
  for resource in "$@"; do
    # the newest by modification time, whatever its number
    # shellcheck disable=SC2012
    latest=$(ls -trd "${CONFIG_FILE_DIR}/static-pod-resources/${resource}"-[0-9]* | tail -1) || true
    if [ -z "${latest}" ]; then
      echo "error finding static-pod-resource ${resource}"
      exit 1
    fi
    echo "found latest ${resource}: ${latest}"
    dirs+=("${latest#"${CONFIG_FILE_DIR}"/}")
  done
  tar -cpzf "${BACKUP_TAR_FILE}" -C "${CONFIG_FILE_DIR}" "${dirs[@]}"
  chmod 600 "${BACKUP_TAR_FILE}"
}

function source_required_dependency {
  if [ ! -f "$1" ]; then
    echo "required dependencies not found, please ensure this script is run on a node with a functional etcd static pod"
    exit 1
  fi
  # shellcheck disable=SC1090
  source "$1"
}

BACKUP_DIR="$1"
DATESTRING=$(date "+%F_%H%M%S")
BACKUP_TAR_FILE=${BACKUP_DIR}/static_kuberesources_${DATESTRING}.tar.gz
SNAPSHOT_FILE="${BACKUP_DIR}/snapshot_${DATESTRING}.db"
trap 'rm -f ${BACKUP_TAR_FILE} ${SNAPSHOT_FILE}' ERR

source_required_dependency /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env
source_required_dependency /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd-common-tools

# etcd.env names the certificates as the etcd pod mounts them
# (static-pod-certs); on the host they are in static-pod-resources/etcd-certs.
if [ ! -f "${ETCDCTL_CACERT}" ] && [ ! -d "${CONFIG_FILE_DIR}/static-pod-certs" ]; then
  ln -s "${CONFIG_FILE_DIR}/static-pod-resources/etcd-certs" "${CONFIG_FILE_DIR}/static-pod-certs"
fi

dl_etcdctl
backup_latest_kube_static_resources kube-apiserver-pod kube-controller-manager-pod kube-scheduler-pod etcd-pod

# The real script names this host's member by an unset variable, which
# leaves https://:2379, this host's own etcd. The box's hosts share one
# network namespace, so the stand-in names this node's address explicitly.
LOCAL_IP_VAR="NODE_$(hostname | tr -- '-.' '__')_IP"
ETCDCTL_ENDPOINTS="https://${!LOCAL_IP_VAR}:2379" etcdctl snapshot save "${SNAPSHOT_FILE}"
echo "snapshot db and kube resources are successfully saved to ${BACKUP_DIR}"
