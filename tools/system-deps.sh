#!/usr/bin/env bash
# Installs the Debian packages the tests use, when they are missing (safe to run again):
# ffmpeg (libx264 clips; vigil record writes its clips with it), postgresql (the event store's tests
# start a private cluster), the GStreamer RTSP server (a real RTSP camera in tests), promtool,
# tcmalloc (allocator), redis-server 7 (the compose Redis's ACL users and append-only file,
# tests/deploy/test_redis_*.py), mosquitto (the MQTT sink's broker), chromium and chromium-driver (the
# console's browser test). Needs root or sudo; prints what to install otherwise.
set -euo pipefail

packages=(
  ffmpeg
  gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp python3-gi
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  prometheus libtcmalloc-minimal4 redis-server
  mosquitto postgresql chromium chromium-driver
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "system-deps: missing ${missing[*]}; install them as root (apt-get install ...)" >&2
    exit 1
  fi
fi
echo "system-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
