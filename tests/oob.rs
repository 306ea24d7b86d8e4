//! Large assets: buffers above the threshold travel on the Upstream's OOB websocket while the
//! main link keeps flowing; OOB failures and `BufferFromURL` (against a tiny local HTTP server)
//! refuse only the asset concerned, with a reason naming it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use bevy::asset::RenderAssetUsages;
use bevy::mesh::{Mesh, MeshBuilder, Meshable, PrimitiveTopology};
use bevy::prelude::*;
use bevy_noodles2::assets::{AssetStats, OobProgress, OobServer, asset_type, mesh_to_wire};
use bevy_noodles2::codec as w;
use bevy_noodles2::codec::Wire;
use bevy_noodles2::mirror::{Mirrored, Outgoing, Shared};
use bevy_noodles2::prelude::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

/// An asset app named `name` serving buffers above `threshold` bytes out of band.
fn oob_app(name: &str, threshold: usize) -> App {
    asset_app_with(NoodlesPlugin {
        session_name: name.into(),
        oob: Some(bevy_noodles2::assets::OobConfig { threshold }),
        ..default()
    })
}

/// A headless app with Bevy's asset collections (so assets are mirrored) and the plugin.
/// A mesh of positions only, whose wire buffer is a little over `bytes`.
fn big_mesh(bytes: usize) -> Mesh {
    let n = (bytes / 12 + 3) / 3 * 3;
    let positions: Vec<[f32; 3]> = (0..n).map(|i| [i as f32, (i % 7) as f32, 0.5]).collect();
    Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions)
}

/// The recent refusals, one per line, as they are logged.
fn refusals(stats: &AssetStats) -> String {
    stats
        .recent_refusals
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn mirrored_x(app: &mut App, id: SharedId) -> Option<f32> {
    let mut q = app.world_mut().query::<(&Mirrored, &Transform)>();
    q.iter(app.world())
        .find(|(m, _)| m.id == id.get())
        .map(|(_, t)| t.translation.x)
}

fn mirrored_mesh_vertices(app: &mut App) -> Option<usize> {
    let mut q = app.world_mut().query_filtered::<&Mesh3d, With<Mirrored>>();
    let handle = q.iter(app.world()).next()?.0.clone();
    app.world()
        .resource::<Assets<Mesh>>()
        .get(&handle)
        .map(|m| m.count_vertices())
}

fn progress(app: &App) -> OobProgress {
    app.world().resource::<OobProgress>().clone()
}

#[test]
fn oob_buffer_of_50_mb_arrives_while_transforms_flow() {
    let mut up = asset_app("up");
    let mut down = asset_app("down");
    let url = listen(&mut up);

    let mesh = big_mesh(50 << 20);
    let vertices = mesh.count_vertices();
    let handle = up.world_mut().resource_mut::<Assets<Mesh>>().add(mesh);
    let mover = up
        .world_mut()
        .spawn((Shared, Transform::default(), Name::new("mover")))
        .id();
    up.world_mut()
        .spawn((Shared, Transform::default(), Mesh3d(handle)));
    up.update();
    let mover_id = *up.world().get::<SharedId>(mover).unwrap();
    assert_eq!(
        progress(&down),
        OobProgress::default(),
        "progress starts at 0"
    );

    let link = connect(&mut down, NoodlesConnect::new(url));
    let mut x = 0.0f32;
    let mut seen_pending = false;
    let mut max_pending = 0;
    let mut updates_while_pending = 0;
    let mut last_seen = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        x += 1.0;
        up.world_mut()
            .get_mut::<Transform>(mover)
            .unwrap()
            .translation
            .x = x;
        up.update();
        down.update();
        let p = progress(&down);
        max_pending = max_pending.max(p.assets_pending);
        let seen = mirrored_x(&mut down, mover_id);
        if p.assets_pending > 0 {
            seen_pending = true;
            if seen.is_some() && seen != last_seen {
                updates_while_pending += 1;
            }
        }
        last_seen = seen;
        if mirrored_mesh_vertices(&mut down) == Some(vertices) {
            break;
        }
        let stats = down.world().resource::<AssetStats>();
        assert!(stats.refused == 0, "refused: {:?}", stats.recent_refusals);
        assert!(
            Instant::now() < deadline,
            "the big mesh never arrived: {p:?}"
        );
    }
    // The transform kept flowing: it reaches the latest value after the mesh did.
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(10),
        "mover in step",
        |a| {
            let want = a[0].world().get::<Transform>(mover).unwrap().translation.x;
            mirrored_x(a[1], mover_id) == Some(want)
        },
    );

    let p = progress(&down);
    assert!(seen_pending, "the buffer was never pending: {p:?}");
    assert_eq!(max_pending, 1);
    assert_eq!(p.assets_pending, 0);
    assert_eq!(p.assets_done, 1);
    assert_eq!(p.failed, 0);
    assert!(p.bytes_done >= 50 << 20, "{p:?}");
    assert_eq!(p.bytes_pending, 0);
    assert!(
        updates_while_pending >= 1,
        "no transform update was applied while the buffer was in flight"
    );
    // The 50 MB did not go over the main link.
    let main_in = down
        .world()
        .get::<NoodlesLink>(link)
        .unwrap()
        .stats
        .bytes_in;
    assert!(main_in < 1 << 20, "main link carried {main_in} bytes");
    let server = up.world().resource::<OobServer>();
    assert_eq!(server.served(), 1);
    assert_eq!(server.connections(), 1);

    // Closing the main link closes the OOB connections on both sides.
    down.world().get::<NoodlesLink>(link).unwrap().close("done");
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(10),
        "OOB connections closed",
        |a| {
            a[0].world().resource::<OobServer>().connections() == 0
                && bevy_noodles2::assets::remote::oob_client_connections(a[1].world()) == 0
        },
    );

    // Unsharing the mesh stops serving its bytes.
    let mut q = up.world_mut().query_filtered::<Entity, With<Mesh3d>>();
    let e = q.single(up.world()).unwrap();
    up.world_mut().entity_mut(e).despawn();
    run_until(
        &mut [&mut up],
        Duration::from_secs(5),
        "OOB store emptied",
        |a| a[0].world().resource::<OobServer>().served() == 0,
    );
}

