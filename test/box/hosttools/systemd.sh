#!/bin/bash
# cluster-in-a-box stand-in for systemd's commands on a host: systemctl,
# systemd-run, shutdown, reboot, poweroff and halt are all this script, as
# they are all systemctl on RHCOS. The work is done by the node's host agent,
# the box's systemd: this hands it the command line through
# /run/box/requests and relays its answer (output, errors, exit status).
set -o errexit
set -o pipefail

REQUESTS=/run/box/requests
REPLIES=/run/box/replies
ID="$(date +%s%N)-$$"

mkdir -p "${REQUESTS}" "${REPLIES}"
printf '%s\0' "${PWD}" "$(basename "$0")" "$@" >"${REQUESTS}/.${ID}"
mv "${REQUESTS}/.${ID}" "${REQUESTS}/${ID}"

# The agent takes a request within a tenth of a second. One left untaken
# means that no systemd runs here (the machine is going down or is off).
TRIES=0
while [ -e "${REQUESTS}/${ID}" ]; do
  if [ "${TRIES}" -ge 300 ]; then
    rm -f "${REQUESTS}/${ID}"
    echo "Failed to connect to bus: No such file or directory" >&2
    exit 1
  fi
  sleep 0.1
  TRIES=$((TRIES + 1))
done
# Taken: the answer may take as long as the work (systemd-run --wait).
while [ ! -e "${REPLIES}/${ID}.code" ]; do
  sleep 0.05
done
cat "${REPLIES}/${ID}.out"
cat "${REPLIES}/${ID}.err" >&2
CODE=$(cat "${REPLIES}/${ID}.code")
rm -f "${REPLIES}/${ID}.out" "${REPLIES}/${ID}.err" "${REPLIES}/${ID}.code"
exit "${CODE}"
