//! The websocket transport over real loopback sockets: `wss://` with certificates generated at
//! test time (rcgen), certificates that must be refused, and the out-of-band channel over TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use noodles2::link::{
    ClientIntent, CloseReason, LinkConfig, LinkEvent, ListenError, Role, TransportError,
};
use noodles2::oob::{FetchDone, OobClient, OobStore, OobTarget};
use noodles2::tls::{ClientTls, ServerTls, TlsError};
use noodles2::transport::{LinkHandle, Transport, TransportEvent, TransportLimits};

/// A self-signed certificate for `localhost` and 127.0.0.1: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    self_signed_for(&["localhost", "127.0.0.1"])
}

fn self_signed_for(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let key = rcgen::generate_simple_self_signed(names).expect("rcgen");
    (key.cert.pem(), key.signing_key.serialize_pem())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Wait (up to 10 s) for the next transport event that `f` keeps.
fn next<T>(transport: &Transport, mut f: impl FnMut(TransportEvent) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(e) = transport.try_recv() {
            if let Some(t) = f(e) {
                return t;
            }
        }
        assert!(Instant::now() < deadline, "no such transport event in 10 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn listen(transport: &Transport, addr: &str, tls: Option<ServerTls>) -> SocketAddr {
    let make = Arc::new(LinkConfig::default);
    let _ = transport.listen(addr.into(), TransportLimits::default(), make, None, tls);
    next(transport, |e| match e {
        TransportEvent::Listening { addr, .. } => Some(addr),
        TransportEvent::ListenFailed { error, .. } => panic!("listen failed: {error}"),
        _ => None,
    })
}

/// Connect; the link lives as long as the returned handle.
fn connect(transport: &Transport, url: String, tls: Option<ClientTls>) -> LinkHandle {
    let config = LinkConfig::default();
    let limits = TransportLimits::default();
    transport.connect(url, config, ClientIntent::Join, limits, (None, tls))
}

/// The events of `link` up to its establishment or close.
fn outcome(transport: &Transport, link: &LinkHandle) -> Result<Role, CloseReason> {
    let link = link.id;
    next(transport, |e| match e {
        TransportEvent::Link { link: l, event } if l == link => match event {
            LinkEvent::Established(est) => Some(Ok(est.role)),
            LinkEvent::Closed(reason) => Some(Err(reason)),
            _ => None,
        },
        _ => None,
    })
}

#[test]
fn wss_links_open_end_to_end_with_a_trusted_certificate() {
    let rt = runtime();
    let transport = Transport::new(rt.handle().clone());
    let (cert, key) = self_signed();
    let server = ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).expect("server TLS");
    let addr = listen(&transport, "wss://127.0.0.1:0", Some(server));
    let client = ClientTls::with_roots_pem(cert.as_bytes()).expect("client TLS");
    let handle = connect(
        &transport,
        format!("wss://localhost:{}", addr.port()),
        Some(client),
    );
    let link = handle.id;
    // Both ends reach the main sequence: the preamble went both ways through TLS.
    let mut accepted = None;
    let mut client_role = None;
    let mut server_role = None;
    let mut connected_peer = None;
    next(&transport, |e| {
        match e {
            TransportEvent::Accepted { handle, .. } => accepted = Some(handle),
            TransportEvent::Connected { link: l, peer } if l == link => connected_peer = Some(peer),
            TransportEvent::Link {
                link: l,
                event: LinkEvent::Established(est),
            } => {
                if l == link {
                    client_role = Some(est.role);
                } else if Some(l) == accepted.as_ref().map(|h| h.id) {
                    server_role = Some(est.role);
                }
            }
            TransportEvent::Link {
                event: LinkEvent::Closed(reason),
                ..
            } => panic!("a link closed: {reason}"),
            _ => {}
        }
        (client_role.is_some() && server_role.is_some()).then_some(())
    });
    assert_eq!(client_role, Some(Role::Downstream));
    assert_eq!(server_role, Some(Role::Upstream));
    assert_eq!(
        connected_peer,
        Some(Some(addr)),
        "the peer address is read through TLS"
    );
}

#[test]
fn a_certificate_the_client_does_not_trust_is_refused() {
    let rt = runtime();
    let transport = Transport::new(rt.handle().clone());
    let (cert, key) = self_signed();
    let (other, _) = self_signed();
    let server = ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).expect("server TLS");
    let addr = listen(&transport, "wss://127.0.0.1:0", Some(server));

    // Trusting another certificate.
    let client = ClientTls::with_roots_pem(other.as_bytes()).expect("client TLS");
    let link = connect(
        &transport,
        format!("wss://localhost:{}", addr.port()),
        Some(client),
    );
    match outcome(&transport, &link) {
        Err(CloseReason::Transport(TransportError::Connect { reason, .. })) => {
            assert!(reason.to_lowercase().contains("certificate"), "{reason}");
        }
        other => panic!("expected a refused certificate, got {other:?}"),
    }
    // Trusting only the Mozilla roots.
    let link = connect(&transport, format!("wss://localhost:{}", addr.port()), None);
    assert!(matches!(
        outcome(&transport, &link),
        Err(CloseReason::Transport(TransportError::Connect { .. }))
    ));
    // A trusted certificate for another name.
    let (elsewhere, elsewhere_key) = self_signed_for(&["example.test"]);
    let server = ServerTls::from_pem(elsewhere.as_bytes(), elsewhere_key.as_bytes()).expect("TLS");
    let addr2 = listen(&transport, "wss://127.0.0.1:0", Some(server));
    let client = ClientTls::with_roots_pem(elsewhere.as_bytes()).expect("client TLS");
    let link = connect(
        &transport,
        format!("wss://localhost:{}", addr2.port()),
        Some(client),
    );
    match outcome(&transport, &link) {
        Err(CloseReason::Transport(TransportError::Connect { reason, .. })) => {
            assert!(reason.to_lowercase().contains("certificate"), "{reason}");
        }
        other => panic!("expected a refused name, got {other:?}"),
    }
    // A plain client gets no websocket from a TLS listener.
    let link = connect(&transport, format!("ws://127.0.0.1:{}", addr.port()), None);
    assert!(outcome(&transport, &link).is_err());
}

