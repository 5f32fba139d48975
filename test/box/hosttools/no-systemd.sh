#!/bin/sh
# cluster-in-a-box: what systemctl and its kin say in a container, where no
# systemd runs. It stands in for the test machine's own binaries there.
echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2
echo "Failed to connect to bus: Host is down" >&2
exit 1
