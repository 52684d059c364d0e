# Sourced by entrypoint.sh (POSIX sh): point the loader and the tools at the
# Vulkan SDK subtree of the machine running the image (`uname -m`: x86_64,
# aarch64 or riscv64). The package recipe prunes the x86_64 subtree on
# foreign arches, so an image never picks the host's binaries.
for sdk in /opt/vulkan/*/"$(uname -m)"; do
  if [ -d "$sdk" ]; then
    export VULKAN_SDK="$sdk"
    export VK_LAYER_PATH="$sdk/share/vulkan/explicit_layer.d"
    PATH="$sdk/bin:$PATH"
    export LD_LIBRARY_PATH="$sdk/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    break
  fi
done
export PATH
