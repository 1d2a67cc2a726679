'use strict';
// Queue q1 with two consumers: every message goes to exactly one of them.
const t = require('./lib');

t.run(async () => {
    const n = 20;
    t.setStep('attach two consumers with 5 credits each');
    const a = await t.openReceiver(t.connect(), 'q1', 5);
    const b = await t.openReceiver(t.connect(), 'q1', 5);

    t.setStep(`send ${n}`);
    const sender = t.trackOutcomes(await t.openSender(t.connect(), { target: 'q1' }));
    await t.waitFor(() => sender.sendable(), 'producer credit');
    const deliveries = [];
    for (let i = 0; i < n; i++) deliveries.push(sender.send({ body: `m${i}` }));
    for (const d of deliveries) t.eq(await t.settledOutcome(sender, d), 'accepted', `outcome of ${d.id}`);

    for (let round = 0; round < 2; round++) {
        t.setStep(`round ${round}`);
        await t.waitFor(() => a.got.length + b.got.length >= 10 * (round + 1), `${10 * (round + 1)} messages in total`);
        await t.sleep(200);
        t.check(a.got.length <= 5 * (round + 1) && b.got.length <= 5 * (round + 1),
            `credit exceeded: a=${a.got.length} b=${b.got.length}`);
        for (const r of [a, b]) {
            for (const g of r.got) if (!g.delivery.settled_locally) { g.delivery.accept(); g.delivery.settled_locally = true; }
            r.add_credit(5);
        }
    }
    const ga = a.got.map((g) => g.message.body);
    const gb = b.got.map((g) => g.message.body);
    t.log(`a got ${ga}`);
    t.log(`b got ${gb}`);
    t.check(ga.length > 0 && gb.length > 0, 'one consumer got nothing');
    const all = ga.concat(gb);
    t.eq(new Set(all).size, all.length, 'no message delivered twice');
    const expected = Array.from({ length: n }, (_, i) => `m${i}`);
    t.eq(all.slice().sort(), expected.slice().sort(), 'union of both consumers');
});
