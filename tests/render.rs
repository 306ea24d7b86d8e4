//! End-to-end render test: the demo scene hosted in this process, the `viewer` example run as a
//! subprocess under Xvfb (Mesa's software Vulkan is enough), and pixel checks on its screenshot.
//!
//! Without `xvfb-run` or a graphics adapter the test prints that it skips and passes, unless the
//! environment variable `CI` is set or `NOODLES2_REQUIRE_RENDER=1`: then it fails instead.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bevy_noodles2::demo::{DemoHost, DemoScenePlugin};

const W: u32 = 1280;
const H: u32 = 720;

fn render_required() -> bool {
    std::env::var_os("CI").is_some()
        || std::env::var("NOODLES2_REQUIRE_RENDER").is_ok_and(|v| v == "1")
}

/// Skips (returns) or, when rendering is required, fails.
fn skip(why: &str) {
    if render_required() {
        panic!("the render test cannot run: {why} (CI or NOODLES2_REQUIRE_RENDER=1 is set)");
    }
    eprintln!("skipping the render test: {why}");
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// `target/<profile>/examples/viewer`, next to this test executable (`target/<profile>/deps/`),
/// built with cargo if it is missing.
fn viewer_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target directory")?;
    let viewer = profile_dir.join("examples").join("viewer");
    if viewer.is_file() {
        return Ok(viewer);
    }
    let target_dir = profile_dir
        .parent()
        .ok_or("cannot locate the target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--example", "viewer", "--target-dir"])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("cannot run cargo to build the viewer: {e}"))?;
    if !status.success() || !viewer.is_file() {
        return Err(format!("`cargo build --example viewer` failed ({status})"));
    }
    Ok(viewer)
}

