#!/bin/sh
# Runtime entrypoint of the wrapper image (ENTRYPOINT; CMD is /bin/bash).
# Loads the environment the image's config cannot express statically, then
# runs the command (no argument: an interactive bash):
# - vulkan.sh: the Vulkan SDK subtree of the machine actually running;
# - the venv (/opt/venv, from torch's venv-export) and the app (/opt/app,
#   app-export; on PYTHONPATH because TORCH_APP_MODE=install keeps it out of
#   the venv) for `python -m ...`.
# CARGO_HOME, RUSTUP_HOME, PATH and LD_LIBRARY_PATH are in the config.
set -e
if [ -f /usr/local/bin/vulkan.sh ]; then
  . /usr/local/bin/vulkan.sh
fi
if [ -x /opt/venv/bin/python ]; then
  export VIRTUAL_ENV=/opt/venv
  case ":$PATH:" in
    *":/opt/venv/bin:"*) ;;
    *) PATH="/opt/venv/bin:$PATH" ;;
  esac
fi
if [ -d /opt/app ]; then
  export PYTHONPATH="/opt/app${PYTHONPATH:+:$PYTHONPATH}"
fi
export PATH
[ "$#" -gt 0 ] || set -- /bin/bash
exec "$@"
