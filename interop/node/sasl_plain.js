'use strict';
// SASL PLAIN against a node whose tenant has the user alice/secret:
// right password works, wrong password and anonymous access are refused.
const t = require('./lib');

// Resolve with a description of how the connection was refused; fail if it was not.
function expectRefused(label, opts) {
    return new Promise((resolve) => {
        const conn = t.connect(Object.assign({ expectFailure: true }, opts));
        const done = (how) => { conn._closing = true; resolve(how); };
        conn.container.on('error', (err) => done(`error ${t.errText(err)}`));
        conn.on('connection_error', (ctx) => done(`connection_error ${t.errText(ctx.error || conn.error)}`));
        conn.on('disconnected', (ctx) => done(`disconnected ${t.errText(ctx.error)}`));
        conn.on('connection_open', () => {
            // Let in at connection level: then any attach must be refused.
            const s = conn.open_sender('q1');
            s.on('sender_error', () => {
                const e = s.remote.detach && s.remote.detach.error;
                if (e && e.condition === 'amqp:unauthorized-access') done(`attach refused ${t.errText(e)}`);
                else t.fail(`${label}: attach refused with ${t.errText(e)}, expected amqp:unauthorized-access`);
            });
            s.on('sender_open', () => setTimeout(() => {
                if (!s.is_closed()) t.fail(`${label}: connection accepted and sender attached to q1`);
            }, 1000));
        });
    });
}

t.run(async () => {
    t.setStep('alice/secret');
    const conn = t.connect({ username: 'alice', password: 'secret' });
    const sender = t.trackOutcomes(await t.openSender(conn, { target: 'q1' }));
    t.eq(await t.sendAndSettle(sender, { body: 'hello alice' }), 'accepted', 'authenticated send');
    const receiver = await t.openReceiver(conn, 'q1', 1);
    await t.waitFor(() => receiver.got.length >= 1, 'the message back');
    t.eq(receiver.got[0].message.body, 'hello alice', 'body');
    receiver.got[0].delivery.accept();
    await t.close(conn);

    t.setStep('alice/wrong');
    let how = await expectRefused('wrong password', { username: 'alice', password: 'wrong' });
    t.log(`wrong password refused: ${how}`);
    t.check(/unauthorized-access/.test(how), `wrong password: expected amqp:unauthorized-access, got ${how}`);

    t.setStep('SASL ANONYMOUS');
    how = await expectRefused('SASL ANONYMOUS', { username: 'anonymous' });
    t.log(`SASL ANONYMOUS refused: ${how}`);

    t.setStep('no SASL layer');
    how = await expectRefused('no SASL', {});
    t.log(`connection without SASL refused: ${how}`);
});
