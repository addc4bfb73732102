#!/usr/bin/env bash
# Set up a Debian 12 machine (as root) and run cri-runtime in the foreground.
#
# Installs what is missing (containerd, runc, CNI plugins, a Python venv with
# this project), starts containerd with its built-in CRI plugin disabled if no
# containerd answers yet, installs a CNI config if none exists, then serves
# on /run/cri-runtime/cri-runtime.sock. Extra arguments go to `cri-runtime serve`.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bash scripts/install-deps.sh

if [[ ! -x .venv/bin/cri-runtime ]]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -e .
fi

sock=/run/containerd/containerd.sock
if ! ctr --address "$sock" version >/dev/null 2>&1; then
  # Our own config: containerd's built-in CRI plugin off (we serve CRI).
  cfg=$repo/deploy/kubelet/containerd-config.toml
  echo "starting containerd (log: /var/log/containerd.log)" >&2
  nohup containerd --config "$cfg" >>/var/log/containerd.log 2>&1 &
  for _ in $(seq 1 50); do
    ctr --address "$sock" version >/dev/null 2>&1 && break
    sleep 0.2
  done
  ctr --address "$sock" version >/dev/null || { echo "containerd did not start; see /var/log/containerd.log" >&2; exit 1; }
fi

if ! ls /etc/cni/net.d/*.conf* >/dev/null 2>&1; then
  mkdir -p /etc/cni/net.d
  cp deploy/kubelet/10-cri-runtime.conflist /etc/cni/net.d/
fi

exec .venv/bin/cri-runtime serve "$@"