#[test]
fn wss_without_a_certificate_is_a_listen_error_and_bad_pem_is_named() {
    let rt = runtime();
    let transport = Transport::new(rt.handle().clone());
    let make = Arc::new(LinkConfig::default);
    let _ = transport.listen(
        "wss://127.0.0.1:0".into(),
        TransportLimits::default(),
        make,
        None,
        None,
    );
    let error = next(&transport, |e| match e {
        TransportEvent::ListenFailed { error, .. } => Some(error),
        TransportEvent::Listening { .. } => panic!("listened on wss:// without a certificate"),
        _ => None,
    });
    assert!(matches!(error, ListenError::TlsRequired { .. }), "{error}");

    let (cert, key) = self_signed();
    match ServerTls::from_pem(b"not a certificate", key.as_bytes()) {
        Err(TlsError::Pem { what, .. }) => assert_eq!(what, "certificate chain"),
        other => panic!("expected a PEM error, got {other:?}"),
    }
    match ServerTls::from_pem(cert.as_bytes(), b"") {
        Err(TlsError::Pem { what, .. }) => assert_eq!(what, "private key"),
        other => panic!("expected a PEM error, got {other:?}"),
    }
    // A key that is not the certificate's.
    let (_, other_key) = self_signed();
    assert!(matches!(
        ServerTls::from_pem(cert.as_bytes(), other_key.as_bytes()),
        Err(TlsError::Rustls { .. })
    ));
    let missing = std::path::Path::new("/nonexistent/cert.pem");
    match ServerTls::from_pem_files(missing, missing) {
        Err(e @ TlsError::File { .. }) => assert!(e.to_string().contains("/nonexistent/cert.pem")),
        other => panic!("expected a file error, got {other:?}"),
    }
}

