'use strict';
// Anycast any1 (direct, no store):
//  - a producer gets no credit while no consumer is attached, and gets it once one is;
//  - an unsettled send stays unsettled until the consumer settles, then the producer
//    sees the consumer's own outcome (accepted / rejected / released);
//  - two consumers share the messages, balanced by fewest unsettled.
const t = require('./lib');

t.run(async () => {
    t.setStep('producer without consumer');
    const sender = t.trackOutcomes(await t.openSender(t.connect(), { target: 'any1' }));
    await t.sleep(1000);
    t.check(!sender.sendable(), `producer got credit (${sender.credit}) with no consumer attached`);

    t.setStep('consumer attaches');
    const consumer = await t.openReceiver(t.connect(), 'any1', 3);
    await t.waitFor(() => sender.sendable(), 'producer credit after the consumer granted credit', 5000);

    for (const outcome of ['accepted', 'rejected', 'released']) {
        t.setStep(`outcome ${outcome}`);
        const before = consumer.got.length;
        await t.waitFor(() => sender.sendable(), 'producer credit');
        const d = sender.send({ body: outcome, message_id: `any-${outcome}` });
        await t.waitFor(() => consumer.got.length > before, `message '${outcome}' at the consumer`);
        const got = consumer.got[before];
        t.eq(got.message.body, outcome, 'body');
        t.eq(got.message.message_id, `any-${outcome}`, 'message_id');
        await t.sleep(300);
        t.check(!sender.settledSet.has(d), `producer's delivery was settled (${sender.outcomes.get(d)}) before the consumer settled it`);
        if (outcome === 'accepted') got.delivery.accept();
        else if (outcome === 'rejected') got.delivery.reject({ condition: 'amqp:internal-error', description: 'test reject' });
        else got.delivery.release();
        t.eq(await t.settledOutcome(sender, d), outcome, 'outcome seen by the producer');
    }

    t.setStep('second consumer, balance');
    const n = 10;
    const c2 = await t.openReceiver(t.connect(), 'any1', 0);
    const base1 = consumer.got.length;
    consumer.add_credit(n);
    c2.add_credit(n);
    await t.sleep(300);
    const ds = [];
    for (let i = 0; i < n; i++) {
        await t.waitFor(() => sender.sendable(), `credit for message ${i}`);
        ds.push(sender.send({ body: `w${i}` }));
    }
    await t.waitFor(() => (consumer.got.length - base1) + c2.got.length >= n, `${n} messages over both consumers`);
    const g1 = consumer.got.slice(base1);
    const g2 = c2.got;
    t.log(`consumer1 got ${g1.map((g) => g.message.body)}; consumer2 got ${g2.map((g) => g.message.body)}`);
    t.check(g1.length > 0 && g2.length > 0, 'both consumers must get messages');
    t.check(Math.abs(g1.length - g2.length) <= 1, `not balanced by fewest unsettled: ${g1.length} vs ${g2.length}`);
    const all = g1.concat(g2).map((g) => g.message.body).sort();
    t.eq(all, Array.from({ length: n }, (_, i) => `w${i}`).sort(), 'union');
    for (const g of g1.concat(g2)) g.delivery.accept();
    for (const d of ds) t.eq(await t.settledOutcome(sender, d), 'accepted', `outcome of ${d.id}`);
});
