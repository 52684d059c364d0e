# The heavy cross stages stay in BuildKit on the amd64 host:
#
#   base -> compiler -> sdk -> media -> android      (linux/Dockerfile.*)
#
# GCC 16 and LLVM from source, OpenCV 5, GStreamer, ONNX Runtime, LiteRT,
# the Android SDK... are built with cross compilers for TARGET_ARCH and
# installed under /opt and /usr/local. The result is one image per target:
# an amd64-platform image whose payload is built for the target. This file
# only adds the export target ocipack reads; the stages themselves are the
# pipeline's existing Dockerfiles, chained with BASE_IMAGE as before.
#
#   for arch in amd64 arm64 riscv64; do
#     nerdctl build -f dockerfiles/cross-android.Dockerfile \
#       --platform linux/amd64 \
#       --build-arg ANDROID_IMAGE=<registry>/android@sha256:<digest-for-$arch> \
#       --build-arg TARGET_ARCH=$arch \
#       --output type=oci,tar=false,name=cross-android-$arch,dest=out/local-oci/cross-android-$arch .
#   done
#
# `ocipack package --artifact oci:out/local-oci/cross-android-<arch>` then
# copies only the payload paths of layouts/package.toml (including the
# `/opt/wheels` wheelhouse when the media lane made one): the build trees
# and host tools left in the stage are never read. With provenance on
# (buildx's default) BuildKit writes an image index holding the image and
# an attestation manifest; ocipack takes the image and skips the
# attestation. No `# syntax=` line: the built-in frontend is used.

ARG ANDROID_IMAGE
FROM ${ANDROID_IMAGE} AS cross-android
ARG TARGET_ARCH
# Recorded for `ocipack inspect` and the guards' reports; the ELF guard
# judges the payload itself, not this label.
ENV TARGET_ARCH=${TARGET_ARCH}
LABEL org.kataglyphis.stage="android" \
      org.kataglyphis.target-arch="${TARGET_ARCH}"
