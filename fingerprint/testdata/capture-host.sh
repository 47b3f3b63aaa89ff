#!/bin/bash
# Captures the files wren-fingerprint reads on this machine into a fixture
# tree: capture-host.sh DEST. Symlinks in sysfs are kept as symlinks (with
# their real targets), /dev nodes become empty files, and probes.json is
# recorded by the record-probes example. Run it as root so that every file
# the agent would read is readable.
set -euo pipefail

DEST=${1:?usage: capture-host.sh DEST}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)

# A file's contents at its literal path (for procfs, where /proc/self moves).
literal() {
    for p in "$@"; do
        [ -f "$p" ] || continue
        mkdir -p "$DEST$(dirname "$p")"
        cat "$p" > "$DEST$p" 2>/dev/null || rm -f "$DEST$p"
    done
}

# A sysfs symlink, as a symlink, with its target directory created.
link() {
    local p=$1
    [ -L "$p" ] || return 0
    mkdir -p "$DEST$(dirname "$p")"
    ln -sfn "$(readlink "$p")" "$DEST$p"
    local real
    real=$(readlink -f "$p")
    [ -d "$real" ] && mkdir -p "$DEST$real"
    return 0
}

# Attribute files of a (symlinked) sysfs directory, stored at their real path.
attrs() {
    local dir=$1
    shift
    local real
    real=$(readlink -f "$dir") || return 0
    for a in "$@"; do
        [ -f "$real/$a" ] || continue
        mkdir -p "$DEST$real"
        cat "$real/$a" > "$DEST$real/$a" 2>/dev/null || rm -f "$DEST$real/$a"
    done
}

# A class device: its link, uevent and the named attributes, its device
# and driver links, and the USB device above it if there is one.
class_device() {
    local entry=$1
    shift
    link "$entry"
    attrs "$entry" uevent "$@"
    local real
    real=$(readlink -f "$entry")
    if [ -L "$real/device" ]; then
        link "$real/device"
        local dev
        dev=$(readlink -f "$real/device")
        link "$dev/driver"
        local up=$dev
        while [ "$up" != /sys ] && [ "$up" != / ]; do
            if [ -f "$up/idVendor" ]; then
                attrs "$up" idVendor idProduct serial manufacturer product
                break
            fi
            up=$(dirname "$up")
        done
        # Its /dev node (virtual terminals, which have no device, get none).
        local devname
        devname=$(sed -n 's/^DEVNAME=//p' "$real/uevent" 2>/dev/null || true)
        if [ -n "$devname" ] && [ -e "/dev/$devname" ]; then
            mkdir -p "$DEST/dev/$(dirname "$devname")"
            : > "$DEST/dev/$devname"
        fi
    fi
}

# procfs
literal /proc/cpuinfo /proc/meminfo /proc/cgroups /proc/cmdline /proc/self/mounts \
    /proc/net/route /proc/net/ipv6_route \
    /proc/sys/kernel/ostype /proc/sys/kernel/osrelease /proc/sys/kernel/hostname /proc/sys/kernel/arch
if [ -d /proc/driver/nvidia ]; then
    find /proc/driver/nvidia -name information -o -name version | while read -r f; do literal "$f"; done
fi

# /etc (os-release is often a link into /usr: keep its contents)
literal /etc/os-release /etc/debian_version /etc/nv_tegra_release

# CPUs
literal /sys/devices/system/cpu/online
for c in /sys/devices/system/cpu/cpu[0-9]*; do
    link "$c/cpufreq"
    attrs "$c/cpufreq" cpuinfo_max_freq
done

# cgroup v2 roots named in the mount table
awk '$3 == "cgroup2" { print $2 }' /proc/self/mounts | while read -r m; do
    literal "$m/cgroup.controllers"
done

# board identity
literal /sys/firmware/devicetree/base/model /sys/firmware/devicetree/base/compatible \
    /sys/firmware/devicetree/base/serial-number
for f in sys_vendor product_name board_vendor board_name product_serial; do
    literal "/sys/class/dmi/id/$f"
done

# PCI functions (GPUs are among them)
for p in /sys/bus/pci/devices/*; do
    [ -e "$p" ] || continue
    link "$p"
    attrs "$p" class vendor device numa_node mem_info_vram_total product_name
    real=$(readlink -f "$p")
    link "$real/driver"
    if [ -d "$real/drm" ]; then
        for n in "$real"/drm/card[0-9]* "$real"/drm/renderD*; do
            [ -e "$n" ] || continue
            mkdir -p "$DEST$n"
            [ -e "/dev/dri/$(basename "$n")" ] && mkdir -p "$DEST/dev/dri" && : > "$DEST/dev/dri/$(basename "$n")"
        done
    fi
done

# class devices
for t in /sys/class/tty/*; do class_device "$t" type; done
attrs /sys/class/tty/console active
for v in /sys/class/video4linux/*; do [ -e "$v" ] && class_device "$v" name index; done
for i in /sys/class/i2c-dev/*; do [ -e "$i" ] && class_device "$i" name; done
for s in /sys/class/spidev/*; do [ -e "$s" ] && class_device "$s"; done
for g in /sys/bus/gpio/devices/gpiochip*; do [ -e "$g" ] && link "$g" && attrs "$g" uevent; done
for g in /sys/class/gpio/gpiochip*; do [ -e "$g" ] && class_device "$g" label ngpio base; done

# Tegra: the platform devices (the GPU is one)
if [ -f /sys/firmware/devicetree/base/compatible ] &&
    tr '\0' '\n' < /sys/firmware/devicetree/base/compatible | grep -q '^nvidia,tegra'; then
    for p in /sys/bus/platform/devices/*; do link "$p"; done
fi

# device nodes the fingerprint looks for
for n in /dev/kvm /dev/kfd /dev/nvidia* /dev/nvmap /dev/nvhost-* /dev/gpiochip*; do
    [ -e "$n" ] && : > "$DEST$n"
done
if [ -d /dev/nvgpu ]; then
    find /dev/nvgpu -type c | while read -r n; do mkdir -p "$DEST$(dirname "$n")"; : > "$DEST$n"; done
fi
if [ -d /dev/serial/by-id ]; then
    mkdir -p "$DEST/dev/serial/by-id"
    for l in /dev/serial/by-id/*; do ln -sfn "$(readlink "$l")" "$DEST$l"; done
fi

# the syscall probes' answers
cd "$HERE/../.."
cargo run -q -p wren-fingerprint --example record-probes -- /var/lib/wren > "$DEST/probes.json"
echo "captured into $DEST"
