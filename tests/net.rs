//! Links end to end: Bevy apps over real loopback websockets.

use std::time::Duration;

use bevy::prelude::*;
use bevy_noodles2::codec::*;
use bevy_noodles2::link::{ProtocolError, TransportError};
use bevy_noodles2::prelude::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn introduction(name: &str) -> Bytes {
    PreMessage::Introduction(Introduction {
        header: IntroductionHeader {
            protocol_version: 1,
            flags: IntroductionFlags::default(),
            name: name.into(),
            capabilities: vec![ExtensionID::new(0)].into(),
        },
    })
    .encode_bytes()
    .unwrap()
}

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw websocket client on `url` that introduced itself as `name` and does nothing else on
/// its own; `server` and `good` (a client of it) are updated until both server links are open.
fn introduced_raw_client(
    rt: &tokio::runtime::Runtime,
    url: &str,
    name: &str,
    server: &mut App,
    good: &mut App,
) -> RawWs {
    let (mut ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(url))
        .expect("raw connect");
    rt.block_on(ws.send(Message::Binary(introduction(name))))
        .expect("introduction sent");
    run_until(&mut [server, good], LIMIT, "both links open", |apps| {
        open_links(apps[0]) == 2 && open_links(apps[1]) == 1
    });
    ws
}

#[test]
fn client_and_server_reach_main_sequence() {
    let mut server = app("server");
    let mut client = app("client");
    let url = listen(&mut server);
    let link = connect(&mut client, NoodlesConnect::new(url));
    run_until(
        &mut [&mut server, &mut client],
        LIMIT,
        "both links open",
        |apps| {
            let [s, c] = apps else { unreachable!() };
            open_links(s) == 1 && open_links(c) == 1
        },
    );
    let l = client.world().get::<NoodlesLink>(link).unwrap();
    assert_eq!(l.role, Some(Role::Downstream));
    assert_eq!(l.peer_name, "server");
    assert_eq!(l.extensions, vec![0]);
    assert!(
        l.stats.bytes_in > 0 && l.stats.messages_in >= 1,
        "{:?}",
        l.stats
    );
    let s = links(&mut server);
    assert_eq!(s[0].2, Some(Role::Upstream));
}

#[test]
fn authority_swap_over_sockets() {
    let mut viewer = app_with(NoodlesPlugin {
        session_name: "viewer".into(),
        authority: AuthorityPolicy::Accept,
        ..default()
    });
    let mut game = app("game");
    let url = listen(&mut viewer);
    let link = connect(&mut game, NoodlesConnect::new(url).as_upstream());
    run_until(&mut [&mut viewer, &mut game], LIMIT, "swap done", |apps| {
        let [v, g] = apps else { unreachable!() };
        open_links(v) == 1 && open_links(g) == 1
    });
    assert_eq!(
        game.world().get::<NoodlesLink>(link).unwrap().role,
        Some(Role::Upstream)
    );
    assert_eq!(links(&mut viewer)[0].2, Some(Role::Downstream));
}

#[test]
fn authority_swap_refused_by_default() {
    let mut host = app("host");
    let mut game = app("game");
    log_closed(&mut game);
    let url = listen(&mut host);
    connect(&mut game, NoodlesConnect::new(url).as_upstream());
    run_until(
        &mut [&mut host, &mut game],
        LIMIT,
        "client sees the close",
        |apps| !closed_reasons(apps[1]).is_empty(),
    );
    let r = closed_reasons(&game);
    assert!(
        matches!(&r[0], CloseReason::Remote(why) if why.contains("Upstream")),
        "{r:?}"
    );
}

#[test]
fn probe_over_sockets() {
    let mut server = app_with(NoodlesPlugin {
        session_name: "the session".into(),
        icon: Bytes::from_static(b"icon!"),
        ..default()
    });
    let mut prober = app("prober");
    prober.init_resource::<Answers>();
    prober.add_systems(
        Update,
        |mut r: MessageReader<ProbeAnswered>, mut a: ResMut<Answers>| {
            for p in r.read() {
                a.0.push((p.name.clone(), p.icon.len()));
            }
        },
    );
    let url = listen(&mut server);
    connect(&mut prober, NoodlesConnect::new(url).probe());
    run_until(
        &mut [&mut server, &mut prober],
        LIMIT,
        "probe answered",
        |apps| !apps[1].world().resource::<Answers>().0.is_empty(),
    );
    assert_eq!(
        prober.world().resource::<Answers>().0,
        vec![("the session".to_string(), 5)]
    );
}

