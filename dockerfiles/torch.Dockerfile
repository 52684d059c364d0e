# syntax=docker/dockerfile:1
#
# The torch stage runs ON THE TARGET PLATFORM (pip installs wheels for the
# target, some build from source) and stays in BuildKit. Its only product
# is /opt/venv, exported as a one-layer image:
#
#   for arch in amd64 arm64 riscv64; do
#     nerdctl build -f dockerfiles/torch.Dockerfile --platform linux/$arch \
#       --build-arg BASE_IMAGE=oci-layout://out/base/$arch \
#       --target venv-export \
#       --output type=oci,tar=false,name=venv-export-$arch,dest=out/venv-export/$arch .
#   done
#
# `ocipack wrapper --input venv=oci:out/venv-export/<arch>` adds it on top
# of the package image. One OCI-layout context per build: the BuildKit
# failure with two oci-layout contexts in one build cannot happen.

ARG BASE_IMAGE=base
FROM ${BASE_IMAGE} AS torch
ARG TORCH_VERSION=2.9.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" \
      "torch==${TORCH_VERSION}" torchvision \
 && /opt/venv/bin/pip install --no-cache-dir numpy onnx onnxruntime
# Fix 3: C extensions fail to import through dangling links; ocipack's
# symlink guard checks lib-dynload again in the final image.

FROM scratch AS venv-export
COPY --from=torch /opt/venv /opt/venv
LABEL org.kataglyphis.stage="venv-export"
