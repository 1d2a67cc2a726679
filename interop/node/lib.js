'use strict';
// Shared helpers for the rhea interop scripts.
//
// Each script talks to a running Throng node on 127.0.0.1:$THRONG_PORT (or argv[2]),
// exits 0 when every check passed and 1 with a "FAIL: ..." line otherwise. An overall
// timer (THRONG_TEST_TIMEOUT seconds, default 20) guarantees the script cannot hang.

const rhea = require('rhea');

const port = Number(process.env.THRONG_PORT || process.argv[2]);
if (!port) {
    console.error('FAIL: set THRONG_PORT or pass the port as the first argument');
    process.exit(2);
}
const overallSeconds = Number(process.env.THRONG_TEST_TIMEOUT || 20);
const startedAt = Date.now();
let step = 'start';

const overall = setTimeout(() => {
    fail(`overall timeout of ${overallSeconds}s (during step: ${step})`);
}, overallSeconds * 1000);

function log(msg) {
    console.log(`[${((Date.now() - startedAt) / 1000).toFixed(3)}s] ${msg}`);
}

function fail(msg) {
    console.error(`FAIL: ${msg}`);
    process.exit(1);
}

function pass(msg) {
    clearTimeout(overall);
    console.log(`PASS${msg ? ': ' + msg : ''}`);
    process.exit(0);
}

function setStep(s) {
    step = s;
    log(s);
}

function check(cond, msg) {
    if (!cond) fail(msg);
}

function eq(actual, expected, what) {
    const a = JSON.stringify(actual);
    const e = JSON.stringify(expected);
    if (a !== e) fail(`${what}: expected ${e}, got ${a}`);
}

let connCounter = 0;

// Open a connection in its own container. Unexpected errors or disconnects fail the script.
function connect(opts) {
    const id = `rhea-${process.pid}-${++connCounter}`;
    const container = rhea.create_container({ id });
    const options = Object.assign({ host: '127.0.0.1', port, reconnect: false }, opts || {});
    const expectFailure = options.expectFailure;
    delete options.expectFailure;
    const conn = container.connect(options);
    if (!expectFailure) {
        conn.on('connection_error', (ctx) => fail(`connection ${id} error: ${errText(ctx.connection.error || ctx.error)}`));
        conn.on('disconnected', (ctx) => {
            if (!conn._closing) fail(`connection ${id} disconnected: ${errText(ctx.error)}`);
        });
        container.on('error', (err) => fail(`container ${id} error: ${errText(err)}`));
    }
    return conn;
}

function errText(e) {
    if (!e) return '(no error)';
    if (e.condition || e.description) return `${e.condition || ''} ${e.description || ''}`.trim();
    return String(e.message || e);
}

function close(conn) {
    return new Promise((resolve) => {
        conn._closing = true;
        if (conn.is_closed()) return resolve();
        conn.once('connection_close', () => resolve());
        conn.once('disconnected', () => resolve());
        conn.close();
    });
}

// Resolve when a link is attached by the peer; reject if the peer refuses it.
function linkOpened(link) {
    const kind = link.is_sender() ? 'sender' : 'receiver';
    return new Promise((resolve, reject) => {
        link.once(`${kind}_open`, () => resolve(link));
        link.once(`${kind}_error`, (ctx) => reject(new Error(`${kind} refused: ${errText(link.remote.detach && link.remote.detach.error)}`)));
        link.once(`${kind}_close`, () => reject(new Error(`${kind} closed by peer: ${errText(link.remote.detach && link.remote.detach.error)}`)));
    });
}

async function openSender(conn, opts) {
    return linkOpened(conn.open_sender(opts));
}

// A receiver that keeps every message (with its delivery) in `receiver.got`.
// Defaults: no automatic credit (credit_window 0) and no automatic accept.
async function openReceiver(conn, opts, credit) {
    const o = Object.assign({ credit_window: 0, autoaccept: false }, typeof opts === 'string' ? { source: opts } : opts);
    const r = conn.open_receiver(o);
    r.got = [];
    r.on('message', (ctx) => r.got.push({ message: ctx.message, delivery: ctx.delivery }));
    await linkOpened(r);
    if (credit) r.add_credit(credit);
    return r;
}

function waitFor(pred, what, timeoutMs) {
    const limit = timeoutMs || 10000;
    return new Promise((resolve, reject) => {
        const t0 = Date.now();
        (function poll() {
            let v;
            try {
                v = pred();
            } catch (e) {
                return reject(e);
            }
            if (v) return resolve(v);
            if (Date.now() - t0 > limit) return reject(new Error(`timed out after ${limit}ms waiting for ${what}`));
            setTimeout(poll, 5);
        })();
    });
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

// Track the outcome the peer gave to each delivery sent on `sender`, and whether the
// peer has settled it: sender.outcomes (delivery -> 'accepted' | 'rejected' | ...),
// sender.settledSet (deliveries the peer settled).
function trackOutcomes(sender) {
    sender.outcomes = new Map();
    sender.settledSet = new Set();
    for (const ev of ['accepted', 'rejected', 'released', 'modified']) {
        sender.on(ev, (ctx) => sender.outcomes.set(ctx.delivery, ev));
    }
    sender.on('settled', (ctx) => sender.settledSet.add(ctx.delivery));
    return sender;
}

// Wait until the peer has settled `delivery`; returns its outcome name ('none' if no state).
async function settledOutcome(sender, delivery, timeoutMs) {
    await waitFor(() => sender.settledSet.has(delivery), `settlement of delivery ${delivery.id}`, timeoutMs);
    return sender.outcomes.get(delivery) || 'none';
}

// Send unsettled and wait until the peer settles the delivery; returns the outcome name.
async function sendAndSettle(sender, message, timeoutMs) {
    if (!sender.outcomes) trackOutcomes(sender);
    await waitFor(() => sender.sendable(), `credit on sender to ${sender.target && sender.target.address}`, timeoutMs);
    const d = sender.send(message);
    return settledOutcome(sender, d, timeoutMs);
}

// Run main(); any exception fails the script.
function run(main) {
    main().then(() => pass(), (e) => fail(`${e && e.stack ? e.stack : e} (during step: ${step})`));
}

module.exports = {
    rhea, port, log, fail, pass, check, eq, setStep, connect, close, openSender, openReceiver,
    waitFor, sleep, trackOutcomes, settledOutcome, sendAndSettle, run, errText,
};
