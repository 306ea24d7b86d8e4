//! `wss://` end to end through the plugin, with certificates generated at test time (rcgen): the
//! world and an out-of-band buffer arrive over TLS, and untrusted certificates or plain clients
//! are refused without touching the Upstream's other links.

use std::time::Duration;

use bevy::asset::RenderAssetUsages;
use bevy::mesh::{Mesh, PrimitiveTopology};
use bevy::prelude::*;
use bevy_noodles2::assets::OobServer;
use bevy_noodles2::mirror::{Mirrored, Shared};
use bevy_noodles2::prelude::*;

use crate::common::*;

/// A self-signed certificate for `localhost` and 127.0.0.1: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let key = rcgen::generate_simple_self_signed(names).expect("rcgen");
    (key.cert.pem(), key.signing_key.serialize_pem())
}

fn tls_listener(cert: &str, key: &str) -> NoodlesListener {
    let tls = ServerTls::from_pem(cert.as_bytes(), key.as_bytes()).expect("server TLS");
    NoodlesListener::new("wss://127.0.0.1:0").with_tls(tls)
}

/// The `wss://localhost:PORT` url of a listener bound on 127.0.0.1 (the name the certificate
/// is checked against).
fn localhost(url: &str) -> String {
    url.replace("127.0.0.1", "localhost")
}

/// A mesh of positions only, whose wire buffer is a little over `bytes`.
fn big_mesh(bytes: usize) -> Mesh {
    let n = (bytes / 12 + 3) / 3 * 3;
    let positions: Vec<[f32; 3]> = (0..n).map(|i| [i as f32, 1.0, 0.5]).collect();
    Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions)
}

#[test]
fn a_wss_link_mirrors_the_world_and_its_oob_buffers_over_tls() {
    let (cert, key) = self_signed();
    let mut up = asset_app("up");
    let mut down = asset_app("down");
    let url = listen_with(&mut up, tls_listener(&cert, &key));
    assert!(url.starts_with("wss://"), "{url}");
    let server = up.world().resource::<OobServer>();
    assert!(
        server.tls,
        "the OOB channel of a wss:// listener speaks TLS"
    );

    // Above the 64 KiB OOB threshold: the buffer goes out of band.
    let mesh = big_mesh(2 << 20);
    let vertices = mesh.count_vertices();
    let handle = up.world_mut().resource_mut::<Assets<Mesh>>().add(mesh);
    up.world_mut()
        .spawn((Shared, Name::new("over TLS"), Mesh3d(handle)));

    let roots = ClientTls::with_roots_pem(cert.as_bytes()).expect("client TLS");
    connect(
        &mut down,
        NoodlesConnect::new(localhost(&url)).with_tls(roots),
    );
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(60),
        "the mesh to arrive over wss:// and its OOB channel",
        |a| {
            let mut q = a[1]
                .world_mut()
                .query_filtered::<(&Name, &Mesh3d), With<Mirrored>>();
            let Some((name, mesh)) = q.iter(a[1].world()).next() else {
                return false;
            };
            assert_eq!(name.as_str(), "over TLS");
            let mesh = mesh.0.clone();
            a[1].world()
                .resource::<Assets<Mesh>>()
                .get(&mesh)
                .is_some_and(|m| m.count_vertices() == vertices)
        },
    );
    let server = up.world().resource::<OobServer>();
    assert_eq!(server.served(), 1, "the buffer was served out of band");
    let stats = down.world().resource::<AssetStats>();
    assert_eq!(stats.refused, 0, "{:?}", stats.recent_refusals);
}

#[test]
fn untrusted_certificates_and_plain_clients_are_refused_and_other_links_go_on() {
    let (cert, key) = self_signed();
    let (other, _) = self_signed();
    let mut up = app("up");
    let mut good = app("good");
    let mut bad = app("bad");
    let url = listen_with(&mut up, tls_listener(&cert, &key));
    let roots = ClientTls::with_roots_pem(cert.as_bytes()).expect("client TLS");
    connect(
        &mut good,
        NoodlesConnect::new(localhost(&url)).with_tls(roots),
    );
    run_until(
        &mut [&mut up, &mut good],
        Duration::from_secs(20),
        "the trusted link to open",
        |a| open_links(a[0]) == 1 && open_links(a[1]) == 1,
    );

    // Trusting another certificate, trusting only the Mozilla roots, and no TLS at all.
    let wrong = ClientTls::with_roots_pem(other.as_bytes()).expect("client TLS");
    connect(
        &mut bad,
        NoodlesConnect::new(localhost(&url)).with_tls(wrong),
    );
    connect(&mut bad, NoodlesConnect::new(localhost(&url)));
    connect(
        &mut bad,
        NoodlesConnect::new(url.replace("wss://", "ws://")),
    );
    log_closed(&mut bad);
    run_until(
        &mut [&mut up, &mut good, &mut bad],
        Duration::from_secs(20),
        "three refused connections",
        |a| closed_reasons(a[2]).len() == 3,
    );
    let reasons = closed_reasons(&bad);
    let certificate_errors = reasons
        .iter()
        .filter(|r| matches!(r, CloseReason::Transport(TransportError::Connect { reason, .. }) if reason.to_lowercase().contains("certificate")))
        .count();
    assert_eq!(certificate_errors, 2, "{reasons:?}");
    assert_eq!(open_links(&mut bad), 0);
    // The trusted link is still open, and the Upstream holds no other.
    pump(&mut [&mut up, &mut good], 5);
    assert_eq!(open_links(&mut up), 1);
    assert_eq!(open_links(&mut good), 1);
}

#[test]
fn a_wss_listener_without_a_certificate_does_not_listen() {
    let mut up = app("up");
    let e = up
        .world_mut()
        .spawn(NoodlesListener::new("wss://127.0.0.1:0"))
        .id();
    run_until(
        &mut [&mut up],
        Duration::from_secs(10),
        "the listener to fail",
        |a| {
            a[0].world()
                .get::<NoodlesListener>(e)
                .unwrap()
                .error
                .is_some()
        },
    );
    let l = up.world().get::<NoodlesListener>(e).unwrap();
    assert!(
        matches!(l.error, Some(ListenError::TlsRequired { .. })),
        "{:?}",
        l.error
    );
    assert_eq!(l.url(), None);
}
