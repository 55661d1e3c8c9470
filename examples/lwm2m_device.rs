//! A simulated LwM2M device (objects 3 Device and 3303 Temperature) against the LwM2M gateway.
//! It registers, answers reads, writes, executes, discovers and observes, sends a notification
//! for every observed path when its temperature changes (every 5 s), and an Update at half its
//! lifetime. The device itself is `switchyard_lwm2m::sim::Device`, which the end-to-end tests
//! drive too.
//!
//! ```text
//! cargo run --example lwm2m_device -- 127.0.0.1:5783 dev-1
//! mosquitto_sub -t 'lwm2m/dev-1/up/#' -v
//! mosquitto_pub -t lwm2m/dev-1/dn/dm -m '{"reqID":1,"msgType":"read","data":{"path":"/3/0"}}'
//! mosquitto_pub -t lwm2m/dev-1/dn/dm -m '{"reqID":2,"msgType":"observe","data":{"path":"/3303/0/5700"}}'
//! ```

use std::net::SocketAddr;
use std::time::Duration;
use switchyard_lwm2m::sim::{Device, SimValue};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let server: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:5783").parse()?;
    let endpoint = args.next().unwrap_or_else(|| "dev-1".into());
    let lifetime: u64 = 60;
    let mut dev = Device::bind(server, &endpoint).await?;
    dev.register_query = vec![format!("lt={lifetime}"), "lwm2m=1.0".into(), "b=U".into()];
    match dev.register().await {
        Some(0x41) => println!(
            "registered {endpoint} at {server} from {}",
            dev.local_addr()?
        ),
        other => return Err(format!("register failed: {other:?}").into()),
    }
    let mut temperature = 21.5;
    let mut since_update = Duration::ZERO;
    let tick = Duration::from_secs(5);
    loop {
        let before = dev.seen.len();
        dev.serve_for(tick).await;
        for s in &dev.seen[before..] {
            println!(
                "request {}.{:02} {} {:?}",
                s.method >> 5,
                s.method & 0x1f,
                s.path,
                s.query
            );
        }
        temperature += 0.5;
        dev.set_value(3303, 0, 5700, SimValue::Float(temperature));
        for path in ["/3303/0/5700", "/3303/0"] {
            if dev.notify(path, false).await {
                println!("notify {path} = {temperature}");
            }
        }
        since_update += tick;
        if since_update.as_secs() >= lifetime / 2 {
            since_update = Duration::ZERO;
            println!("update: {:?}", dev.update(&[], None).await);
        }
    }
}
