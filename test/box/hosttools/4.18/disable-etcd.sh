#!/usr/bin/env bash
# cluster-in-a-box stand-in for /usr/local/bin/disable-etcd.sh of OpenShift
# 4.18 and later: stop this host's etcd static pod by moving its manifest
# to /home/core/assets/manifests-stopped, and wait until its containers
# are gone. Its messages are the real script's.
set -o errexit
set -o pipefail
set -o errtrace

if [[ $EUID -ne 0 ]]; then
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

mv_static_pods "etcd-pod.yaml"
wait_for_containers_to_stop "etcd" "etcdctl" "etcd-metrics" "etcd-readyz" "etcd-rev" "etcd-backup-server"
