# Sourced by entrypoint.sh: point the loader at the target's Vulkan SDK.
for sdk in /opt/vulkan/*/"$(uname -m)"; do
  if [ -d "$sdk" ]; then
    export VULKAN_SDK="$sdk"
    export VK_LAYER_PATH="$sdk/share/vulkan/explicit_layer.d"
    break
  fi
done
