//! The sans-IO link state machine, without sockets: two links joined by in-memory queues and a
//! virtual clock.

use std::time::{Duration, Instant};

use bytes::Bytes;
use noodles2::codec::*;
use noodles2::link::*;

/// Two links and a virtual clock. Frames move between them until both are idle.
struct Pair {
    now: Instant,
    client: Link,
    server: Link,
    client_events: Vec<LinkEvent>,
    server_events: Vec<LinkEvent>,
}

impl Pair {
    fn new(client_cfg: LinkConfig, intent: ClientIntent, server_cfg: LinkConfig) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            client: Link::client(now, client_cfg, intent),
            server: Link::server(now, server_cfg),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    fn default_join() -> Pair {
        Pair::new(cfg("client"), ClientIntent::Join, cfg("server"))
    }

    /// Move frames both ways until nothing moves (bounded number of steps).
    fn drive(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(f) = self.client.poll_transmit() {
                self.server.handle_frame(self.now, f);
                moved = true;
            }
            while let Some(f) = self.server.poll_transmit() {
                self.client.handle_frame(self.now, f);
                moved = true;
            }
            while let Some(e) = self.client.poll_event() {
                self.client_events.push(e);
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("pair did not become idle");
    }

    #[allow(dead_code)]
    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.drive();
    }
}