/// A named region (x0, y0, x1, y1 in fractions of the image) and a test of its mean color.
type Check = (&'static str, [f32; 4], fn([f32; 3]) -> bool);

/// Mean color (0..255 per channel) of the pixels in a rectangle given in fractions of the image.
fn mean(img: &image::RgbImage, x0: f32, y0: f32, x1: f32, y1: f32) -> [f32; 3] {
    let (w, h) = img.dimensions();
    let (xa, xb) = ((x0 * w as f32) as u32, (x1 * w as f32) as u32);
    let (ya, yb) = ((y0 * h as f32) as u32, (y1 * h as f32) as u32);
    let mut sum = [0f64; 3];
    let mut n = 0f64;
    for y in ya..yb {
        for x in xa..xb {
            let p = img.get_pixel(x, y).0;
            for c in 0..3 {
                sum[c] += f64::from(p[c]);
            }
            n += 1.0;
        }
    }
    sum.map(|s| (s / n.max(1.0)) as f32)
}

/// A named region, a test of its pixels, and the least share of its pixels that must pass.
type Mix = (&'static str, [f32; 4], fn([u8; 3]) -> bool, f32);

/// The fraction of the pixels in a rectangle (fractions of the image) for which `f` holds.
fn share(img: &image::RgbImage, [x0, y0, x1, y1]: [f32; 4], f: fn([u8; 3]) -> bool) -> f32 {
    let (w, h) = img.dimensions();
    let (xa, xb) = ((x0 * w as f32) as u32, (x1 * w as f32) as u32);
    let (ya, yb) = ((y0 * h as f32) as u32, (y1 * h as f32) as u32);
    let mut hits = 0u32;
    for y in ya..yb {
        for x in xa..xb {
            hits += u32::from(f(img.get_pixel(x, y).0));
        }
    }
    hits as f32 / ((xb - xa) * (yb - ya)).max(1) as f32
}

#[test]
fn viewer_renders_the_demo_scene() {
    if !on_path("xvfb-run") {
        return skip("xvfb-run is not installed (apt-get install xvfb xauth mesa-vulkan-drivers)");
    }
    let viewer = match viewer_binary() {
        Ok(v) => v,
        Err(e) => return skip(&e),
    };
    // No moving children, so the picture is deterministic.
    let host = DemoHost::spawn("render test", DemoScenePlugin { entities: 0 })
        .unwrap_or_else(|e| panic!("{e}"));
    let url = host.url().to_string();
    let shot = std::env::temp_dir().join(format!("noodles2-render-{}.png", std::process::id()));
    let _ = std::fs::remove_file(&shot);

    let started = Instant::now();
    let child = Command::new("xvfb-run")
        .args(["-a", "-s", &format!("-screen 0 {W}x{H}x24")])
        .arg(&viewer)
        .arg(&url)
        .arg("--screenshot")
        .arg(&shot)
        .args(["--size", &format!("{W}x{H}"), "--timeout", "100"])
        // Selected, the pillar is outlined (checked below).
        .args(["--select", "glowing pillar"])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a hung run can be killed whole (Xvfb included).
        .process_group(0)
        .spawn()
        .expect("run xvfb-run");
    let group = child.id();
    // `wait_with_output` drains both pipes while it waits (a full pipe would stall the viewer);
    // it runs on a thread so that the wait has a deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    // The viewer gives up by itself after its --timeout; this is a guard on top.
    let (timed_out, output) = match rx.recv_timeout(Duration::from_secs(115)) {
        Ok(output) => (false, output),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .status();
            let output = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the killed viewer's output");
            (true, output)
        }
    };
    drop(host);
    let output = output.expect("viewer output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = {
        let lines: Vec<&str> = stderr.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    let s = output.status;
    if timed_out {
        panic!("the viewer did not exit within 115 s; its stderr ends with:\n{tail}");
    }
    if !s.success() {
        // Bevy panics with this when wgpu finds no adapter (no Vulkan/GL driver).
        let no_gpu = stderr.contains("Unable to find a GPU");
        if no_gpu {
            return skip(&format!("no graphics adapter ({s}):\n{tail}"));
        }
        panic!("the viewer failed ({s}); its stderr ends with:\n{tail}");
    }
    eprintln!(
        "render test: screenshot {} taken in {:.1}s",
        shot.display(),
        started.elapsed().as_secs_f32()
    );

    // The viewer says where its 3D view is (between the panels); regions are fractions of it.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let view: [f32; 4] = stdout
        .lines()
        .find_map(|l| l.strip_prefix("3d view: "))
        .and_then(|v| {
            let n: Vec<f32> = v.split(' ').filter_map(|x| x.parse().ok()).collect();
            n.try_into().ok()
        })
        .unwrap_or_else(|| panic!("the viewer did not print its 3d view; stdout:\n{stdout}"));
    let in_view = |[x0, y0, x1, y1]: [f32; 4]| {
        let [vx, vy, vw, vh] = view;
        [
            (vx + x0 * vw) / W as f32,
            (vy + y0 * vh) / H as f32,
            (vx + x1 * vw) / W as f32,
            (vy + y1 * vh) / H as f32,
        ]
    };
    let img = image::open(&shot)
        .unwrap_or_else(|e| panic!("cannot read the screenshot {}: {e}", shot.display()))
        .to_rgb8();
    assert_eq!(img.dimensions(), (W, H), "screenshot size");
    // NOODLES2_RENDER_SHOT=PATH keeps a copy of the screenshot (to look at it).
    if let Some(keep) = std::env::var_os("NOODLES2_RENDER_SHOT") {
        let _ = std::fs::copy(&shot, keep);
    }
    let _ = std::fs::remove_file(&shot);

    // The picture: panels around a 3D view of about 773x592 pixels (at 1280x720). In it the
    // viewer frames the scene from above at an angle, so the 12x12 grey ground is a wide diamond;
    // the checkered cube stands in the middle with the red sphere on top, the green torus on the
    // left, the pale blue pillar (selected: an orange outline) on the right; around the ground
    // is the demo's sky (its earth-brown lower half, seen from above), which the library put on
    // the viewer's camera as its `Skybox` (without it: the viewer's clear color, sRGB
    // (20, 23, 28)). The sky's light (an environment map) also lights every object, so colors
    // are less saturated than under the lamps alone. Regions are given as fractions of the 3D
    // view, as means over small rectangles, with tolerances wide enough for framing and lighting
    // to move a little.
    let sky = |c: [f32; 3]| c[0] > 40.0 && c[0] > c[2] + 8.0 && c[1] > c[2];
    let checks: [Check; 5] = [
        ("sky, top right", [0.82, 0.012, 0.97, 0.12], sky),
        ("sky, bottom left", [0.01, 0.88, 0.107, 0.98], sky),
        (
            "ground, in front of the cube",
            [0.457, 0.527, 0.547, 0.564],
            |c| {
                let (lo, hi) = (
                    c.iter().cloned().fold(f32::MAX, f32::min),
                    c.iter().cloned().fold(0.0, f32::max),
                );
                lo > 60.0 && hi < 220.0 && hi - lo < 40.0
            },
        ),
        ("red sphere", [0.495, 0.285, 0.51, 0.306], |c| {
            c[0] > 110.0 && c[0] > 1.6 * c[1] && c[0] > 1.6 * c[2]
        }),
        ("green torus", [0.304, 0.351, 0.317, 0.368], |c| {
            c[1] > 80.0 && c[1] > 1.15 * c[0] && c[1] > 1.1 * c[2]
        }),
    ];
    let mut failed = Vec::new();
    for (name, rect, ok) in checks {
        let [x0, y0, x1, y1] = in_view(rect);
        let c = mean(&img, x0, y0, x1, y1);
        eprintln!("render test: {name}: mean RGB {c:.0?}");
        if !ok(c) {
            failed.push(format!("{name}: mean RGB {c:.0?}"));
        }
    }
    // Regions mixing colors, checked by the share of their pixels of each kind: the belt of
    // 3,000 instanced cubes around the ground (in front, each cube shows its own part of the
    // yellow and blue checker), the title on the billboard sign (dark glyphs on yellow) and the
    // white "clearcoat" label. Without instances the belt region is brown sky and grey ground;
    // without text the sign is plain yellow and the label region grey ground and the cube. The
    // animated objects move, so only their still parts are checked: the base of the skinned
    // coral arm on the left corner of the ground (its upper joints bend), and the middle of the
    // magenta blob on the right corner (its morph target pushes lobes out around it). Without
    // the skin the arm would be drawn unbent but still there; without the mesh (a refused skin
    // or morph target) the regions are grey ground. The selected pillar's outline is orange
    // (the default selection color); unselected, the region is pale blue pillar, grey ground
    // and brown sky.
    let blue = |p: [u8; 3]| i32::from(p[2]) > i32::from(p[0]) + 40;
    let yellow = |p: [u8; 3]| p[0] > 110 && i32::from(p[0]) > i32::from(p[2]) + 50;
    let dark = |p: [u8; 3]| p.iter().all(|c| *c < 120);
    let white = |p: [u8; 3]| p.iter().all(|c| *c > 170);
    let coral = |p: [u8; 3]| p[0] > 150 && (50..150).contains(&p[1]) && p[2] < 110;
    let magenta = |p: [u8; 3]| p[0] > 120 && p[2] > 100 && i32::from(p[1]) < i32::from(p[0]) - 60;
    let orange = |p: [u8; 3]| p[0] > 200 && (110..200).contains(&p[1]) && p[2] < 90;
    let mixes: [Mix; 8] = [
        (
            "instanced belt: blue checker cells",
            [0.405, 0.611, 0.612, 0.73],
            blue,
            0.08,
        ),
        (
            "instanced belt: yellow checker cells",
            [0.405, 0.611, 0.612, 0.73],
            yellow,
            0.08,
        ),
        ("sign: yellow", [0.45, 0.215, 0.556, 0.242], yellow, 0.3),
        (
            "sign: dark title glyphs",
            [0.45, 0.215, 0.556, 0.242],
            dark,
            0.04,
        ),
        (
            "clearcoat label: white glyphs",
            [0.448, 0.416, 0.564, 0.441],
            white,
            0.06,
        ),
        (
            "skinned arm: base",
            [0.198, 0.383, 0.213, 0.416],
            coral,
            0.3,
        ),
        (
            "morphing blob: middle",
            [0.787, 0.358, 0.812, 0.389],
            magenta,
            0.4,
        ),
        (
            "selected pillar: orange outline",
            [0.664, 0.328, 0.726, 0.463],
            orange,
            0.04,
        ),
    ];
    for (name, rect, f, least) in mixes {
        let s = share(&img, in_view(rect), f);
        eprintln!("render test: {name}: {:.1} % of the region", s * 100.0);
        if s < least {
            failed.push(format!(
                "{name}: {:.1} % of the region, expected at least {:.0} %",
                s * 100.0,
                least * 100.0
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "the screenshot does not show what it should (set NOODLES2_RENDER_SHOT=PATH to keep it):\n{}",
        failed.join("\n")
    );
}
