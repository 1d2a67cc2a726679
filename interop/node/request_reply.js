'use strict';
// Request/reply: the client's reply address comes from a dynamic receiver; a responder
// consumes the queue `requests` and answers through an anonymous sender (to = reply_to);
// the reply arrives with the correlation id preserved.
const t = require('./lib');

t.run(async () => {
    t.setStep('responder');
    const rconn = t.connect();
    const anon = t.trackOutcomes(await t.openSender(rconn, { target: {} }));
    const requests = await t.openReceiver(rconn, 'requests', 10);
    let answered = 0;
    requests.on('message', (ctx) => {
        const m = ctx.message;
        anon.send({ to: m.reply_to, correlation_id: m.correlation_id, body: String(m.body).toUpperCase() });
        ctx.delivery.accept();
        answered++;
    });

    t.setStep('client: dynamic receivers');
    const cconn = t.connect();
    const replies = await t.openReceiver(cconn, { source: { dynamic: true } }, 10);
    const other = await t.openReceiver(cconn, { source: { dynamic: true } }, 1);
    const replyTo = replies.source && replies.source.address;
    const otherAddr = other.source && other.source.address;
    t.log(`dynamic addresses: ${replyTo}, ${otherAddr}`);
    t.check(typeof replyTo === 'string' && replyTo.length > 0, `dynamic address must be non-empty: ${JSON.stringify(replyTo)}`);
    t.check(replyTo !== otherAddr, 'dynamic addresses must be unique');

    t.setStep('requests');
    const client = t.trackOutcomes(await t.openSender(cconn, { target: 'requests' }));
    const n = 3;
    for (let i = 0; i < n; i++) {
        const outcome = await t.sendAndSettle(client, { body: `question ${i}`, reply_to: replyTo, correlation_id: `rr-${i}`, message_id: `req-${i}` });
        t.eq(outcome, 'accepted', `request ${i} outcome`);
    }
    t.setStep('replies');
    await t.waitFor(() => replies.got.length >= n, `${n} replies (responder answered ${answered})`);
    for (let i = 0; i < n; i++) {
        const g = replies.got[i];
        t.eq(g.message.correlation_id, `rr-${i}`, `reply ${i} correlation_id`);
        t.eq(g.message.body, `QUESTION ${i}`, `reply ${i} body`);
        g.delivery.accept();
    }
    t.eq(other.got.length, 0, 'messages on the other dynamic receiver');
});
