//! `rumqttc-sub HOST PORT TOPIC COUNT VERSION [INFLIGHT]`: subscribes to TOPIC at QoS 1
//! with rumqttc (MQTT 3.1.1 when VERSION is 3, MQTT 5 when 5), prints `subscribed` once
//! the SUBACK arrives, then exits after COUNT messages (or after 120 s without one),
//! printing `received N` on the way out. Acknowledgements are rumqttc's own (automatic).

use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: rumqttc-sub HOST PORT TOPIC COUNT VERSION [INFLIGHT]");
        std::process::exit(2);
    }
    let (host, topic) = (args[1].clone(), args[3].clone());
    let port: u16 = args[2].parse().expect("port");
    let count: u64 = args[4].parse().expect("count");
    let inflight: u16 = args.get(6).map_or(1000, |s| s.parse().expect("inflight"));
    let n = match args[5].as_str() {
        "5" => v5(&host, port, &topic, count, inflight).await,
        _ => v4(&host, port, &topic, count, inflight).await,
    };
    println!("received {n}");
    GAP.with(|g| {
        let (gap, at) = *g.borrow();
        let stalls = STALLS.with(|s| s.get());
        println!("largest gap between messages {} ms, before message {at}; {stalls} gaps of 20 ms or more", gap.as_millis());
    });
    std::process::exit(if n == count { 0 } else { 1 });
}

const IDLE: Duration = Duration::from_secs(120);

thread_local! {
    /// The largest pause between two messages and the message it came before: a stall
    /// shows here even when the total time looks fine.
    static GAP: std::cell::RefCell<(Duration, u64)> = const { std::cell::RefCell::new((Duration::ZERO, 0)) };
    static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    /// Pauses of 20 ms or more (a delayed acknowledgement is 40 ms).
    static STALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts one message and records the pause before it.
fn arrived(n: &mut u64) {
    let now = std::time::Instant::now();
    if let Some(last) = LAST.with(|l| l.replace(Some(now))) {
        let gap = now - last;
        if gap >= Duration::from_millis(20) {
            STALLS.with(|s| s.set(s.get() + 1));
        }
        GAP.with(|g| {
            let mut g = g.borrow_mut();
            if gap > g.0 {
                *g = (gap, *n + 1);
            }
        });
    }
    *n += 1;
}

async fn v4(host: &str, port: u16, topic: &str, count: u64, inflight: u16) -> u64 {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new("rumqttc-sub", host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_inflight(inflight);
    opts.set_clean_session(true);
    let (client, mut events) = AsyncClient::new(opts, 100);
    client.subscribe(topic, QoS::AtLeastOnce).await.expect("subscribe");
    let mut n = 0;
    while n < count {
        match tokio::time::timeout(IDLE, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => println!("subscribed"),
            Ok(Ok(Event::Incoming(Packet::Publish(_)))) => arrived(&mut n),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                eprintln!("connection: {e}");
                break;
            }
            Err(_) => break,
        }
    }
    n
}

async fn v5(host: &str, port: u16, topic: &str, count: u64, inflight: u16) -> u64 {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let mut opts = MqttOptions::new("rumqttc-sub", host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_start(true);
    opts.set_receive_maximum(Some(inflight));
    let (client, mut events) = AsyncClient::new(opts, 100);
    client.subscribe(topic, QoS::AtLeastOnce).await.expect("subscribe");
    let mut n = 0;
    while n < count {
        match tokio::time::timeout(IDLE, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => println!("subscribed"),
            Ok(Ok(Event::Incoming(Packet::Publish(_)))) => arrived(&mut n),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                eprintln!("connection: {e}");
                break;
            }
            Err(_) => break,
        }
    }
    n
}