/// A raw OOB client: connect, send the frames, return the replies (binary frames) until the
/// server closes or `replies` arrived.
fn raw_oob(port: u16, frames: Vec<Vec<u8>>, replies: usize) -> Result<Vec<Bytes>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}"))
            .await
            .map_err(|e| e.to_string())?;
        for f in frames {
            ws.send(Message::Binary(f.into()))
                .await
                .map_err(|e| e.to_string())?;
        }
        let mut out = Vec::new();
        while out.len() < replies {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => out.push(b),
                Ok(Some(Ok(Message::Close(f)))) => {
                    return Err(format!("closed: {f:?}"));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(None) => return Err("closed without a close frame".into()),
                Err(_) => return Err("no reply in 10 s".into()),
            }
        }
        Ok(out)
    })
}

fn request(id: u64) -> Vec<u8> {
    w::OOBRequest::OOBRequestContent(w::OOBRequestContent {
        asset_id: w::OOBAssetID::new(id),
    })
    .encode()
    .unwrap()
}

#[test]
fn oob_unknown_id_gets_a_failure_reply_and_unlinked_peers_are_refused() {
    let mut up = app("up");
    let mut down = app("down");
    let url = listen(&mut up);
    let port = up.world().resource::<NoodlesConfig>().oob_ports[0];

    // No main link from this address yet: the OOB connection is refused.
    let err = raw_oob(port, vec![request(1)], 1).unwrap_err();
    assert!(err.contains("no main link"), "{err}");

    connect(&mut down, NoodlesConnect::new(url));
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(10),
        "link open",
        |a| open_links(a[0]) == 1 && open_links(a[1]) == 1,
    );
    let link = down
        .world_mut()
        .query::<&NoodlesLink>()
        .single(down.world())
        .unwrap()
        .peer_oob_ports
        .clone();
    assert_eq!(link, vec![port], "the Downstream learnt the OOB port");

    up.world()
        .resource::<OobServer>()
        .insert(5, Bytes::from_static(b"five"));
    let replies = raw_oob(port, vec![request(424242), request(5)], 2).unwrap();
    match w::OOBReply::decode(replies[0].clone()).unwrap() {
        w::OOBReply::OOBReplyFailure(f) => {
            assert_eq!(f.asset_id.id.get(), 424242);
            assert!(f.reason.0.contains("424242"), "{}", f.reason.0);
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    match w::OOBReply::decode(replies[1].clone()).unwrap() {
        w::OOBReply::OOBReplySuccess(s) => {
            assert_eq!(s.header.asset_id.id.get(), 5);
            assert_eq!(&s.content.0[..], b"five");
        }
        other => panic!("expected content, got {other:?}"),
    }
    // Not an OOBRequest: the server closes that OOB connection (the main link stays open).
    let err = raw_oob(port, vec![vec![9, 9, 9]], 1).unwrap_err();
    assert!(err.contains("closed"), "{err}");
    pump(&mut [&mut up, &mut down], 3);
    assert_eq!(open_links(&mut up), 1);
}

#[test]
fn oob_failure_refuses_only_that_buffer() {
    let mut up = app("up");
    let mut down = asset_app("down");
    let url = listen(&mut up);
    // A buffer whose OOB id the server does not know, a mesh using it, and a good inline mesh.
    let (cube, cube_mesh) = mesh_to_wire(&Cuboid::default().mesh().build(), 11).unwrap();
    {
        let mut out = up.world_mut().resource_mut::<Outgoing>();
        out.modify_asset(
            (0, asset_type::BUFFER, 10),
            buffer(w::BufferSource::OOBAssetID(w::OOBAssetID::new(999))),
        );
        let mut broken = cube_mesh.clone();
        broken.view.asset_id = w::BufferAssetID::new(w::AssetID::new(10));
        out.modify_asset((0, asset_type::MESH, 12), broken.encode_bytes().unwrap());
        out.modify_asset(
            (0, asset_type::BUFFER, 11),
            buffer(w::BufferSource::InlineContent(w::InlineContent(
                Bytes::from(cube),
            ))),
        );
        out.modify_asset((0, asset_type::MESH, 13), cube_mesh.encode_bytes().unwrap());
    }
    let mover = up.world_mut().spawn((Shared, Transform::default())).id();
    connect(&mut down, NoodlesConnect::new(url));
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "OOB failure",
        |a| a[1].world().resource::<AssetStats>().refused >= 2,
    );
    let stats = down.world().resource::<AssetStats>().clone();
    let all = refusals(&stats);
    assert!(
        all.contains("buffer asset 10") && all.contains("999"),
        "{all}"
    );
    assert!(
        all.contains("mesh asset 12") && all.contains("buffer 10"),
        "{all}"
    );
    assert_eq!(stats.refused, 2, "{all}");
    let p = progress(&down);
    assert_eq!((p.failed, p.assets_pending), (1, 0), "{p:?}");
    // The rest of the world keeps working.
    up.world_mut()
        .get_mut::<Transform>(mover)
        .unwrap()
        .translation
        .x = 3.0;
    let id = *up.world().get::<SharedId>(mover).unwrap();
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(10),
        "mover",
        |a| mirrored_x(a[1], id) == Some(3.0),
    );
    assert!(down.world().resource::<AssetStats>().imported >= 2);
    assert_eq!(open_links(&mut down), 1);
}

