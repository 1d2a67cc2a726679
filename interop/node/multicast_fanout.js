'use strict';
// Multicast multi1: every attached receiver gets every message, presettled; the
// producer's unsettled sends are settled `accepted` once forwarded.
const t = require('./lib');

t.run(async () => {
    const n = 10;
    t.setStep('attach two receivers');
    const r1 = await t.openReceiver(t.connect(), 'multi1', 50);
    const r2 = await t.openReceiver(t.connect(), 'multi1', 50);
    await t.sleep(200);

    t.setStep('send');
    const sender = t.trackOutcomes(await t.openSender(t.connect(), { target: 'multi1' }));
    for (let i = 0; i < n; i++) {
        t.eq(await t.sendAndSettle(sender, { body: `bc-${i}` }), 'accepted', `outcome of ${i}`);
    }
    const expected = Array.from({ length: n }, (_, i) => `bc-${i}`);
    for (const [name, r] of [['r1', r1], ['r2', r2]]) {
        t.setStep(`check ${name}`);
        await t.waitFor(() => r.got.length >= n, `${n} messages on ${name} (have ${r.got.length})`);
        t.eq(r.got.map((g) => g.message.body), expected, `${name} bodies`);
        t.check(r.got.every((g) => g.delivery.remote_settled), `${name}: multicast deliveries must arrive presettled`);
    }
    await t.sleep(200);
    t.eq([r1.got.length, r2.got.length], [n, n], 'no extra messages');
});
