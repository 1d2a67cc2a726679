'use strict';
// Drains a queue with one rhea consumer and reports the rate (used by bench/recovery.sh,
// because `throng bench --producers 0` does not stop when its consumers are done).
//
//   node bench/drain.js HOST:PORT ADDRESS COUNT [CREDIT] [TIMEOUT_S]
//
// One connection, one receiver with a credit window of CREDIT (default 1000), every
// message accepted (rhea autoaccept). Stops at COUNT messages, after 10 s without a
// message, or after TIMEOUT_S (default 600). Prints one line:
//   drained RECEIVED of COUNT in SECONDS s (RATE msgs/s) first_after_ms MS
// SECONDS runs from the first message to the last; first_after_ms is the time from the
// attach to the first message. Exit 0 only if COUNT messages arrived.
// rhea comes from interop/node/node_modules (bash scripts/test.sh installs it).

const path = require('path');
const rhea = require(path.join(__dirname, '..', 'interop', 'node', 'node_modules', 'rhea'));

const [hostPort, address, countArg, creditArg, timeoutArg] = process.argv.slice(2);
if (!hostPort || !address || !countArg) {
    console.error('usage: node bench/drain.js HOST:PORT ADDRESS COUNT [CREDIT] [TIMEOUT_S]');
    process.exit(2);
}
const [host, port] = [hostPort.slice(0, hostPort.lastIndexOf(':')), Number(hostPort.slice(hostPort.lastIndexOf(':') + 1))];
const count = Number(countArg);
const credit = Number(creditArg || 1000);
const timeoutS = Number(timeoutArg || 600);

let received = 0;
let tAttach = null, tFirst = null, tLast = null, lastSeen = process.hrtime.bigint();
const secs = (a, b) => Number(b - a) / 1e9;

function finish(why) {
    const s = received > 1 ? secs(tFirst, tLast) : 0;
    const rate = s > 0 ? Math.round((received - 1) / s) : 0;
    const firstMs = tFirst !== null ? Math.round(secs(tAttach, tFirst) * 1000) : -1;
    console.log(`drained ${received} of ${count} in ${s.toFixed(3)} s (${rate} msgs/s) first_after_ms ${firstMs}`);
    if (received < count) {
        console.error(`drain stopped early: ${why}`);
    }
    process.exit(received >= count ? 0 : 1);
}

const container = rhea.create_container();
container.on('message', (ctx) => {
    const now = process.hrtime.bigint();
    if (tFirst === null) tFirst = now;
    tLast = lastSeen = now;
    received += 1;
    if (received === count) {
        ctx.connection.close();
    }
});
container.on('connection_close', () => finish('connection closed'));
container.on('disconnected', (ctx) => finish(`disconnected: ${ctx.error || 'socket closed'}`));

const conn = container.connect({ host, port, reconnect: false });
conn.open_receiver({ source: address, credit_window: credit, autoaccept: true });
tAttach = process.hrtime.bigint();

const started = Date.now();
setInterval(() => {
    if (secs(lastSeen, process.hrtime.bigint()) > 10) finish('no message for 10 s');
    if ((Date.now() - started) / 1000 > timeoutS) finish(`timeout ${timeoutS} s`);
}, 500);
