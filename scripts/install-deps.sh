#!/usr/bin/env bash
# Install the Debian packages cri-runtime needs (as root). With --dev, also
# what the test suite needs: a registry, busybox for test images, htpasswd,
# openssl for the TLS registry. Only missing packages are installed, so the
# script is cheap to run every time.
set -euo pipefail
pkgs=(containerd runc containernetworking-plugins iptables iproute2 util-linux ca-certificates python3-venv)
if [[ ${1:-} == --dev ]]; then
  pkgs+=(docker-registry busybox-static apache2-utils openssl)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  [[ ${APT_UPDATED:-0} == 1 ]] || apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