fn buffer(source: w::BufferSource) -> Bytes {
    w::BufferAsset {
        flags: w::BufferAssetFlags::default(),
        source,
    }
    .encode_bytes()
    .unwrap()
}

fn url_buffer(url: &str, byte_size: u64) -> Bytes {
    buffer(w::BufferSource::BufferFromURL(w::BufferFromURL {
        byte_size,
        url: w::BufferURL(url.to_string()),
    }))
}

/// A tiny HTTP/1.1 server on loopback, serving `routes` (path → (body, send Content-Length)),
/// 404 otherwise. It stops by itself after `life`.
fn http_server(routes: Vec<(&'static str, Vec<u8>, bool)>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    // Blocking accepts: the thread serves until the test binary exits.
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req);
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            match routes.iter().find(|(p, _, _)| *p == path) {
                Some((_, body, with_len)) => {
                    let head = if *with_len {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_string()
                    };
                    let _ = s.write_all(head.as_bytes());
                    let _ = s.write_all(body);
                }
                None => {
                    let _ = s.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    port
}

#[test]
fn buffers_from_urls_are_fetched_and_checked() {
    let (cube, cube_mesh) = mesh_to_wire(&Cuboid::default().mesh().build(), 101).unwrap();
    let n = cube.len() as u64;
    let port = http_server(vec![
        ("/cube", cube.clone(), true),
        ("/cube-nolength", cube.clone(), false),
    ]);
    // A port with nothing listening.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");

    let mut up = app("up");
    let mut down = asset_app_with(NoodlesPlugin {
        session_name: "down".into(),
        fetch: bevy_noodles2::assets::FetchConfig {
            max_bytes: 1 << 20,
            url_timeout: Duration::from_secs(10),
            fetch_urls: true,
            ..default()
        },
        ..default()
    });
    let url = listen(&mut up);
    {
        let mut out = up.world_mut().resource_mut::<Outgoing>();
        let mut add = |buffer_id: u64, mesh_id: u64, body: Bytes| {
            out.modify_asset((0, asset_type::BUFFER, buffer_id), body);
            let mut m = cube_mesh.clone();
            m.view.asset_id = w::BufferAssetID::new(w::AssetID::new(buffer_id));
            out.modify_asset((0, asset_type::MESH, mesh_id), m.encode_bytes().unwrap());
        };
        // Good: exact size.
        add(101, 102, url_buffer(&format!("{base}/cube"), n));
        // Declared size differs from Content-Length.
        add(201, 202, url_buffer(&format!("{base}/cube"), n + 5));
        // Declared size above the Downstream's limit: refused without a fetch.
        add(301, 302, url_buffer(&format!("{base}/cube"), 10 << 30));
        // Unreachable.
        add(
            401,
            402,
            url_buffer(&format!("http://127.0.0.1:{dead}/x"), n),
        );
        // No Content-Length, and the body is longer than declared.
        add(
            501,
            502,
            url_buffer(&format!("{base}/cube-nolength"), n - 1),
        );
        // Not found.
        add(601, 602, url_buffer(&format!("{base}/missing"), n));
        // Not http.
        add(701, 702, url_buffer("file:///etc/hostname", n));
        // Garbage URL.
        add(801, 802, url_buffer("http://", n));
    }
    let mover = up.world_mut().spawn((Shared, Transform::default())).id();
    connect(&mut down, NoodlesConnect::new(url));
    // 7 bad buffers, each with its mesh.
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(30),
        "URL fetches",
        |a| {
            let s = a[1].world().resource::<AssetStats>();
            s.refused >= 14 && a[1].world().resource::<OobProgress>().is_idle()
        },
    );
    let stats = down.world().resource::<AssetStats>().clone();
    let all = refusals(&stats);
    assert_eq!(stats.refused, 14, "{all}");
    for id in [201, 301, 401, 501, 601, 701, 801] {
        let line = |start: String, then: &str| {
            all.lines()
                .any(|l| l.starts_with(&start) && l.contains(then))
        };
        assert!(
            line(format!("refused buffer asset {id} from link "), ""),
            "no refusal names buffer {id}:\n{all}"
        );
        assert!(
            line(
                format!("refused mesh asset {} from link ", id + 1),
                &format!(": its buffer {id} was refused")
            ),
            "no refusal names mesh {}:\n{all}",
            id + 1
        );
    }
    assert!(all.contains("Content-Length"), "{all}");
    assert!(all.contains("above the limit"), "{all}");
    assert!(
        !all.contains("asset 101") && !all.contains("asset 102"),
        "{all}"
    );
    // The good one is a Bevy mesh.
    let link = links(&mut down)[0].0;
    let handle = down
        .world()
        .resource::<bevy_noodles2::mirror::AssetIdMap>()
        .imported(link, (0, asset_type::MESH), 102)
        .cloned()
        .expect("mesh 102 imported");
    let mesh = down
        .world()
        .resource::<Assets<Mesh>>()
        .get(handle.id().typed::<Mesh>())
        .expect("mesh 102 built");
    assert_eq!(
        mesh.count_vertices(),
        Cuboid::default().mesh().build().count_vertices()
    );
    let p = progress(&down);
    assert_eq!(p.assets_done, 1, "{p:?}");
    assert_eq!(p.bytes_done, n, "{p:?}");
    assert_eq!(p.bytes_pending, 0, "{p:?}");

    // The rest of the world keeps working.
    up.world_mut()
        .get_mut::<Transform>(mover)
        .unwrap()
        .translation
        .x = 7.0;
    let id = *up.world().get::<SharedId>(mover).unwrap();
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(10),
        "mover",
        |a| mirrored_x(a[1], id) == Some(7.0),
    );
}

