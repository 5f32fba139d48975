#!/usr/bin/env bash
# cluster-in-a-box stand-in for /usr/local/bin/cluster-backup.sh of
# OpenShift 4.6-4.10, written from that release's script: [--force] <dir>;
# without --force every static-pod operator's ClusterOperator must not be
# Progressing (read with oc through the node's localhost kubeconfig); of each
# static pod the revision its manifest references; etcdctl from the etcd
# image unless already on PATH; `etcdctl snapshot save` and an integrity
# check. Same file names, output lines and exit codes.
set -o errexit
set -o pipefail
set -o errtrace

if [[ $EUID -ne 0 ]]; then
  echo "This script must be run as root"
  exit 1
fi

function usage {
  echo 'Path to backup dir required: ./cluster-backup.sh [--force] <path-to-backup-dir>'
  exit 1
}

IS_DIRTY=""
if [ "$1" == "--force" ]; then
  IS_DIRTY="__POSSIBLY_DIRTY__"
  shift
fi
if [ -z "$1" ] || [ -f "$1" ]; then
  usage
fi
[ -d "$1" ] || mkdir -p "$1"

function check_if_operator_is_progressing {
  local operator="$1" progressing
  if [ ! -f "${KUBECONFIG}" ]; then
    echo "Valid kubeconfig is not found in kube-apiserver-certs. Exiting!"
    exit 1
  fi
  progressing=$(oc get co "${operator}" -o jsonpath='{.status.conditions[?(@.type=="Progressing")].status}') || true
  if [ -z "${progressing}" ]; then
    echo "Could not find the status of the ${operator}. Check if the API server is running. Pass the --force flag to skip checks."
    exit 1
  elif [ "${progressing}" != "False" ]; then
    echo "Currently the ${operator} operator is progressing. A reliable backup requires that a rollout is not in progress.  Aborting!"
    exit 1
  fi
}

function backup_latest_kube_static_resources {
  local dirs=() resource latest
  for resource in kube-apiserver kube-controller-manager kube-scheduler etcd; do
    if [ ! -f "/etc/kubernetes/manifests/${resource}-pod.yaml" ]; then
      echo "error finding manifests for the ${resource} pod. please check if it is running."
      exit 1
    fi
    # the revision the running manifest references
    latest=$(grep -o -m 1 "/etc/kubernetes/static-pod-resources/${resource}-pod-[0-9]*" "/etc/kubernetes/manifests/${resource}-pod.yaml") || true
    if [ -z "${latest}" ]; then
      echo "error finding static-pod-resources for the ${resource} pod. please check if it is running."
      exit 1
    fi
    if [ -z "${IS_DIRTY}" ]; then
      check_if_operator_is_progressing "${resource}"
    fi
    echo "found latest ${resource}: ${latest}"
    dirs+=("${latest#"${CONFIG_FILE_DIR}"/}")
  done
  tar -cpzf "$1" -C "${CONFIG_FILE_DIR}" "${dirs[@]}"
  chmod 600 "$1"
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
BACKUP_TAR_FILE=${BACKUP_DIR}/static_kuberesources_${DATESTRING}${IS_DIRTY}.tar.gz
SNAPSHOT_FILE="${BACKUP_DIR}/snapshot_${DATESTRING}${IS_DIRTY}.db"
trap 'rm -f ${BACKUP_TAR_FILE} ${SNAPSHOT_FILE}' ERR

source_required_dependency /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd.env
source_required_dependency /etc/kubernetes/static-pod-resources/etcd-certs/configmaps/etcd-scripts/etcd-common-tools

# etcd.env names the certificates as the etcd pod mounts them
# (static-pod-certs); on the host they are in static-pod-resources/etcd-certs.
if [ ! -f "${ETCDCTL_CACERT}" ] && [ ! -d "${CONFIG_FILE_DIR}/static-pod-certs" ]; then
  ln -s "${CONFIG_FILE_DIR}/static-pod-resources/etcd-certs" "${CONFIG_FILE_DIR}/static-pod-certs"
fi

backup_latest_kube_static_resources "${BACKUP_TAR_FILE}"
dl_etcdctl

# The real script names this host's member by an unset variable, which
# leaves https://:2379, this host's own etcd. The box's hosts share one
# network namespace, so the stand-in names this node's address explicitly.
LOCAL_IP_VAR="NODE_$(hostname | tr -- '-.' '__')_IP"
ETCDCTL_ENDPOINTS="https://${!LOCAL_IP_VAR}:2379" etcdctl snapshot save "${SNAPSHOT_FILE}"
check_snapshot_status "${SNAPSHOT_FILE}"
echo "snapshot db and kube resources are successfully saved to ${BACKUP_DIR}"
