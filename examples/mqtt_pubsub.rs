//! Publishes a few readings and reads them back through a running gateway.
//!
//! ```sh
//! cargo run --release &                  # the gateway on 1883
//! cargo run --example mqtt_pubsub        # or: -- HOST PORT
//! ```

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(1883);
    let mut opts = MqttOptions::new("example-sensor", host, port);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut events) = AsyncClient::new(opts, 16);
    client
        .subscribe("example/readings/#", QoS::AtLeastOnce)
        .await?;
    for i in 0..3 {
        client
            .publish(
                format!("example/readings/{i}"),
                QoS::AtLeastOnce,
                false,
                format!("{}", 20 + i),
            )
            .await?;
    }
    let mut received = 0;
    while received < 3 {
        if let Event::Incoming(Packet::Publish(p)) =
            tokio::time::timeout(Duration::from_secs(5), events.poll()).await??
        {
            println!("{} {}", p.topic, String::from_utf8_lossy(&p.payload));
            received += 1;
        }
    }
    client.disconnect().await?;
    Ok(())
}