#[test]
fn unreachable_oob_channel_refuses_only_that_buffer() {
    let mut up = oob_app("up", 64);
    let mut down = asset_app("down");
    let url = listen(&mut up);
    // The port stays advertised, but nothing answers on it any more.
    up.world().resource::<OobServer>().stop();
    let cube = up
        .world_mut()
        .resource_mut::<Assets<Mesh>>()
        .add(Cuboid::default().mesh().build());
    up.world_mut()
        .spawn((Shared, Transform::default(), Mesh3d(cube)));
    let mover = up.world_mut().spawn((Shared, Transform::default())).id();
    connect(&mut down, NoodlesConnect::new(url));
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "refusal",
        |a| a[1].world().resource::<AssetStats>().refused >= 2,
    );
    let stats = down.world().resource::<AssetStats>().clone();
    let all = refusals(&stats);
    assert!(all.contains("refused buffer asset"), "{all}");
    assert!(all.contains("cannot open the OOB channel"), "{all}");
    assert!(all.contains("refused mesh asset"), "{all}");
    assert_eq!(progress(&down).failed, 1);
    up.world_mut()
        .get_mut::<Transform>(mover)
        .unwrap()
        .translation
        .x = 5.0;
    let id = *up.world().get::<SharedId>(mover).unwrap();
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(10),
        "mover",
        |a| mirrored_x(a[1], id) == Some(5.0),
    );
    assert_eq!(open_links(&mut down), 1);
}