fn cfg(name: &str) -> LinkConfig {
    LinkConfig {
        name: name.into(),
        preamble_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn established(events: &[LinkEvent]) -> Option<&Established> {
    events.iter().find_map(|e| match e {
        LinkEvent::Established(e) => Some(e),
        _ => None,
    })
}

fn closed(events: &[LinkEvent]) -> Option<&CloseReason> {
    events.iter().find_map(|e| match e {
        LinkEvent::Closed(r) => Some(r),
        _ => None,
    })
}

fn protocol_error(link: &Link) -> ProtocolError {
    match link.state() {
        LinkState::Closed(CloseReason::Protocol(e)) => e.clone(),
        other => panic!("expected a protocol error, link is {other:?}"),
    }
}

#[test]
fn join_reaches_main_sequence_with_server_upstream() {
    let mut p = Pair::default_join();
    p.drive();
    let c = established(&p.client_events).expect("client established");
    let s = established(&p.server_events).expect("server established");
    assert_eq!(c.role, Role::Downstream);
    assert_eq!(s.role, Role::Upstream);
    assert_eq!(c.peer_name, "server");
    assert_eq!(s.peer_name, "client");
    assert_eq!(c.extensions, vec![0]);
    assert_eq!(*p.client.state(), LinkState::MainSequence);
    assert_eq!(*p.server.state(), LinkState::MainSequence);
    assert_eq!(
        p.client.poll_timeout(),
        None,
        "no timeout in the main sequence"
    );
}

#[test]
fn capabilities_are_intersected() {
    let mut c = cfg("c");
    c.extensions = vec![0, 7, 9];
    let mut s = cfg("s");
    s.extensions = vec![9, 0, 12];
    let mut p = Pair::new(c, ClientIntent::Join, s);
    p.drive();
    assert_eq!(
        established(&p.client_events).unwrap().extensions,
        vec![0, 9]
    );
    assert_eq!(
        established(&p.server_events).unwrap().extensions,
        vec![0, 9]
    );
}

#[test]
fn missing_core_closes() {
    let mut c = cfg("c");
    c.extensions = vec![7];
    let mut p = Pair::new(c, ClientIntent::Join, cfg("s"));
    p.drive();
    assert!(matches!(
        protocol_error(&p.server),
        ProtocolError::MissingCore { .. }
    ));
    assert!(established(&p.server_events).is_none());
}

#[test]
fn oob_ports_reach_the_downstream() {
    let mut s = cfg("s");
    s.oob_ports = vec![5001, 5002];
    let mut p = Pair::new(cfg("c"), ClientIntent::Join, s);
    p.drive();
    assert_eq!(
        established(&p.client_events).unwrap().peer_oob_ports,
        vec![5001, 5002]
    );
}

#[test]
fn version_mismatch_closes_with_reason() {
    let now = Instant::now();
    let mut server = Link::server(now, cfg("s"));
    let intro = PreMessage::Introduction(Introduction {
        header: IntroductionHeader {
            protocol_version: 2,
            flags: IntroductionFlags::default(),
            name: "x".into(),
            capabilities: vec![ExtensionID::new(0)].into(),
        },
    });
    server.handle_frame(now, intro.encode_bytes().unwrap());
    assert_eq!(
        protocol_error(&server),
        ProtocolError::VersionMismatch { ours: 1, theirs: 2 }
    );
    assert!(server.to_string_reason().contains("version"));
}

trait ReasonText {
    fn to_string_reason(&self) -> String;
}
impl ReasonText for Link {
    fn to_string_reason(&self) -> String {
        match self.state() {
            LinkState::Closed(r) => r.to_string(),
            s => format!("{s:?}"),
        }
    }
}

#[test]
fn client_rejects_reply_with_wrong_version() {
    let now = Instant::now();
    let mut client = Link::client(now, cfg("c"), ClientIntent::Join);
    let reply = PreMessage::IntroductionReply(IntroductionReply {
        header: IntroductionHeader {
            protocol_version: 9,
            flags: IntroductionFlags::default(),
            name: "s".into(),
            capabilities: vec![ExtensionID::new(0)].into(),
        },
        large_assets: OOBAssetInfo::Void,
    });
    client.handle_frame(now, reply.encode_bytes().unwrap());
    assert_eq!(
        protocol_error(&client),
        ProtocolError::VersionMismatch { ours: 1, theirs: 9 }
    );
}

#[test]
fn probe_gets_name_and_icon_then_both_close() {
    let mut s = cfg("session");
    s.icon = Bytes::from_static(b"\x89PNG...");
    let mut p = Pair::new(cfg("c"), ClientIntent::Probe, s);
    p.drive();
    assert!(p.client_events.contains(&LinkEvent::ProbeReply {
        name: "session".into(),
        icon: Bytes::from_static(b"\x89PNG...")
    }));
    assert!(p.client.is_closed());
    assert!(p.server.is_closed());
    assert!(established(&p.server_events).is_none());
}

#[test]
fn authority_swap_accepted() {
    let mut s = cfg("viewer");
    s.authority = AuthorityPolicy::Accept;
    let mut c = cfg("game");
    c.oob_ports = vec![6000];
    let mut p = Pair::new(c, ClientIntent::JoinAsUpstream, s);
    p.drive();
    let c = established(&p.client_events).expect("client established");
    let s = established(&p.server_events).expect("server established");
    assert_eq!(c.role, Role::Upstream);
    assert_eq!(s.role, Role::Downstream);
    assert_eq!(s.peer_name, "game");
    assert_eq!(c.peer_name, "viewer");
    assert_eq!(
        s.peer_oob_ports,
        vec![6000],
        "the new Upstream advertises its OOB ports in its reply"
    );
}

#[test]
fn authority_swap_refused_closes() {
    let mut p = Pair::new(cfg("game"), ClientIntent::JoinAsUpstream, cfg("host"));
    p.drive();
    assert_eq!(protocol_error(&p.server), ProtocolError::AuthorityRefused);
    assert!(established(&p.client_events).is_none());
}

#[test]
fn authority_request_answered_by_plain_reply_is_an_error() {
    let now = Instant::now();
    let mut client = Link::client(now, cfg("c"), ClientIntent::JoinAsUpstream);
    let reply = PreMessage::IntroductionReply(IntroductionReply {
        header: IntroductionHeader {
            protocol_version: 1,
            flags: IntroductionFlags::default(),
            name: "s".into(),
            capabilities: vec![ExtensionID::new(0)].into(),
        },
        large_assets: OOBAssetInfo::Void,
    });
    client.handle_frame(now, reply.encode_bytes().unwrap());
    assert_eq!(protocol_error(&client), ProtocolError::AuthorityIgnored);
}

#[test]
fn preamble_timeout_with_virtual_clock() {
    let now = Instant::now();
    let mut server = Link::server(now, cfg("s"));
    assert_eq!(server.poll_timeout(), Some(now + Duration::from_secs(10)));
    server.handle_timeout(now + Duration::from_secs(9));
    assert_eq!(*server.state(), LinkState::Preamble);
    server.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(
        *server.state(),
        LinkState::Closed(CloseReason::PreambleTimeout(Duration::from_secs(10)))
    );
    assert_eq!(
        server.poll_event(),
        Some(LinkEvent::Closed(CloseReason::PreambleTimeout(
            Duration::from_secs(10)
        )))
    );
    assert_eq!(server.poll_event(), None);
}

#[test]
fn late_introduction_after_deadline_is_refused() {
    let mut p = Pair::default_join();
    p.now += Duration::from_secs(11);
    p.drive();
    assert!(matches!(
        p.server.state(),
        LinkState::Closed(CloseReason::PreambleTimeout(_))
    ));
}

#[test]
fn main_sequence_message_during_preamble_is_an_error() {
    let now = Instant::now();
    let mut server = Link::server(now, cfg("s"));
    let tx = MainSequenceMessage::Transaction(Transaction {
        content: ContentArray(vec![]),
    });
    server.handle_frame(now, tx.encode_bytes().unwrap());
    assert!(matches!(
        protocol_error(&server),
        ProtocolError::Decode(_) | ProtocolError::UnexpectedPreMessage(..)
    ));
}

#[test]
fn server_gets_reply_instead_of_introduction() {
    let now = Instant::now();
    let mut server = Link::server(now, cfg("s"));
    let reply = PreMessage::ProbeReply(ProbeReply {
        name: "x".into(),
        icon: Default::default(),
    });
    server.handle_frame(now, reply.encode_bytes().unwrap());
    assert_eq!(
        protocol_error(&server),
        ProtocolError::UnexpectedPreMessage("ProbeReply", "Introduction or Probe")
    );
}

#[test]
fn garbage_closes_with_the_codec_error() {
    let now = Instant::now();
    let mut server = Link::server(now, cfg("s"));
    server.handle_frame(now, Bytes::from_static(&[2, 1, 0, 0, 0, 0xff, 0xff]));
    let e = protocol_error(&server);
    assert!(matches!(e, ProtocolError::Decode(_)), "{e:?}");
    assert!(e.to_string().contains("PreMessage::Introduction"), "{e}");
    // Nothing more happens once closed.
    server.handle_frame(now, Bytes::from_static(&[0]));
    assert_eq!(server.poll_transmit(), None);
}

fn main_pair() -> Pair {
    let mut p = Pair::default_join();
    p.drive();
    p.client_events.clear();
    p.server_events.clear();
    p
}

#[test]
fn messages_flow_both_ways_in_main_sequence() {
    let mut p = main_pair();
    let tx = MainSequenceMessage::Transaction(Transaction {
        content: ContentArray(vec![]),
    });
    p.server.send(&tx).unwrap();
    let inv = MainSequenceMessage::RPCInvoke(RPCInvoke {
        this_invoke_id: 1,
        endpoint: EntityID::new(5),
        args: Default::default(),
    });
    p.client.send(&inv).unwrap();
    p.drive();
    assert_eq!(p.client_events, vec![LinkEvent::Message(tx)]);
    assert_eq!(p.server_events, vec![LinkEvent::Message(inv)]);
}

#[test]
fn outgoing_role_checks() {
    let mut p = main_pair();
    let tx = MainSequenceMessage::Transaction(Transaction {
        content: ContentArray(vec![]),
    });
    assert_eq!(
        p.client.send(&tx),
        Err(SendError::Role {
            role: Role::Downstream,
            kind: MessageKind::Transaction
        })
    );
    let prop = MainSequenceMessage::ProposedChangeTransaction(ProposedChangeTransaction {
        transaction_id: 1,
        content: ContentArray(vec![]),
    });
    assert_eq!(
        p.server.send(&prop),
        Err(SendError::Role {
            role: Role::Upstream,
            kind: MessageKind::ProposedChangeTransaction
        })
    );
    assert_eq!(
        p.server.send_encoded(Bytes::from_static(&[9])),
        Err(SendError::NotAMessage(Some(9)))
    );
    let fresh = Link::server(Instant::now(), cfg("x"));
    let mut fresh = fresh;
    assert_eq!(fresh.send(&tx), Err(SendError::NotOpen));
}

#[test]
fn downstream_sending_transaction_is_a_protocol_error() {
    let mut p = main_pair();
    let tx = MainSequenceMessage::Transaction(Transaction {
        content: ContentArray(vec![]),
    });
    p.server.handle_frame(p.now, tx.encode_bytes().unwrap());
    assert_eq!(
        protocol_error(&p.server),
        ProtocolError::RoleViolation {
            role: Role::Downstream,
            kind: MessageKind::Transaction
        }
    );
}

#[test]
fn upstream_sending_proposal_is_a_protocol_error() {
    let mut p = main_pair();
    let prop = MainSequenceMessage::ProposedChangeTransaction(ProposedChangeTransaction {
        transaction_id: 1,
        content: ContentArray(vec![]),
    });
    p.client.handle_frame(p.now, prop.encode_bytes().unwrap());
    assert_eq!(
        protocol_error(&p.client),
        ProtocolError::RoleViolation {
            role: Role::Upstream,
            kind: MessageKind::ProposedChangeTransaction
        }
    );
}

#[test]
fn premessage_after_preamble_is_a_protocol_error() {
    let mut p = main_pair();
    p.server
        .handle_frame(p.now, PreMessage::Probe(Probe).encode_bytes().unwrap());
    assert_eq!(
        protocol_error(&p.server),
        ProtocolError::PreMessageAfterPreamble("Probe")
    );
}

#[test]
fn undecodable_main_frame_closes() {
    let mut p = main_pair();
    p.server
        .handle_frame(p.now, Bytes::from_static(&[4, 1, 0, 0, 0]));
    let e = protocol_error(&p.server);
    assert!(
        e.to_string().contains("MainSequenceMessage::RPCInvoke"),
        "{e}"
    );
    assert!(
        closed(&p.server_events).is_none(),
        "events are only read by drive()"
    );
    p.drive();
    assert!(closed(&p.server_events).is_some());
}
