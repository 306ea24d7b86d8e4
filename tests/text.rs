//! Text: `Text3d` ↔ `TextComponent` over a loopback link, and bad text (not UTF-8, a height
//! that is not a finite number above zero) closing the link with a reason, the world intact.

use std::time::Duration;

use bevy::prelude::*;
use bevy_noodles2::codec::{self as w, Wire};
use bevy_noodles2::prelude::*;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn text_is_mirrored_both_ways() {
    let mut up = app("text up");
    let mut down = app("text down");
    linked(&mut up, &mut down);
    let label = Text3d {
        text: "Grüße, Welt\nline two".into(),
        color: Color::srgb_u8(250, 128, 3),
        height: 0.25,
    };
    let e = up
        .world_mut()
        .spawn((label.clone(), Transform::default(), Shared))
        .id();
    run_until(&mut [&mut up, &mut down], LIMIT, "the text", |a| {
        let [u, d] = a else { unreachable!() };
        mirror_of(u, d, e).is_some_and(|m| d.world().get::<Text3d>(m).is_some())
    });
    let m = mirror_of(&up, &mut down, e).unwrap();
    assert_eq!(down.world().get::<Text3d>(m), Some(&label));

    up.world_mut().get_mut::<Text3d>(e).unwrap().text = "changed".into();
    run_until(&mut [&mut up, &mut down], LIMIT, "the change", |a| {
        a[1].world()
            .get::<Text3d>(m)
            .is_some_and(|t| t.text == "changed")
    });
    up.world_mut().entity_mut(e).remove::<Text3d>();
    run_until(&mut [&mut up, &mut down], LIMIT, "the removal", |a| {
        a[1].world().get::<Text3d>(m).is_none()
    });
}

fn bad_text_closes_the_link(value: Vec<u8>, expect: &[&str]) {
    let mut up = app("bad text up");
    let mut down = app_with(NoodlesPlugin {
        session_name: "bad text down".into(),
        mirror: MirrorConfig {
            on_link_closed: LinkClosedPolicy::Keep,
            ..default()
        },
        ..default()
    });
    log_closed(&mut down);
    linked(&mut up, &mut down);
    let kept = up
        .world_mut()
        .spawn((Text3d::new("before"), Transform::default(), Shared))
        .id();
    run_until(&mut [&mut up, &mut down], LIMIT, "the first text", |a| {
        let [u, d] = a else { unreachable!() };
        mirror_of(u, d, kept).is_some_and(|m| d.world().get::<Text3d>(m).is_some())
    });
    send_transaction(&mut up, vec![components(0, 19, &[(77, value)])]);
    run_until(&mut [&mut up, &mut down], LIMIT, "the link to close", |a| {
        open_links(a[1]) == 0
    });
    let reasons: Vec<String> = closed_reasons(&down)
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| expect.iter().all(|x| r.contains(x))),
        "{reasons:?}"
    );
    assert!(mirror_of_id(&mut down, 77).is_none());
    let m = mirror_of(&up, &mut down, kept).unwrap();
    assert_eq!(
        down.world().get::<Text3d>(m).map(|t| t.text.as_str()),
        Some("before")
    );
}

#[test]
fn text_that_is_not_utf8_closes_the_link_naming_it() {
    let mut bad = w::TextComponent::default().encode().unwrap();
    let n = bad.len();
    bad[n - 2] = 1; // one byte of text...
    bad.push(0xFF); // ...that is not UTF-8
    bad_text_closes_the_link(bad, &["Text3d", "text", "invalid UTF-8"]);
}

#[test]
fn a_height_that_is_not_a_positive_number_closes_the_link() {
    let bad = w::TextComponent {
        color: w::SRGB8::new(1, 2, 3),
        height: f32::NAN,
        text: "nan".into(),
    }
    .encode()
    .unwrap();
    bad_text_closes_the_link(bad, &["Text3d", "height", "NaN"]);
}
