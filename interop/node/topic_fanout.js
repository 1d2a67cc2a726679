'use strict';
// Topic t1: two subscribers each receive every message published after they attached.
const t = require('./lib');

t.run(async () => {
    const n = 10;
    t.setStep('subscribe twice');
    const s1 = await t.openReceiver(t.connect(), 't1', 50);
    const s2 = await t.openReceiver(t.connect(), 't1', 50);
    await t.sleep(100);

    t.setStep('publish');
    const sender = t.trackOutcomes(await t.openSender(t.connect(), { target: 't1' }));
    for (let i = 0; i < n; i++) {
        t.eq(await t.sendAndSettle(sender, { body: `news-${i}`, application_properties: { i } }), 'accepted', `outcome of ${i}`);
    }
    const expected = Array.from({ length: n }, (_, i) => `news-${i}`);
    for (const [name, s] of [['s1', s1], ['s2', s2]]) {
        t.setStep(`check ${name}`);
        await t.waitFor(() => s.got.length >= n, `${n} messages on ${name} (have ${s.got.length})`);
        t.eq(s.got.map((g) => g.message.body), expected, `${name} bodies`);
        t.eq(s.got.map((g) => g.message.application_properties.i), expected.map((_, i) => i), `${name} properties`);
        for (const g of s.got) g.delivery.accept();
    }
    await t.sleep(200);
    t.eq([s1.got.length, s2.got.length], [n, n], 'no extra messages');
});
