#!/usr/bin/env bash
# usage: bench/deep_index.sh BINARY [STEPS]   (the load comes from BINARY too, or from $CLIENT)
# A node holding up to STEPS million durable 100-byte messages in one paged queue (32 MiB
# in memory): RSS after each million, then one drain of everything.
set -u
bin=$1; steps=${2:-4}
d=$(mktemp -d /tmp/deepix.XXXX)
printf '[[tenant]]\nname = "default"\n[[tenant.address]]\nname = "bench"\ntype = "queue"\nmemory_limit = 33554432\nmax_bytes = 17179869184\n' > $d/cfg.toml
$bin serve --amqp 127.0.0.1:0 --config $d/cfg.toml --data-dir $d/data > $d/out 2>$d/err &
pid=$!
for i in $(seq 50); do grep -q "listening amqp" $d/out && break; sleep 0.1; done
port=$(grep "listening amqp" $d/out | sed 's/.*://')
client=${CLIENT:-$bin}
b() { $client bench --url 127.0.0.1:$port --address bench --server-pid $pid --timeout 600 "$@" 2>&1 | grep -E "throughput|server_cpu" | tr '\n' ' '; }
for s in $(seq $steps); do
  r=$(b --producers 2 --consumers 0 --size 100 --count 1000000 --durable)
  echo "$(basename $bin) fill ${s}M: $r| $(grep -E 'VmRSS|VmHWM' /proc/$pid/status | tr -s ' \n\t' ' ')"
done
r=$(b --producers 0 --consumers 1 --size 100 --count $((steps*1000000)))
echo "$(basename $bin) drain: $r| $(grep -E 'VmRSS|VmHWM' /proc/$pid/status | tr -s ' \n\t' ' ')"
kill $pid; wait $pid 2>/dev/null
rm -rf $d
