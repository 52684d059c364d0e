# The torch stage runs ON THE TARGET PLATFORM (QEMU for foreign arches) and
# stays in BuildKit: it builds FROM the package image ocipack wrote (the
# seed's BASE_IMAGE), so /opt/wheels, Python and the payload's libraries
# are the ones the final image will have. Its products are two one-layer
# images, exported beside each other for `ocipack wrapper`:
#   venv-export   /opt/venv  (the locked dependencies, `uv sync --frozen`)
#   app-export    /opt/app   (the application checkout)
#
#   for arch in amd64 arm64 riscv64; do
#     for target in venv-export app-export; do
#       nerdctl build -f dockerfiles/torch.Dockerfile --platform linux/$arch \
#         --build-context base=oci-layout://$PWD/out/local-oci/package-$arch \
#         --build-context app=../Kataglyphis-Orchestr-ANT-ion \
#         --target $target \
#         --output type=oci,tar=false,name=$target-$arch,dest=out/local-oci/$target-$arch .
#     done
#   done
#
# `base` and `app` are named build contexts (FROM takes no transport, so a
# `--build-arg BASE_IMAGE=oci-layout://...` cannot work). nerdctl takes the
# layout path only and pins the digest itself (the image manifest listed in
# the layout's index.json: `ocipack package --out` writes exactly one);
# buildx takes the pin: `--build-context base=oci-layout://$PWD/out/local-oci/package-$arch@sha256:<digest>`
# (the digest `ocipack package --json` prints); plain buildctl:
# `--oci-layout base=DIR --opt context:base=oci-layout://base@sha256:<digest>`.
# One OCI-layout context per build: the BuildKit failure with two
# oci-layout contexts in one build cannot happen (`app` is a directory).
#
# No `# syntax=` line on purpose: it would pull docker/dockerfile from a
# registry at build time. Everything here works with the Dockerfile
# frontend built into BuildKit >= 0.10 (named contexts).

# Stand-ins, replaced by --build-context base=... and app=... (a named
# context overrides a stage of the same name). Without the contexts the
# build fails (scratch has no shell) instead of quietly pulling some image
# called "base" from a registry or a stale local store.
FROM scratch AS base
FROM scratch AS app

FROM base AS torch
# install: /opt/venv gets the locked dependencies only; the app is run from
#          /opt/app (the seed's TORCH_APP_MODE=install, the QEMU stage kept
#          to creating /opt/venv).
# project: also installs the app itself into /opt/venv (non-editable).
ARG TORCH_APP_MODE=install
# uv itself comes from PyPI (a pinned wheel; riscv64 wheels exist), into a
# throwaway venv that is not exported.
ARG UV_VERSION=0.9.5
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
COPY --from=app / /opt/app
WORKDIR /opt/app
# Packages the wheelhouse provides (/opt/wheels, from the cross artifact,
# copied by layouts/package.toml) are left out of `uv sync` (on riscv64 the
# index has no torch/torchvision/opencv-python wheels) and force-installed
# from the wheels afterwards; an empty wheelhouse keeps what uv sync
# installed (no literal `*.whl` glob is passed to the installer).
RUN set -eu; \
    if [ ! -f pyproject.toml ]; then \
      echo "torch.Dockerfile: pass --build-context app=DIR (the app checkout with pyproject.toml and uv.lock)" >&2; \
      exit 1; \
    fi; \
    python3 -m venv /tmp/uv && /tmp/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"; \
    uv=/tmp/uv/bin/uv; \
    skip=""; \
    for w in /opt/wheels/*.whl; do \
      [ -e "$w" ] || continue; \
      skip="$skip --no-install-package $(basename "$w" | cut -d- -f1)"; \
    done; \
    case "$TORCH_APP_MODE" in \
      install) mode="--no-install-project" ;; \
      project) mode="--no-editable" ;; \
      *) echo "torch.Dockerfile: TORCH_APP_MODE must be install or project, not $TORCH_APP_MODE" >&2; exit 1 ;; \
    esac; \
    if [ -f uv.lock ]; then \
      "$uv" sync --frozen --no-dev $mode $skip; \
    else \
      echo "torch.Dockerfile: no uv.lock in the app; resolving (not reproducible)" >&2; \
      "$uv" sync --no-dev $mode $skip; \
    fi; \
    set -- /opt/wheels/*.whl; \
    if [ -e "$1" ]; then \
      "$uv" pip install --python /opt/venv/bin/python --reinstall --no-deps "$@"; \
    fi; \
    rm -rf /tmp/uv
# Fix 3: C extensions fail to import through dangling links; ocipack's
# symlink guard checks lib-dynload again in the final image.

FROM scratch AS venv-export
COPY --from=torch /opt/venv /opt/venv
LABEL org.kataglyphis.stage="venv-export"

FROM scratch AS app-export
COPY --from=torch /opt/app /opt/app
LABEL org.kataglyphis.stage="app-export"
