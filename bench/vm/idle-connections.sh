#!/usr/bin/env bash
# Measures N idle MQTT connections (default 100,000) inside a small KVM guest.
#
# Why a guest: holding 100,000 connections needs ~100,000 open files in the node and as
# many in the load generator. Where the host's hard open-file limit is lower and cannot
# be raised (a container without CAP_SYS_RESOURCE), a guest with its own kernel, in
# which we are root, can raise it. The node and `throng bench` are the same release
# binary as on the host; the guest has only the loopback interface.
#
# usage: bench/vm/idle-connections.sh [CONNECTIONS] [extra `throng bench` args, e.g. --wills]
# needs: qemu-system-x86_64, a Debian kernel in /boot (linux-image-amd64), busybox-static,
#        cpio.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
n=${1:-100000}
shift || true
extra="$*"
bin=${THRONG_BIN:-$repo/target/release/throng}
kernel=${KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -1)}
mem=${GUEST_MEM:-8G}
[ -x "$bin" ] || { echo "no $bin: run cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,lib64,lib/x86_64-linux-gnu,data}
cp /bin/busybox "$root/bin/busybox"
for t in sh mount ip sleep cat grep sed seq poweroff sysctl head tail wc; do
    ln -s busybox "$root/bin/$t"
done
strip -o "$root/bin/throng" "$bin"
# the binary's shared libraries, at the paths the loader looks for them
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

cat > "$root/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o size=1G tmpfs /data
ip link set lo up
sysctl -qw fs.nr_open=1048576 fs.file-max=4194304
sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
ulimit -n 400000
echo "guest: \$(cat /proc/cpuinfo | grep -c ^processor) cpus, \$(grep MemTotal /proc/meminfo)"
/bin/throng serve --data-dir /data --amqp 127.0.0.1:0 --mqtt 127.0.0.1:0 > /tmp/serve.out 2>/tmp/serve.err &
pid=\$!
port=""
for i in \$(seq 1 100); do
    port=\$(grep '^listening mqtt ' /tmp/serve.out | sed 's/.*://')
    [ -n "\$port" ] && break
    sleep 0.1
done
echo "guest: node pid \$pid, mqtt port \$port"
/bin/throng bench --protocol mqtt --url 127.0.0.1:\$port --server-pid \$pid --idle-connections $n $extra 2>&1
echo "guest: bench exit \$?"
tail -5 /tmp/serve.err
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) > "$work/initrd"

# ACCEL=kvm where nested KVM works; on the machine measured here the guest hung at boot
# under KVM, so the default is qemu's own emulation (TCG): slower, but the node's memory
# per connection does not depend on it.
if [ "${ACCEL:-tcg}" = kvm ]; then accel=(-enable-kvm -cpu host); else accel=(-accel tcg,thread=multi -cpu max); fi
qemu-system-x86_64 "${accel[@]}" -smp 2 -m "$mem" \
    -kernel "$kernel" -initrd "$work/initrd" \
    -append "console=ttyS0 quiet panic=-1" \
    -nographic -no-reboot -nic none </dev/null