/// A game that connects out as Upstream (to a viewer that listens and accepts authority) pushes
/// its world, and its large buffers still go out of band: the game serves them on an OOB
/// channel it advertises in its `IntroductionReply`.
#[test]
fn a_game_connecting_as_upstream_pushes_its_world_and_serves_oob() {
    let mut viewer = asset_app_with(NoodlesPlugin {
        session_name: "viewer".into(),
        authority: AuthorityPolicy::Accept,
        ..default()
    });
    let mut game = oob_app("game", 1024);
    let url = listen(&mut viewer);
    let mesh = big_mesh(64 * 1024);
    let n = mesh.count_vertices();
    let handle = game.world_mut().resource_mut::<Assets<Mesh>>().add(mesh);
    game.world_mut()
        .spawn((Shared, Transform::default(), Mesh3d(handle)));
    let mover = game.world_mut().spawn((Shared, Transform::default())).id();
    connect(&mut game, NoodlesConnect::new(url).as_upstream());
    run_until(
        &mut [&mut viewer, &mut game],
        Duration::from_secs(20),
        "the pushed mesh",
        |a| mirrored_mesh_vertices(a[0]) == Some(n),
    );
    let p = progress(&viewer);
    assert_eq!((p.assets_done, p.failed), (1, 0), "{p:?}");
    assert!(p.bytes_done >= 64 * 1024, "went out of band: {p:?}");
    assert!(game.world().get_resource::<OobServer>().is_some());

    game.world_mut()
        .get_mut::<Transform>(mover)
        .unwrap()
        .translation
        .x = 3.0;
    let id = *game.world().get::<SharedId>(mover).unwrap();
    run_until(
        &mut [&mut viewer, &mut game],
        Duration::from_secs(10),
        "the pushed transform",
        |a| mirrored_x(a[0], id) == Some(3.0),
    );
}

/// How many bodies the Downstream received per asset `(extension, identifier, id)`.
#[derive(Resource, Default)]
struct BodiesReceived(std::collections::HashMap<(u16, u16, u64), u32>);

