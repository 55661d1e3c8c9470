//! The seed corpus of the transport target: small programs (see `transport.rs` for how each
//! byte is read). `cargo test -p switchyard-coap-transport write_seed_corpus -- --ignored`
//! rewrites `fuzz/seeds/coap_transport/gen-*`; crash regressions sit beside them.

fn transport_seeds() -> Vec<(String, Vec<u8>)> {
    // MAX_RETRANSMIT 4, 1024-byte blocks, 4096-byte bodies, seed 7.
    let header = [4u8, 6, 1, 0, 0, 0, 7];
    let prog = |parts: &[&[u8]]| {
        let mut b = header.to_vec();
        for p in parts {
            b.extend_from_slice(p);
        }
        b
    };
    vec![
        (
            "gen-block1-block2".into(),
            prog(&[
                // CON POST /ps/a, Block1 0 (16 bytes, more), then block 1 (5 bytes, last).
                &[0, 1, 1, 32, 1, 2, 2, 0xaa, 0xbb, 0, 0, 1, 0],
                &[0, 1, 2, 32, 1, 2, 2, 0xaa, 0xbb, 0, 1, 0, 0, 5],
                // The application answers with a 5000-byte body: Block2.
                &[0, 4, 0, 0, 4, 0],
                // GET /ps/a Block2 1 (1024 bytes).
                &[0, 1, 3, 4, 0, 2, 2, 0xaa, 0xbb, 0, 1, 6, 0],
                &[0, 10, 2, 1],
            ]),
        ),
        (
            "gen-notify-request".into(),
            prog(&[
                &[1, 6, 2, b'a', b'b', 0, 5, 2, 1, 0], // CON notification, 300 bytes
                &[1, 8, 0, 0, 0],                      // empty ACK
                &[2, 7, 0, 1, 1, 1],                   // CON GET Observe (client role)
                &[2, 8, 1, 0, 2, 1, 3],                // piggybacked 2.05 Observe 3
                &[0, 10, 100, 1],
            ]),
        ),
        (
            "gen-duplicates".into(),
            prog(&[
                &[0, 1, 9, 0, 0, 1, 1, 7, 1, 20], // CON GET /ps/a/b
                &[0, 11, 1],                      // retransmitted
                &[0, 10, 1, 1],                   // piggyback timer: empty ACK
                &[0, 11, 1],
                &[0, 4, 0, 1, 2, 0],
            ]),
        ),
    ]
}

#[test]
#[ignore = "rewrites fuzz/seeds/coap_transport/gen-*; run when the harness changes"]
fn write_seed_corpus() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/seeds/coap_transport"
    );
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    for (name, bytes) in transport_seeds() {
        let path = std::path::Path::new(dir).join(name);
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{e}"));
    }
}
