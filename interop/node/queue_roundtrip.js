'use strict';
// Queue q1: unsettled sends are accepted once stored; a consumer that attaches later
// receives them in order with body, properties and application properties unchanged.
const t = require('./lib');

t.run(async () => {
    const n = 10;
    t.setStep('connect producer');
    const pconn = t.connect();
    const sender = t.trackOutcomes(await t.openSender(pconn, { target: 'q1' }));

    const sent = [];
    for (let i = 0; i < n; i++) {
        sent.push({
            message_id: `rhea-${i}`,
            correlation_id: `corr-${i}`,
            reply_to: 'rhea-replies',
            subject: `subject-${i}`,
            content_type: 'text/plain',
            application_properties: { index: i, name: `n${i}`, flag: i % 2 === 0, 'unicode-key': 'ünï ✓' },
            body: `body ${i} ✓`,
        });
    }
    t.setStep(`send ${n} messages unsettled`);
    await t.waitFor(() => sender.sendable(), 'producer credit');
    const deliveries = sent.map((m) => sender.send(m));
    for (const [i, d] of deliveries.entries()) {
        const outcome = await t.settledOutcome(sender, d);
        t.eq(outcome, 'accepted', `outcome of send ${i}`);
    }
    await t.close(pconn);

    t.setStep('consume');
    const cconn = t.connect();
    const receiver = await t.openReceiver(cconn, 'q1', n);
    await t.waitFor(() => receiver.got.length >= n, `${n} messages`);
    for (let i = 0; i < n; i++) {
        const m = receiver.got[i].message;
        const s = sent[i];
        for (const f of ['message_id', 'correlation_id', 'reply_to', 'subject', 'content_type', 'body']) {
            t.eq(m[f], s[f], `message ${i} ${f}`);
        }
        t.eq(m.application_properties, s.application_properties, `message ${i} application_properties`);
        receiver.got[i].delivery.accept();
    }
    await t.sleep(200);
    t.eq(receiver.got.length, n, 'number of messages received');
    await t.close(cconn);
});