#[derive(Resource, Default)]
struct Answers(Vec<(String, usize)>);

#[test]
fn connect_to_nothing_reports_a_transport_error() {
    let mut client = app("client");
    log_closed(&mut client);
    // A port nobody listens on: bind, read the port, drop the socket.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    connect(
        &mut client,
        NoodlesConnect::new(format!("ws://127.0.0.1:{port}")),
    );
    run_until(&mut [&mut client], LIMIT, "connect failure", |apps| {
        !closed_reasons(apps[0]).is_empty()
    });
    let r = closed_reasons(&client);
    assert!(
        matches!(
            &r[0],
            CloseReason::Transport(TransportError::Connect { .. })
        ),
        "{r:?}"
    );
}

#[test]
fn thirty_two_clients_on_one_server() {
    let mut server = app("server");
    let mut clients = app("clients");
    let url = listen(&mut server);
    for _ in 0..32 {
        connect(&mut clients, NoodlesConnect::new(url.clone()));
    }
    run_until(
        &mut [&mut server, &mut clients],
        Duration::from_secs(60),
        "32 links open on both sides",
        |apps| {
            let [s, c] = apps else { unreachable!() };
            open_links(s) == 32 && open_links(c) == 32
        },
    );
    // Every link carries traffic: the server sends one transaction to all.
    let frame = MainSequenceMessage::Transaction(Transaction {
        content: ContentArray(vec![]),
    })
    .encode_bytes()
    .unwrap();
    let mut q = server.world_mut().query::<&NoodlesLink>();
    for l in q.iter(server.world()) {
        l.send(frame.clone()).unwrap();
    }
    run_until(
        &mut [&mut server, &mut clients],
        LIMIT,
        "every client received it",
        |apps| {
            let mut q = apps[1].world_mut().query::<&NoodlesLink>();
            q.iter(apps[1].world()).all(|l| l.stats.messages_in >= 2)
        },
    );
}

#[test]
fn garbage_closes_only_that_link() {
    let mut server = app("server");
    let mut good = app("good");
    log_closed(&mut server);
    let url = listen(&mut server);
    connect(&mut good, NoodlesConnect::new(url.clone()));
    run_until(
        &mut [&mut server, &mut good],
        LIMIT,
        "good link open",
        |apps| open_links(apps[0]) == 1 && open_links(apps[1]) == 1,
    );

    let rt = rt();
    let (mut ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(url.as_str()))
        .expect("raw connect");
    rt.block_on(ws.send(Message::Binary(Bytes::from_static(&[0xff, 0x01, 0x02]))))
        .unwrap();
    run_until(
        &mut [&mut server, &mut good],
        LIMIT,
        "garbage link closed",
        |apps| !closed_reasons(apps[0]).is_empty(),
    );
    let r = closed_reasons(&server);
    assert!(
        matches!(&r[0], CloseReason::Protocol(ProtocolError::Decode(e)) if e.to_string().contains("unknown discriminant 255")),
        "{r:?}"
    );
    // The peer got a close frame that names the problem.
    let close = rt.block_on(async {
        while let Some(m) = ws.next().await {
            if let Ok(Message::Close(f)) = m {
                return f.map(|f| f.reason.to_string());
            }
        }
        None
    });
    assert!(
        close.is_some_and(|c| c.contains("undecodable")),
        "close frame reason"
    );
    // The good link still works.
    pump(&mut [&mut server, &mut good], 5);
    assert_eq!(open_links(&mut good), 1);
    assert_eq!(open_links(&mut server), 1);
}

#[test]
fn text_frames_are_a_protocol_error() {
    let mut server = app("server");
    log_closed(&mut server);
    let url = listen(&mut server);
    let rt = rt();
    let (mut ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(url.as_str()))
        .expect("raw connect");
    rt.block_on(ws.send(Message::Text("hello".into()))).unwrap();
    run_until(&mut [&mut server], LIMIT, "closed", |apps| {
        !closed_reasons(apps[0]).is_empty()
    });
    assert_eq!(
        closed_reasons(&server)[0],
        CloseReason::Protocol(ProtocolError::TextFrame)
    );
}