/// Counts the asset bodies of this frame's transactions, leaving them queued for the import.
fn count_bodies(
    mut incoming: ResMut<bevy_noodles2::mirror::IncomingAssets>,
    mut seen: ResMut<BodiesReceived>,
) {
    let queued = incoming.take();
    for (link, m) in queued {
        match m {
            bevy_noodles2::mirror::IncomingAsset::Modify(m) => {
                *seen.0.entry(m.an_asset.key()).or_default() += 1;
                incoming.push(link, m);
            }
            bevy_noodles2::mirror::IncomingAsset::Delete(a) => incoming.delete(link, a),
        }
    }
}

/// The mesh a test touches.
#[derive(Resource)]
struct Touched(Handle<Mesh>);

/// In the frame a link opens, change the mesh: it is exported again (a new buffer) in the very
/// frame the join begins, so it is both in the world the join sends and in that frame's delta.
fn touch_when_a_link_opens(
    mut opened: MessageReader<bevy_noodles2::net::LinkOpened>,
    touched: Res<Touched>,
    mut meshes: ResMut<Assets<Mesh>>,
) {
    if opened.read().count() > 0 {
        meshes.get_mut(&touched.0).unwrap().translate_by(Vec3::X);
    }
}

/// An asset exported in the frame a Downstream's join begins goes out once, not once in the
/// join and again in that frame's delta (which fetched its out-of-band buffer twice); so does an
/// asset changed while a join is under way and not yet sent by it.
#[test]
fn an_asset_exported_while_a_downstream_joins_reaches_it_once() {
    let mut up = oob_app("up", 1024);
    // The world goes out an asset per frame, so the second mesh is still to be sent when the
    // first slice arrived.
    up.world_mut()
        .resource_mut::<MirrorConfig>()
        .join_asset_bytes_per_frame = 1;
    let url = listen(&mut up);
    let meshes: Vec<Handle<Mesh>> = (0..2)
        .map(|i| {
            let mut mesh = big_mesh(8 * 1024);
            mesh.translate_by(Vec3::Y * i as f32);
            up.world_mut().resource_mut::<Assets<Mesh>>().add(mesh)
        })
        .collect();
    for m in &meshes {
        up.world_mut()
            .spawn((Shared, Transform::default(), Mesh3d(m.clone())));
    }
    up.insert_resource(Touched(meshes[0].clone()));
    up.add_systems(
        PostUpdate,
        touch_when_a_link_opens.before(NoodlesSystems::ExportAssets),
    );
    pump(&mut [&mut up], 3);
    let mut down = asset_app("down");
    down.init_resource::<BodiesReceived>().add_systems(
        PreUpdate,
        count_bodies
            .after(NoodlesSystems::ApplyTransactions)
            .before(NoodlesSystems::ImportAssets),
    );
    connect(&mut down, NoodlesConnect::new(url));
    // In lockstep: after each Upstream frame the Downstream runs until it applied every
    // transaction sent. Once the join's first slice arrived, the other mesh changes too.
    let mut changed_during_join = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the join did not end");
        if !changed_during_join && !down.world().resource::<BodiesReceived>().0.is_empty() {
            let id = up
                .world()
                .resource::<bevy_noodles2::mirror::AssetIdMap>()
                .exported_id(meshes[1].id().untyped());
            let key = (0, asset_type::MESH, id.unwrap());
            assert!(
                !down
                    .world()
                    .resource::<BodiesReceived>()
                    .0
                    .contains_key(&key),
                "the second mesh went out before the first slice was in"
            );
            up.world_mut()
                .resource_mut::<Assets<Mesh>>()
                .get_mut(&meshes[1])
                .unwrap()
                .translate_by(Vec3::Z);
            changed_during_join = true;
        }
        up.update();
        let sent = up.world().resource::<MirrorStats>().transactions_sent;
        run_until(
            &mut [&mut down],
            Duration::from_secs(10),
            "the Upstream's frame applied",
            |a| a[0].world().resource::<MirrorStats>().transactions_applied >= sent,
        );
        let mut q = down.world_mut().query_filtered::<&Mesh3d, With<Mirrored>>();
        let with_mesh = q.iter(down.world()).count();
        if changed_during_join && with_mesh == 2 && progress(&down).is_idle() {
            break;
        }
    }
    let received = &down.world().resource::<BodiesReceived>().0;
    assert!(
        received.values().all(|&n| n == 1),
        "bodies received per asset: {received:?}"
    );
    assert_eq!(progress(&down).failed, 0);
    // Both meshes arrived as they are now.
    let first_positions = |a: &mut App, handles: Vec<Handle<Mesh>>| -> Vec<[f32; 3]> {
        let assets = a.world().resource::<Assets<Mesh>>();
        let mut v: Vec<[f32; 3]> = handles
            .iter()
            .map(
                |h| match assets.get(h).unwrap().attribute(Mesh::ATTRIBUTE_POSITION) {
                    Some(bevy::mesh::VertexAttributeValues::Float32x3(p)) => p[0],
                    other => panic!("positions: {other:?}"),
                },
            )
            .collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    let mut q = down.world_mut().query_filtered::<&Mesh3d, With<Mirrored>>();
    let mirrored: Vec<Handle<Mesh>> = q.iter(down.world()).map(|m| m.0.clone()).collect();
    assert_eq!(
        first_positions(&mut down, mirrored),
        first_positions(&mut up, meshes)
    );
}

