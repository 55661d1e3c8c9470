//! Property test of the QoS engine's outgoing window against a plain model: random sequences of
//! sends, acknowledgements (for ids in flight, in any stage, and for ids never sent — the
//! stray acks of issue 13), resumes and retries. The engine must never panic, must agree with
//! the model on every result, keep ids unique, stay within the window, and resend in send order.

use super::*;
use proptest::prelude::*;
use std::sync::Arc;
use switchyard_core::{Message, TopicName};

#[derive(Debug, Clone)]
enum Pick {
    /// The id of the entry at this index (mod the window), if any.
    InFlight(usize),
    /// Any id at all, most likely one never sent.
    Raw(u16),
}

#[derive(Debug, Clone)]
enum Op {
    Send(QoS),
    PubAck(Pick),
    PubRec(Pick, bool),
    PubComp(Pick),
    Resume,
    Retry(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let pick = prop_oneof![
        3 => (0usize..64).prop_map(Pick::InFlight),
        1 => any::<u16>().prop_map(Pick::Raw),
    ];
    prop_oneof![
        4 => prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
            .prop_map(Op::Send),
        2 => pick.clone().prop_map(Op::PubAck),
        2 => (pick.clone(), any::<bool>()).prop_map(|(p, a)| Op::PubRec(p, a)),
        2 => pick.prop_map(Op::PubComp),
        1 => Just(Op::Resume),
        1 => (0u8..10).prop_map(Op::Retry),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelStage {
    Ack,
    Rec,
    Comp,
}

fn delivery(qos: QoS) -> Delivery {
    let t = TopicName::new("m").unwrap_or_else(|e| panic!("{e}"));
    Delivery::new(Arc::new(Message::new(t, "x", qos, false)), qos, false)
}

fn resolve(model: &[(u16, ModelStage)], pick: &Pick) -> u16 {
    match pick {
        Pick::InFlight(i) if !model.is_empty() => model[i % model.len()].0,
        Pick::InFlight(i) => (*i as u16).wrapping_add(1),
        Pick::Raw(id) => *id,
    }
}

fn expected(model: &[(u16, ModelStage)], id: u16, ok: ModelStage) -> Result<usize, AckError> {
    match model.iter().position(|(m, _)| *m == id) {
        None => Err(AckError::UnknownPacketId(id)),
        Some(i) if model[i].1 == ok => Ok(i),
        Some(_) => Err(AckError::WrongStage(id)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn window_agrees_with_the_model(window in 1u16..8, ops in prop::collection::vec(op(), 1..120)) {
        let mut e = QosEngine::new(QosConfig {
            max_inflight: window,
            retry_interval: Some(Duration::from_secs(5)),
            max_awaiting_rel: 0,
            await_rel_timeout: Duration::from_secs(300),
        });
        let t0 = Instant::now();
        let mut clock = 0u64;
        let mut model: Vec<(u16, ModelStage)> = Vec::new();
        for op in ops {
            let now = t0 + Duration::from_secs(clock);
            match op {
                Op::Send(qos) => {
                    let d = delivery(qos);
                    if !e.can_send(&d) {
                        prop_assert!(model.len() >= usize::from(window));
                        continue;
                    }
                    let s = e.send(d, now);
                    match qos {
                        QoS::AtMostOnce => prop_assert!(s.pkid.is_none()),
                        _ => {
                            let id = s.pkid.map(|p| p.get());
                            prop_assert!(id.is_some());
                            let id = id.unwrap_or(0);
                            prop_assert!(model.iter().all(|(m, _)| *m != id), "id {} reused", id);
                            let stage = if qos == QoS::AtLeastOnce { ModelStage::Ack } else { ModelStage::Rec };
                            model.push((id, stage));
                        }
                    }
                }
                Op::PubAck(p) => {
                    let id = resolve(&model, &p);
                    let Some(pkid) = NonZeroU16::new(id) else { continue };
                    let want = expected(&model, id, ModelStage::Ack);
                    let got = e.on_puback(pkid).map(|_| ());
                    prop_assert_eq!(got, want.map(|_| ()));
                    if let Ok(i) = want { model.remove(i); }
                }
                Op::PubRec(p, accepted) => {
                    let id = resolve(&model, &p);
                    let Some(pkid) = NonZeroU16::new(id) else { continue };
                    let pos = model.iter().position(|(m, _)| *m == id);
                    let want = match pos.map(|i| (i, model[i].1)) {
                        None => Err(AckError::UnknownPacketId(id)),
                        Some((_, ModelStage::Ack)) => Err(AckError::WrongStage(id)),
                        Some((i, ModelStage::Rec)) => {
                            if accepted { model[i].1 = ModelStage::Comp; } else { model.remove(i); }
                            Ok(())
                        }
                        // A repeated PUBREC: PUBREL again, nothing changes.
                        Some((_, ModelStage::Comp)) => Ok(()),
                    };
                    prop_assert_eq!(e.on_pubrec(pkid, accepted, now), want);
                }
                Op::PubComp(p) => {
                    let id = resolve(&model, &p);
                    let Some(pkid) = NonZeroU16::new(id) else { continue };
                    let want = expected(&model, id, ModelStage::Comp);
                    prop_assert_eq!(e.on_pubcomp(pkid).map(|_| ()), want.map(|_| ()));
                    if let Ok(i) = want { model.remove(i); }
                }
                Op::Resume => {
                    let resent = e.resume(now);
                    prop_assert_eq!(resent.len(), model.len());
                    for (r, (id, stage)) in resent.iter().zip(&model) {
                        match r {
                            Resend::Publish(s) => {
                                prop_assert!(s.dup);
                                prop_assert_eq!(s.pkid.map(|p| p.get()), Some(*id));
                                prop_assert!(*stage != ModelStage::Comp);
                            }
                            Resend::PubRel(p) => {
                                prop_assert_eq!(p.get(), *id);
                                prop_assert_eq!(*stage, ModelStage::Comp);
                            }
                        }
                    }
                }
                Op::Retry(secs) => {
                    clock += u64::from(secs);
                    let due = e.poll_retry(t0 + Duration::from_secs(clock));
                    prop_assert!(due.len() <= model.len());
                }
            }
            prop_assert_eq!(e.inflight_len(), model.len());
            prop_assert!(e.inflight_len() <= usize::from(window));
            prop_assert_eq!(e.has_credit(), model.len() < usize::from(window));
        }
    }
}