#[test]
fn silent_client_is_closed_by_the_preamble_timeout() {
    let mut server = app_with(NoodlesPlugin {
        session_name: "server".into(),
        preamble_timeout: Duration::from_millis(300),
        ..default()
    });
    log_closed(&mut server);
    let url = listen(&mut server);
    let rt = rt();
    let (_ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(url.as_str()))
        .expect("raw connect");
    run_until(&mut [&mut server], LIMIT, "timeout", |apps| {
        !closed_reasons(apps[0]).is_empty()
    });
    assert_eq!(
        closed_reasons(&server)[0],
        CloseReason::PreambleTimeout(Duration::from_millis(300))
    );
}

#[test]
fn a_client_that_stops_reading_is_dropped_at_the_queue_bound() {
    let mut server = app_with(NoodlesPlugin {
        session_name: "server".into(),
        max_queued_bytes: 2 << 20,
        stall_timeout: Duration::from_secs(1),
        ..default()
    });
    let mut good = app("good");
    log_closed(&mut server);
    let url = listen(&mut server);
    connect(&mut good, NoodlesConnect::new(url.clone()));

    // A raw client that introduces itself and then never reads.
    let rt = rt();
    let ws = introduced_raw_client(&rt, &url, "stuck", &mut server, &mut good);

    // 1 MiB transactions, one per frame, to every link.
    let blob = vec![7u8; 1 << 20];
    let frame = MainSequenceMessage::Transaction(Transaction {
        content: ContentArray(vec![ContentMessage::ContentModifyAsset(
            ContentModifyAsset {
                an_asset: AnAsset::new(AssetTypeID::new(ExtensionID::new(0), 0), AssetID::new(1)),
                content: Content(Bytes::from(blob)),
            },
        )]),
    })
    .encode_bytes()
    .unwrap();
    let mut sent = 0;
    run_until(
        &mut [&mut server, &mut good],
        Duration::from_secs(60),
        "stuck link closed",
        |apps| {
            let mut q = apps[0].world_mut().query::<&NoodlesLink>();
            for l in q.iter(apps[0].world()) {
                if l.is_open() && l.peer_name == "stuck" {
                    let _ = l.send(frame.clone());
                    sent += 1;
                }
            }
            !closed_reasons(apps[0]).is_empty()
        },
    );
    let r = closed_reasons(&server);
    assert!(
        matches!(
            &r[0],
            CloseReason::Transport(TransportError::Stalled { .. })
        ),
        "{r:?}"
    );
    assert!(sent > 4);
    // The other client is unaffected: it still receives.
    let small = MainSequenceMessage::Transaction(Transaction {
        content: ContentArray(vec![]),
    })
    .encode_bytes()
    .unwrap();
    let before = good_messages(&mut good);
    let mut q = server.world_mut().query::<&NoodlesLink>();
    for l in q.iter(server.world()).filter(|l| l.is_open()) {
        l.send(small.clone()).unwrap();
    }
    run_until(
        &mut [&mut server, &mut good],
        LIMIT,
        "good client still receives",
        |apps| good_messages(apps[1]) > before,
    );
    assert_eq!(open_links(&mut good), 1);
    drop(ws);
}

fn good_messages(app: &mut App) -> u64 {
    let mut q = app.world_mut().query::<&NoodlesLink>();
    q.iter(app.world()).map(|l| l.stats.messages_in).sum()
}