/// A material's image that changes is sent again (same image id, new buffer), also when it
/// changes in the very frame it is first exported; the Downstream ends with the new pixels and
/// nothing left waiting.
#[test]
fn a_changed_texture_is_sent_again() {
    let mut up = asset_app("up");
    let mut down = asset_app("down");
    let url = listen(&mut up);
    let image = |v: u8| {
        Image::new(
            bevy::render::render_resource::Extent3d {
                width: 2,
                height: 2,
                depth_or_array_layers: 1,
            },
            bevy::render::render_resource::TextureDimension::D2,
            vec![v; 16],
            bevy::render::render_resource::TextureFormat::Rgba8UnormSrgb,
            RenderAssetUsages::default(),
        )
    };
    let texture = up
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(image(10));
    let material = up
        .world_mut()
        .resource_mut::<Assets<StandardMaterial>>()
        .add(StandardMaterial {
            base_color_texture: Some(texture.clone()),
            ..default()
        });
    let cube = up
        .world_mut()
        .resource_mut::<Assets<Mesh>>()
        .add(Cuboid::default().mesh().build());
    up.world_mut().spawn((
        Shared,
        Transform::default(),
        Mesh3d(cube),
        MeshMaterial3d(material),
    ));
    connect(&mut down, NoodlesConnect::new(url));
    // Changed while the first export is under way.
    up.update();
    up.world_mut()
        .resource_mut::<Assets<Image>>()
        .get_mut(&texture)
        .unwrap()
        .data = Some(vec![20; 16]);
    let first_pixel = |a: &mut App| -> Option<u8> {
        let mut q = a
            .world_mut()
            .query_filtered::<&MeshMaterial3d<StandardMaterial>, With<Mirrored>>();
        let m = q.iter(a.world()).next()?.0.clone();
        let t = a
            .world()
            .resource::<Assets<StandardMaterial>>()
            .get(&m)?
            .base_color_texture
            .clone()?;
        a.world()
            .resource::<Assets<Image>>()
            .get(&t)?
            .data
            .as_ref()?
            .first()
            .copied()
    };
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the changed texture",
        |a| first_pixel(a[1]) == Some(20) && a[1].world().resource::<AssetStats>().pending == 0,
    );
    // Changed again once everything arrived.
    up.world_mut()
        .resource_mut::<Assets<Image>>()
        .get_mut(&texture)
        .unwrap()
        .data = Some(vec![30; 16]);
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the texture changed again",
        |a| first_pixel(a[1]) == Some(30) && a[1].world().resource::<AssetStats>().pending == 0,
    );
    assert_eq!(down.world().resource::<AssetStats>().refused, 0);
}

/// RFC 6455 §5.5.1 on the OOB channel: a client that closes gets a close frame back.
#[test]
fn an_oob_client_close_frame_is_answered() {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let mut up = app("up");
    let mut down = app("down");
    linked(&mut up, &mut down);
    let port = up.world().resource::<NoodlesConfig>().oob_ports[0];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answered = rt.block_on(async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}"))
            .await
            .expect("OOB connect");
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "going away".into(),
        })))
        .await
        .expect("send close");
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
                _ => return false,
            }
        }
    });
    assert!(answered, "the OOB server answers a close frame");
}

