#!/bin/sh
# Runtime entrypoint: load the Vulkan SDK environment when present, then run
# the command (default: the CMD of the image).
set -e
if [ -f /usr/local/bin/vulkan.sh ]; then
  . /usr/local/bin/vulkan.sh
fi
exec "$@"