/// The feature plugins stand alone: an Upstream with links and mirroring but no RPC plugin
/// mirrors its world, and an RPC call (a kind nobody on that node handles) closes the caller's
/// link with a reason that names the kind, instead of going unanswered.
#[test]
fn a_message_kind_no_plugin_handles_closes_the_link_with_a_reason() {
    let mut up = App::new();
    up.add_plugins(MinimalPlugins).add_plugins((
        NetPlugin {
            config: NoodlesPlugin::default().config(),
        },
        MirrorPlugin::default(),
    ));
    up.finish();
    up.cleanup();
    let mut down = app("down");
    log_closed(&mut down);
    let url = listen(&mut up);
    up.world_mut()
        .spawn((Name::new("mirrored without RPC"), Shared));
    let link = connect(&mut down, NoodlesConnect::new(url));
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the mirrored name",
        |a| {
            let mut q = a[1].world_mut().query_filtered::<&Name, With<Mirrored>>();
            q.iter(a[1].world())
                .any(|n| n.as_str() == "mirrored without RPC")
        },
    );
    let invoke = MainSequenceMessage::RPCInvoke(RPCInvoke {
        this_invoke_id: 1,
        endpoint: EntityID::new(1),
        args: RPCArgumentList(vec![]),
    });
    down.world()
        .get::<NoodlesLink>(link)
        .expect("link")
        .send_message(&invoke)
        .expect("a Downstream may send RPCInvoke");
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the link to close",
        |a| !closed_reasons(a[1]).is_empty(),
    );
    let reasons = closed_reasons(&down);
    assert!(reasons[0].to_string().contains("RPCInvoke"), "{reasons:?}");
}

/// RFC 6455 §5.5.1: the endpoint that receives a close frame sends one back, whichever side
/// opened the connection. Here a raw peer closes first with 1001, before the preamble.
#[test]
fn a_peer_close_frame_is_answered_in_both_roles() {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let going_away = || {
        Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "going away".into(),
        }))
    };
    let rt = rt();

    // We accept: a raw client closes, our server answers.
    let mut server = app("server");
    let url = listen(&mut server);
    let (mut ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(url.as_str()))
        .expect("raw connect");
    rt.block_on(ws.send(going_away())).unwrap();
    let mut answered = false;
    for _ in 0..200 {
        server.update();
        match rt
            .block_on(async { tokio::time::timeout(Duration::from_millis(50), ws.next()).await })
        {
            Ok(Some(Ok(Message::Close(_)))) => {
                answered = true;
                break;
            }
            Ok(None) | Ok(Some(Err(_))) => break,
            _ => {}
        }
    }
    assert!(answered, "our server answers a client's close frame");

    // We connect: a raw server closes, our client answers.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = std::sync::mpsc::channel::<bool>();
    rt.spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp)
            .await
            .expect("handshake");
        ws.send(going_away()).await.expect("send close");
        let reply = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(m) = ws.next().await {
                match m {
                    Ok(Message::Close(_)) => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
            false
        })
        .await;
        let _ = tx.send(reply.unwrap_or(false));
    });
    let mut client = app("client");
    log_closed(&mut client);
    connect(&mut client, NoodlesConnect::new(format!("ws://{addr}")));
    let deadline = std::time::Instant::now() + LIMIT;
    let answered = loop {
        client.update();
        if let Ok(a) = rx.try_recv() {
            break a;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the raw server never finished"
        );
        std::thread::yield_now();
    };
    pump(&mut [&mut client], 3);
    assert!(
        answered,
        "our client answers a server's close frame (its link closed: {:?})",
        closed_reasons(&client)
    );
}

fn liveness(name: &str, ping_ms: u64, idle_ms: u64) -> App {
    app_with(NoodlesPlugin {
        session_name: name.into(),
        ping_interval: Some(Duration::from_millis(ping_ms)),
        idle_timeout: Some(Duration::from_millis(idle_ms)),
        ..default()
    })
}

#[test]
fn a_peer_that_vanishes_without_closing_is_closed_after_the_idle_timeout() {
    let mut server = liveness("server", 100, 600);
    let mut good = app("good");
    log_closed(&mut server);
    let url = listen(&mut server);
    connect(&mut good, NoodlesConnect::new(url.clone()));

    // A raw client that introduces itself and then neither reads nor writes: to the server it
    // looks like a half-open connection (its pings are never answered).
    let rt = rt();
    let ws = introduced_raw_client(&rt, &url, "vanished", &mut server, &mut good);
    let opened = std::time::Instant::now();
    run_until(
        &mut [&mut server, &mut good],
        LIMIT,
        "the vanished peer closed",
        |apps| !closed_reasons(apps[0]).is_empty(),
    );
    let waited = opened.elapsed();
    assert_eq!(
        closed_reasons(&server),
        vec![CloseReason::Transport(TransportError::Idle {
            timeout: Duration::from_millis(600)
        })]
    );
    assert!(waited < Duration::from_secs(5), "detected after {waited:?}");
    // The live client answers pings (its transport reads all the time) and stays.
    assert_eq!((open_links(&mut server), open_links(&mut good)), (1, 1));
    drop(ws);
}