#[test]
fn url_fetches_run_within_their_budget_and_all_arrive() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (cube, cube_mesh) = mesh_to_wire(&Cuboid::default().mesh().build(), 1).unwrap();
    let n = cube.len() as u64;
    // A server that answers slowly and counts the connections it serves at once.
    let (active, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    {
        let (active, most) = (active.clone(), most.clone());
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let (active, most, body) = (active.clone(), most.clone(), cube.clone());
                std::thread::spawn(move || {
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => req.extend_from_slice(&buf[..k]),
                        }
                    }
                    std::thread::sleep(Duration::from_millis(150));
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes());
                    let _ = s.write_all(&body);
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
    }
    let mut up = app("up");
    let mut down = asset_app_with(NoodlesPlugin {
        session_name: "down".into(),
        fetch: bevy_noodles2::assets::FetchConfig {
            max_url_fetches: 2,
            ..default()
        },
        ..default()
    });
    let url = listen(&mut up);
    {
        let mut out = up.world_mut().resource_mut::<Outgoing>();
        for i in 0..8u64 {
            let (buffer_id, mesh_id) = (100 + 2 * i, 101 + 2 * i);
            out.modify_asset(
                (0, asset_type::BUFFER, buffer_id),
                url_buffer(&format!("http://127.0.0.1:{port}/cube{i}"), n),
            );
            let mut m = cube_mesh.clone();
            m.view.asset_id = w::BufferAssetID::new(w::AssetID::new(buffer_id));
            out.modify_asset((0, asset_type::MESH, mesh_id), m.encode_bytes().unwrap());
        }
    }
    up.world_mut().spawn((Shared, Transform::default()));
    connect(&mut down, NoodlesConnect::new(url));
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(30),
        "eight meshes from URLs",
        |a| a[1].world().resource::<Assets<Mesh>>().len() == 8,
    );
    assert_eq!(down.world().resource::<AssetStats>().refused, 0);
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "fetches ran beyond the budget, or one at a time"
    );
}

#[test]
fn oob_reply_above_the_fetch_limit_is_refused_and_the_link_stays() {
    // A 3 MiB buffer goes out of band as a fragmented message (256 KiB frames); the Downstream
    // accepts at most 2 MiB per buffer.
    let mut up = asset_app("up");
    let mut down = asset_app_with(NoodlesPlugin {
        session_name: "down".into(),
        fetch: bevy_noodles2::assets::FetchConfig {
            max_bytes: 2 << 20,
            ..default()
        },
        ..default()
    });
    log_closed(&mut down);
    let url = listen(&mut up);
    let handle = up
        .world_mut()
        .resource_mut::<Assets<Mesh>>()
        .add(big_mesh(3 << 20));
    up.world_mut()
        .spawn((Shared, Transform::default(), Mesh3d(handle)));
    let named = up
        .world_mut()
        .spawn((
            Shared,
            Transform::from_xyz(4.0, 0.0, 0.0),
            Name::new("named"),
        ))
        .id();
    up.update();
    let named_id = *up.world().get::<SharedId>(named).unwrap();
    let link = connect(&mut down, NoodlesConnect::new(url));

    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(30),
        "the oversized OOB reply to be refused",
        |a| progress(a[1]).failed == 1,
    );
    let p = progress(&down);
    let why = p.last_failure.clone().unwrap_or_default();
    assert!(
        why.contains("exceeds this node's limit of 2097152 bytes"),
        "the reason names the limit: {why}"
    );
    assert_eq!(p.assets_done, 0);
    // The rest of the world is intact and the main link stays open.
    pump(&mut [&mut up, &mut down], 5);
    assert_eq!(mirrored_x(&mut down, named_id), Some(4.0));
    assert_eq!(
        mirrored_mesh_vertices(&mut down),
        None,
        "no mesh from the refused buffer"
    );
    assert!(down.world().get::<NoodlesLink>(link).unwrap().is_open());
    assert!(
        closed_reasons(&down).is_empty(),
        "{:?}",
        closed_reasons(&down)
    );
}