#[test]
fn the_oob_channel_speaks_tls_when_its_server_does() {
    let rt = runtime();
    let (cert, key) = self_signed();
    let server = ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).expect("server TLS");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let store = Arc::new(OobStore::default());
    store.insert(7, Bytes::from_static(b"seven bytes"));
    store.link_opened("127.0.0.1".parse().expect("ip"));
    let _server = noodles2::oob::spawn_server(
        rt.handle(),
        listener,
        store,
        Duration::from_secs(5),
        (None, Some(server)),
    );
    let (tx, rx) = crossbeam_channel::unbounded::<FetchDone>();
    let fetch = |tls: Option<ClientTls>| {
        let target = OobTarget {
            host: "localhost".into(),
            port,
            tls,
        };
        let client = OobClient::spawn(
            rt.handle(),
            target,
            1 << 20,
            Duration::from_secs(5),
            None,
            tx.clone(),
        );
        if !client.request(1, 7) {
            // The connection already failed (the failure is set before requests are refused).
            return Err(client.failure().unwrap_or("no reason").to_string());
        }
        let done = rx.recv_timeout(Duration::from_secs(10)).expect("an answer");
        assert_eq!(done.ticket, 1);
        done.result
    };
    let trusted = ClientTls::with_roots_pem(cert.as_bytes()).expect("client TLS");
    assert_eq!(fetch(Some(trusted)).as_deref(), Ok(&b"seven bytes"[..]));
    // Without TLS, or trusting another certificate, nothing is fetched.
    assert!(fetch(None).is_err());
    let (other, _) = self_signed();
    let untrusted = ClientTls::with_roots_pem(other.as_bytes()).expect("client TLS");
    let refused = fetch(Some(untrusted)).expect_err("an untrusted certificate");
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
}

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client driving its own sans-IO [`noodles2::link::Link`] over a raw websocket: it finishes
/// the preamble and then does only what the test says (reading nothing, say).
async fn introduce(ws: &mut RawWs) {
    use futures_util::{SinkExt, StreamExt};
    use noodles2::link::Link;
    use tokio_tungstenite::tungstenite::Message;
    let mut link = Link::client(Instant::now(), LinkConfig::default(), ClientIntent::Join);
    loop {
        while let Some(f) = link.poll_transmit() {
            ws.send(Message::Binary(f)).await.expect("send preamble");
        }
        while let Some(e) = link.poll_event() {
            match e {
                LinkEvent::Established(_) => return,
                LinkEvent::Closed(r) => panic!("preamble failed: {r}"),
                _ => {}
            }
        }
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => link.handle_frame(Instant::now(), b),
            other => panic!("preamble: {other:?}"),
        }
    }
}

/// A transaction carrying asset `n` with `len` bytes (frames the test can tell apart).
fn numbered_transaction(n: u64, len: usize) -> Bytes {
    use noodles2::codec::*;
    MainSequenceMessage::Transaction(Transaction {
        content: ContentArray(vec![ContentMessage::ContentModifyAsset(
            ContentModifyAsset {
                an_asset: AnAsset::new(AssetTypeID::new(ExtensionID::new(0), 0), AssetID::new(n)),
                content: Content(Bytes::from(vec![n as u8; len])),
            },
        )]),
    })
    .encode_bytes()
    .expect("encode")
}

/// The server side of the next link accepted, once it is established.
fn accepted(transport: &Transport) -> LinkHandle {
    next(transport, |e| match e {
        TransportEvent::Accepted { handle, .. } => Some(handle),
        _ => None,
    })
}

