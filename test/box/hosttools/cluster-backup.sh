#!/bin/bash
# cluster-in-a-box stand-in for /usr/local/bin/cluster-backup.sh, the etcd
# operator's backup script: a real `etcdctl snapshot save` against this
# node's member plus a tar of the latest static-pod resource directories,
# with the file names and output lines of the real script.
set -o errexit
set -o pipefail
set -o errtrace

if [ -z "$1" ]; then
  echo "Script should be executed as $0 <backup_dir>"
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Script should be run as root"
  exit 1
fi

BACKUP_DIR="$1"
DATESTRING=$(date "+%F_%H%M%S")
BACKUP_TAR_FILE=${BACKUP_DIR}/static_kuberesources_${DATESTRING}.tar.gz
SNAPSHOT_FILE="${BACKUP_DIR}/snapshot_${DATESTRING}.db"
BACKUP_RESOURCE_LIST=("kube-apiserver-pod" "kube-controller-manager-pod" "kube-scheduler-pod" "etcd-pod")
CONFIG_FILE_DIR=/etc/kubernetes/static-pod-resources

trap 'rm -f ${BACKUP_TAR_FILE} ${SNAPSHOT_FILE}' ERR

source /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env

mkdir -p "${BACKUP_DIR}"
sha256sum /usr/local/bin/etcdctl | cut -d' ' -f1
etcdctl version

RESOURCE_DIRS=()
for RESOURCE in "${BACKUP_RESOURCE_LIST[@]}"; do
  LATEST=$(ls -d ${CONFIG_FILE_DIR}/${RESOURCE}-[0-9]* 2>/dev/null | sort -V | tail -1)
  if [ -z "${LATEST}" ]; then
    echo "error finding static-pod-resource ${RESOURCE}"
    exit 1
  fi
  echo "found latest ${RESOURCE}: ${LATEST}"
  RESOURCE_DIRS+=("${LATEST}")
done

# the encryption configuration, if any, travels with the static pod
# resources; the archive's paths start at static-pod-resources/, as the real
# script's do and as cluster-restore.sh extracts them
tar -cpzf "${BACKUP_TAR_FILE}" -C /etc/kubernetes "${RESOURCE_DIRS[@]#/etc/kubernetes/}"
chmod 600 "${BACKUP_TAR_FILE}"

etcdctl snapshot save "${SNAPSHOT_FILE}"
chmod 600 "${SNAPSHOT_FILE}"
echo "snapshot db and kube resources are successfully saved to ${BACKUP_DIR}"
