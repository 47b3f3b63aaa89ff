# The image `cross` builds wren's gnu targets in (see cross/Cross.toml): the
# packages cross/install-toolchain installs for CI, minus Rust, which cross
# mounts from the host. One file for every gnu target:
#   CROSS_DEB_ARCH  Debian architecture (amd64, arm64, armhf), passed by cross
#   GNU_TRIPLE      the gcc prefix (x86_64-linux-gnu, aarch64-linux-gnu,
#                   arm-linux-gnueabihf), passed by Cross.toml
FROM debian:bookworm-slim

ARG CROSS_DEB_ARCH
ARG GNU_TRIPLE

# Foreign targets: the cross gcc and its libc (ring's C and assembly; the
# linker), and qemu-user with the target's multiarch libc to run tests:
# `qemu-<arch>-static -L /` loads /lib/ld-linux-*.so.* of libc6:<arch>, which
# matches the libc it loads. The native target needs only gcc.
RUN set -eu; \
    test -n "$CROSS_DEB_ARCH" && test -n "$GNU_TRIPLE"; \
    if [ "$CROSS_DEB_ARCH" = "$(dpkg --print-architecture)" ]; then \
        packages="gcc libc6-dev"; \
    else \
        dpkg --add-architecture "$CROSS_DEB_ARCH"; \
        packages="gcc-$GNU_TRIPLE libc6-dev-$CROSS_DEB_ARCH-cross libc6:$CROSS_DEB_ARCH qemu-user-static"; \
    fi; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates $packages; \
    rm -rf /var/lib/apt/lists/*

# What cargo and the cc crate need per target (cross/lib.sh sets the same
# on CI). Variables of targets this image does not serve are never read.
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /" \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc \
    CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER="qemu-arm-static -L /" \
    CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc \
    AR_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-ar