#[test]
fn a_handle_sends_in_order_only_in_the_main_sequence_and_only_what_its_role_may() {
    use futures_util::StreamExt;
    use noodles2::codec::{MainSequenceMessage, Wire};
    use noodles2::link::SendError;
    use noodles2::transport::QueueError;
    use tokio_tungstenite::tungstenite::Message;
    let rt = runtime();
    let transport = Transport::new(rt.handle().clone());
    let addr = listen(&transport, "ws://127.0.0.1:0", None);
    let mut ws = rt
        .block_on(tokio_tungstenite::connect_async(format!("ws://{addr}")))
        .expect("raw connect")
        .0;
    let server = accepted(&transport);
    // The client has not introduced itself: the server's link is still in the preamble.
    assert_eq!(
        server.send(numbered_transaction(0, 1)),
        Err(QueueError::NotOpen)
    );
    rt.block_on(introduce(&mut ws));
    assert_eq!(outcome(&transport, &server), Ok(Role::Upstream));
    // An Upstream may not send an RPC invocation (tag 4), and a frame must be a message.
    assert!(matches!(
        server.send(Bytes::from_static(&[4, 0, 0])),
        Err(QueueError::Refused(SendError::Role {
            role: Role::Upstream,
            ..
        }))
    ));
    assert_eq!(
        server.send(Bytes::from_static(&[200])),
        Err(QueueError::Refused(SendError::NotAMessage(Some(200))))
    );
    // Frames arrive in the order sent, and the close frame after all of them.
    for n in 0..200 {
        server
            .send(numbered_transaction(n, 1 + (n as usize * 97) % 5000))
            .expect("queued");
    }
    server.close("done here");
    let (numbers, close) = rt.block_on(async {
        let mut numbers = Vec::new();
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => {
                    let Ok(MainSequenceMessage::Transaction(tx)) = MainSequenceMessage::decode(b)
                    else {
                        panic!("not a transaction");
                    };
                    let noodles2::codec::ContentMessage::ContentModifyAsset(m) = &tx.content.0[0]
                    else {
                        panic!("not the asset sent");
                    };
                    numbers.push(m.an_asset.asset_id.id.get());
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = ws.close(None).await;
                    return (numbers, frame.map(|f| f.reason.to_string()));
                }
                other => panic!("unexpected: {other:?}"),
            }
        }
    });
    assert_eq!(numbers, (0..200).collect::<Vec<_>>());
    assert_eq!(close.as_deref(), Some("done here"));
    assert!(matches!(
        outcome(&transport, &server),
        Err(CloseReason::Local(r)) if r == "done here"
    ));
    assert_eq!(
        server.send(numbered_transaction(1, 1)),
        Err(QueueError::Closed)
    );
}

#[test]
fn a_peer_that_neither_reads_nor_sends_is_closed_once_the_stall_timeout_passes() {
    // Nothing wakes the server's link task but the bytes it queues: no pings, no idle timeout,
    // and the peer is silent.
    let limits = TransportLimits {
        max_queued_bytes: 4 << 20,
        stall_timeout: Duration::from_millis(500),
        ping_interval: None,
        idle_timeout: None,
        ..TransportLimits::default()
    };
    let rt = runtime();
    let transport = Transport::new(rt.handle().clone());
    let _ = transport.listen(
        "ws://127.0.0.1:0".into(),
        limits,
        Arc::new(LinkConfig::default),
        None,
        None,
    );
    let addr = next(&transport, |e| match e {
        TransportEvent::Listening { addr, .. } => Some(addr),
        _ => None,
    });
    let mut ws = rt
        .block_on(tokio_tungstenite::connect_async(format!("ws://{addr}")))
        .expect("raw connect")
        .0;
    let server = accepted(&transport);
    rt.block_on(introduce(&mut ws));
    assert_eq!(outcome(&transport, &server), Ok(Role::Upstream));
    // One frame three times the bound (below the hard bound): more than loopback's socket
    // buffers take while nobody reads, so it stays queued. Its send is the only event there is:
    // unless crossing the bound wakes the link task, its stall clock never starts.
    server
        .send(numbered_transaction(0, 3 * limits.max_queued_bytes))
        .expect("below the hard bound");
    let reason = outcome(&transport, &server).expect_err("closed");
    assert!(
        matches!(
            reason,
            CloseReason::Transport(TransportError::Stalled { .. })
        ),
        "{reason:?}"
    );
    drop(ws);
}