#[test]
fn an_idle_live_peer_stays_open_and_the_link_knows_its_round_trip_time() {
    let mut server = liveness("server", 100, 400);
    let mut client = liveness("client", 100, 400);
    linked(&mut server, &mut client);
    // Nothing to send for three idle timeouts: only pings and pongs keep the link alive.
    let start = std::time::Instant::now();
    run_until(
        &mut [&mut server, &mut client],
        LIMIT,
        "three idle timeouts with the link open",
        |a| start.elapsed() >= Duration::from_millis(1200) || open_links(a[0]) == 0,
    );
    assert_eq!((open_links(&mut server), open_links(&mut client)), (1, 1));
    for app in [&mut server, &mut client] {
        let mut q = app.world_mut().query::<&NoodlesLink>();
        let rtt = q.single(app.world()).expect("one link").stats.rtt;
        let rtt = rtt.expect("no round-trip time after a dozen pings");
        assert!(rtt < Duration::from_secs(1), "{rtt:?}");
    }
}

#[test]
fn frames_are_bounded_by_their_senders_role() {
    use bevy_noodles2::link::ProtocolError;
    let mut up = app_with(NoodlesPlugin {
        session_name: "small frames from downstreams".into(),
        max_frame_from_downstream: 32 << 10,
        ..default()
    });
    let mut down = app("down");
    log_closed(&mut up);
    let link = linked_with(&mut up, &mut down, granting_listener());
    // 50 KB from the Upstream is fine (its limit is max_frame_size).
    let big = "x".repeat(50_000);
    up.world_mut().spawn((Name::new(big.clone()), Shared));
    run_until(&mut [&mut up, &mut down], LIMIT, "the big name", |a| {
        let mut q = a[1].world_mut().query::<&Name>();
        q.iter(a[1].world()).any(|n| n.len() == 50_000)
    });
    // 50 KB from the Downstream is not.
    let mut p = Proposal::new();
    let e = p.spawn();
    p.insert(e, Name::new(big));
    bevy_noodles2::proposals::send_proposal(down.world_mut(), link, p).unwrap();
    run_until(&mut [&mut up, &mut down], LIMIT, "the link closed", |a| {
        !closed_reasons(a[0]).is_empty()
    });
    match &closed_reasons(&up)[0] {
        CloseReason::Protocol(ProtocolError::FrameTooLarge { size, limit, from }) => {
            assert!(*size > 50_000);
            assert_eq!((*limit, *from), (32 << 10, Some(Role::Downstream)));
        }
        other => panic!("closed for another reason: {other}"),
    }
}

#[test]
fn an_amplifying_frame_closes_only_its_link_before_it_is_allocated() {
    use bevy_noodles2::link::ProtocolError;
    let mut up = app("amplified");
    let mut good = app("good");
    log_closed(&mut up);
    let url = listen(&mut up);
    connect(&mut good, NoodlesConnect::new(url.clone()));
    let rt = rt();
    let mut ws = introduced_raw_client(&rt, &url, "attacker", &mut up, &mut good);
    // 8 MiB of `Any::Void` in one call: 1 byte each on the wire, 40 in memory (320 MiB).
    let invoke = MainSequenceMessage::RPCInvoke(RPCInvoke {
        this_invoke_id: 1,
        endpoint: EntityID::new(1),
        args: RPCArgumentList(vec![Any::AnyArray(AnyArray(vec![Any::Void; 8 << 20]))]),
    })
    .encode_bytes()
    .unwrap();
    rt.block_on(ws.send(Message::Binary(invoke))).unwrap();
    run_until(
        &mut [&mut up, &mut good],
        LIMIT,
        "the attacker closed",
        |a| !closed_reasons(a[0]).is_empty(),
    );
    match &closed_reasons(&up)[0] {
        CloseReason::Protocol(ProtocolError::Decode(e)) => {
            assert!(
                matches!(e.kind, DecodeErrorKind::MemoryBudget { .. }),
                "{e}"
            );
        }
        other => panic!("closed for another reason: {other}"),
    }
    assert_eq!((open_links(&mut up), open_links(&mut good)), (1, 1));
    drop(ws);
}
