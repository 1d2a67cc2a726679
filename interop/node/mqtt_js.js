'use strict';
// mqtt.js (MQTT 3.1.1 and 5.0, TCP and WebSocket) against Throng: wildcard subscription,
// QoS 1 with v5 properties, retained message, MQTT over WebSocket at /mqtt, and a will
// fired when a client's socket is destroyed.

const mqtt = require('mqtt');
const { fail, pass, setStep } = require('./lib');

const mqttPort = Number(process.env.THRONG_MQTT_PORT);
const httpPort = Number(process.env.THRONG_HTTP_PORT);
if (!mqttPort || !httpPort) fail('set THRONG_MQTT_PORT and THRONG_HTTP_PORT');

function connect(url, opts) {
    return new Promise((resolve, reject) => {
        const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
        c.once('connect', () => resolve(c));
        c.once('error', reject);
    });
}

function nextMessage(client, what) {
    return new Promise((resolve) => {
        client.once('message', (topic, payload, packet) => resolve({ topic, payload: payload.toString(), packet }));
    }).then((m) => { setStep(`${what}: got ${m.topic} ${m.payload}`); return m; });
}

async function main() {
    const tcp = `mqtt://127.0.0.1:${mqttPort}`;

    setStep('v5 subscriber on js/+');
    const sub = await connect(tcp, { protocolVersion: 5, clientId: 'js-sub' });
    await sub.subscribeAsync('js/+', { qos: 1 });

    setStep('v3.1.1 publisher, QoS 1');
    const pub = await connect(tcp, { protocolVersion: 4, clientId: 'js-pub' });
    let got = nextMessage(sub, 'v3 publish');
    await pub.publishAsync('js/a', 'hello from 3.1.1', { qos: 1 });
    let m = await got;
    if (m.topic !== 'js/a' || m.payload !== 'hello from 3.1.1' || m.packet.qos !== 1) fail(`unexpected ${JSON.stringify(m)}`);

    setStep('v5 publish with user properties and content type');
    const pub5 = await connect(tcp, { protocolVersion: 5, clientId: 'js-pub5' });
    got = nextMessage(sub, 'v5 publish');
    await pub5.publishAsync('js/b', '{"v":1}', {
        qos: 1,
        properties: { contentType: 'application/json', userProperties: { site: 'lab' }, responseTopic: 'js/replies' },
    });
    m = await got;
    const p = m.packet.properties || {};
    if (p.contentType !== 'application/json') fail(`content type lost: ${JSON.stringify(p)}`);
    if (!p.userProperties || p.userProperties.site !== 'lab') fail(`user properties lost: ${JSON.stringify(p)}`);
    if (p.responseTopic !== 'js/replies') fail(`response topic lost: ${JSON.stringify(p)}`);

    setStep('retained message on subscribe');
    await pub.publishAsync('js/state', 'ready', { qos: 1, retain: true });
    const late = await connect(tcp, { protocolVersion: 5, clientId: 'js-late' });
    got = nextMessage(late, 'retained');
    await late.subscribeAsync('js/state', { qos: 1 });
    m = await got;
    if (m.payload !== 'ready' || !m.packet.retain) fail(`retained message wrong: ${JSON.stringify(m)}`);

    setStep('MQTT over WebSocket');
    const ws = await connect(`ws://127.0.0.1:${httpPort}/mqtt`, { protocolVersion: 5, clientId: 'js-ws' });
    got = nextMessage(sub, 'websocket publish');
    await ws.publishAsync('js/ws', 'over websocket', { qos: 1 });
    m = await got;
    if (m.payload !== 'over websocket') fail('websocket publish not received');

    setStep('will on a destroyed socket');
    const doomed = await connect(tcp, {
        protocolVersion: 4, clientId: 'js-doomed',
        will: { topic: 'js/will', payload: 'js-doomed died', qos: 1, retain: false },
    });
    got = nextMessage(sub, 'will');
    doomed.stream.destroy();
    m = await got;
    if (m.topic !== 'js/will' || m.payload !== 'js-doomed died') fail(`will wrong: ${JSON.stringify(m)}`);

    for (const c of [sub, pub, pub5, late, ws]) await c.endAsync();
    pass('mqtt.js over TCP and WebSocket');
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
