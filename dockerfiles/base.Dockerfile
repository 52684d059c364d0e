# The clean per-arch runtime base. Built ON THE TARGET PLATFORM (QEMU for
# foreign arches): this is where the runtime apt installs that used to be
# replayed in linux/Dockerfile.package now live. ocipack never executes
# target code, so everything that needs dpkg/apt to run goes here, once per
# base refresh instead of once per package build.
#
#   for arch in amd64 arm64 riscv64; do
#     nerdctl build -f dockerfiles/base.Dockerfile --platform linux/$arch \
#       --output type=oci,tar=false,name=base-$arch,dest=out/local-oci/base-$arch .
#   done
#
# ocipack then reads `oci:out/local-oci/base-<arch>` (--base; the layout
# holds one image, so no tag is needed; `:latest` and `:base-<arch>` name it
# too); the base's layers are reused byte for byte and its config is kept
# (no rootfs hand-over). No `# syntax=` line: the built-in frontend is used,
# nothing is pulled to parse this file.

ARG UBUNTU_IMAGE=ubuntu:26.04
FROM ${UBUNTU_IMAGE} AS base

ARG DEBIAN_FRONTEND=noninteractive
# Runtime libraries of the payload (OpenCV, GStreamer, FFmpeg, Vulkan,
# libcamera, ONNX Runtime, Flutter) and the tools the runtime scripts use.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      bash ca-certificates curl git less locales pkg-config \
      python3 python3-venv \
      libstdc++6 libgomp1 zlib1g libzstd1 libssl3t64 \
      libglib2.0-0t64 libgtk-3-0t64 libgl1 libegl1 libgles2 libvulkan1 \
      libdrm2 libgbm1 libwayland-client0 libx11-6 libxext6 \
      libusb-1.0-0 libudev1 libyaml-0-2 libjpeg-turbo8 libpng16-16t64 libtiff6 libwebp7 \
      libasound2t64 libpulse0 libv4l-0t64 \
 && rm -rf /var/lib/apt/lists/*

# The runtime user (uid/gid 1001) owns /opt/flutter, rustup and cargo.
RUN groupadd --gid 1001 kataglyphis \
 && useradd --uid 1001 --gid 1001 --create-home --shell /bin/bash kataglyphis \
 && mkdir -p /etc/ld.so.conf.d /workspace \
 && chown 1001:1001 /workspace

LABEL org.kataglyphis.stage="base"
CMD ["/bin/bash"]
