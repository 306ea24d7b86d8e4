//! World mirroring benchmark (issue 4): an Upstream with N shared entities of which a fraction f
//! changes its `Transform` every tick, one Downstream over loopback; the same workload on
//! bevy_replicon 0.44 with its example backend; and a plain memcpy of N × 48 bytes. Everything
//! runs in the same run, and the end prints a table of medians.
//!
//! ```sh
//! cargo bench --bench mirror                         # every case (a minute or two)
//! MIRROR_BENCH_QUICK=1 cargo bench --bench mirror    # only the 10k cases
//! MIRROR_BENCH_ASSETS_ONLY=1 cargo bench --bench mirror  # only the asset case
//! ```
//!
//! The asset case (issue 10) runs first: 10,000 shared entities, 10 % of transforms changing and
//! one entity despawned per tick, without and with a mesh and a material on every entity (two
//! pairs of apps that tick in turns, so that the machine's moods weigh on both alike); it prints
//! the Upstream's mirror section with assets against the same world without them.
//!
//! # Method
//!
//! - **A process per library and case.** Each library's side of each case runs in a child
//!   process of its own (this binary again, `MIRROR_BENCH_SIDE=ours|replicon:NxP`), one after
//!   the other, and prints its samples for the parent's tables. Run in one process, one side's
//!   allocations moved the other's figures: replicon's apply at 100k × 10 % took about 800 or
//!   about 1,400 µs depending on what our side had allocated before it.
//! - **Lockstep, one thread, single-threaded schedules.** Each side is a pair of `App`s on
//!   `MinimalPlugins` updated in turn from this thread (`upstream.update()`, then the Downstream
//!   until the tick has arrived). Every schedule of every app gets Bevy's single-threaded executor,
//!   so a section's time is the work of its systems and not the scheduling of other systems on
//!   the second core (the replicon anchor in `../shared/bench/replicon-anchor/` builds Bevy
//!   without `multi_threaded` for the same reason; our crate enables it, so we switch executors).
//! - **The mutation is not timed.** The "game" changes f·N transforms (`translation.x += 1`) on
//!   the Upstream world before its update; entity i changes on tick t when
//!   `i % (1/f) == t % (1/f)`, so exactly f·N entities change on every tick.
//! - **Our Upstream cost per tick** is the time between two marker systems placed before and
//!   after the `PostUpdate` phases of [`NoodlesSystems`] (`ExportAssets`, `Collect`, `Send`):
//!   they hold everything the mirror does on the Upstream each tick (the per-type `Changed<T>`
//!   collectors, encoding the transaction once, handing the same `Bytes` to each link's queue;
//!   noting links that joined, a few instructions, runs in `PreUpdate`). Timing sections inside one update
//!   isolates our work from Bevy's per-update overhead without subtracting two noisy runs. The
//!   whole `upstream.update()` is printed too. Our transport writes the websocket frames on its
//!   tokio threads, outside these sections (and, on this 2-core machine, competing with them).
//! - **Replicon's cost per tick**, measured the same way: marker systems around
//!   `ServerSystems::Send` (change collection, serialization, messages handed to the backend, the
//!   counterpart of our section) and around `ServerSystems::SendPackets` (the example backend's
//!   socket writes, which replicon does on the calling thread); and the whole `server.update()`.
//!   The ratios use the `Send` set alone, which leaves replicon's socket writes out (a
//!   conservative comparison for us), and the whole update.
//! - **Downstream apply**: marker systems around [`NoodlesSystems::ApplyTransactions`] in `PreUpdate` (validate
//!   and apply every transaction of the tick to native components; decoding the frame into a
//!   `Transaction` header happens in the transport, zero-copy for the component payload), and
//!   around replicon's `ClientSystems::Receive` (deserialize and write). If a tick arrives in
//!   several Downstream updates, their sections are summed; the time spent waiting for loopback
//!   delivery between updates is not counted.
//! - **Bytes**: ours are the encoded transactions of the tick (`MirrorStats::last_delta_bytes`;
//!   the websocket frame header adds at most 10 bytes per transaction, one transaction per MiB);
//!   replicon's are the messages it hands to the backend (`ServerMessages::iter_sent`) plus the
//!   backend's 3-byte frame header per message. Per changed entity = bytes / (f·N). The
//!   NOODLES2 minimum is 48 bytes per `(EntityID, TransformComponent)` pair.
//! - **Initial sync**: wall time from opening the Downstream's connection until it holds all N
//!   entities with a `Transform`, updating both apps in turn. Replicon's example backend frames
//!   messages with a `u16` length and replicon puts all spawns of a tick in one message, so its
//!   Downstream would be dropped by a world of more than ~1,450 entities: for replicon the N
//!   entities exist before the client connects and `Replicated` is inserted on 1,000 of them per
//!   tick once the client is authorized (N/1000 + a few ticks). Ours sends the whole world at once
//!   (split into transactions of at most 1 MiB).
//! - **Replicon's traps** (see the anchor's README): its example backend writes to non-blocking
//!   sockets without a queue and drops the client when a write would block, so both sockets'
//!   buffers are enlarged (8 MiB effective); the backend keeps its sockets private, so they are
//!   found among this process's descriptors by their ports. `Transform` is replicated with
//!   `replicate_as` through a serde mirror of its ten `f32`s, which postcard writes exactly as it
//!   writes Bevy's own `Transform` with the `serialize` feature (40 bytes), without enabling that
//!   feature for every test build of the crate.
//! - **Checks** (the run panics if one fails): every Downstream holds all N entities, the links
//!   are still up after measuring, every tick changes f·N entities, and the sum of
//!   `translation.x` on the Downstream equals the Upstream's after the last tick (exact: small
//!   integers).
//! - **memcpy**: `copy_from_slice` of N × 48 bytes between two buffers, median of 50 copies
//!   (the first copy's page faults do not count), plus criterion's estimate of the same copy.
//!
//! Medians are over [`MEASURED_TICKS`] ticks after [`WARMUP_TICKS`] warm-up ticks. The machine is
//! shared: compare the columns of one run (and against the memcpy column), not runs.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use bevy::ecs::query::QueryFilter;
use bevy::prelude::*;
use bevy_noodles2::mirror::MirrorStats;
use bevy_noodles2::prelude::*;
use bevy_replicon::client::ClientReplicationStats;
use bevy_replicon::prelude::*;
use bevy_replicon_example_backend::{ExampleClient, ExampleServer};
use criterion::Criterion;

mod common;
use common::{init_logging, listen, load_average, replicon_app, single_threaded};

/// (N, 1/f).
const CASES: [(usize, usize); 4] = [(10_000, 10), (10_000, 1), (100_000, 10), (100_000, 1)];
/// Ticks with mutations before measuring (not recorded).
const WARMUP_TICKS: usize = 10;
/// Ticks measured per case and library.
const MEASURED_TICKS: usize = 60;
/// The wire minimum of one `(EntityID, TransformComponent)` pair: 8 + 40 bytes.
const PAIR_BYTES: usize = 48;
/// Entities given `Replicated` per tick during replicon's initial sync (see the module docs).
const REPLICON_SYNC_BATCH: usize = 1000;
/// Socket buffer size asked for replicon's sockets (the kernel caps it at `wmem_max`/`rmem_max`
/// and doubles it; 4 MiB here, so 8 MiB effective).
const SOCKET_BUFFER: usize = 8 << 20;
/// The example backend's frame header: channel (u8) and length (u16).
const BACKEND_FRAME_HEADER: usize = 3;
/// Give up on anything that should be quick after this long.
const DEADLINE: Duration = Duration::from_secs(60);

/// How long a step may take: [`DEADLINE`], or ten times more under callgrind (which runs the
/// program about fifty times slower, one thread at a time).
fn deadline() -> Duration {
    if std::env::var_os("MIRROR_BENCH_CALLGRIND").is_some() {
        DEADLINE * 10
    } else {
        DEADLINE
    }
}

/// Stable index of an Upstream entity, used to pick which ones change on a tick. Not mirrored.
#[derive(Component)]
struct Idx(u32);

/// Instants taken by marker systems inside one `App::update`.
#[derive(Resource, Default)]
struct Stamps([Option<Instant>; 6]);

impl Stamps {
    /// µs from stamp `a` to stamp `b` of the last update (0 if either did not run).
    fn us(&self, a: usize, b: usize) -> f64 {
        match (self.0[a], self.0[b]) {
            (Some(x), Some(y)) => micros(y.saturating_duration_since(x)),
            _ => 0.0,
        }
    }
}

fn stamp<const I: usize>(mut stamps: ResMut<Stamps>) {
    stamps.0[I] = Some(Instant::now());
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Update `app` once with cleared stamps; returns the wall time of the update in µs.
fn timed_update(app: &mut App) -> f64 {
    app.world_mut().resource_mut::<Stamps>().0 = Default::default();
    let start = Instant::now();
    app.update();
    micros(start.elapsed())
}

fn count<F: QueryFilter>(app: &mut App) -> usize {
    let world = app.world_mut();
    let mut q = world.query_filtered::<(), F>();
    q.iter(world).count()
}

/// Sum of `translation.x` over the entities matching `F` (exact: small integers in f64).
fn sum_x<F: QueryFilter>(app: &mut App) -> f64 {
    let world = app.world_mut();
    let mut q = world.query_filtered::<&Transform, F>();
    q.iter(world).map(|t| f64::from(t.translation.x)).sum()
}

/// The "game": changes the transforms of exactly the entities whose index falls on this tick.
fn mutate<F: QueryFilter>(app: &mut App, period: usize, tick: usize) -> usize {
    let phase = (tick % period) as u32;
    let world = app.world_mut();
    let mut q = world.query_filtered::<(&Idx, &mut Transform), F>();
    let mut changed = 0;
    for (idx, mut t) in q.iter_mut(world) {
        if idx.0 % period as u32 == phase {
            t.translation.x += 1.0;
            changed += 1;
        }
    }
    changed
}

fn spawn_entities(app: &mut App, n: usize) -> Vec<Entity> {
    app.world_mut()
        .spawn_batch((0..n as u32).map(|i| (Idx(i), Transform::from_xyz(i as f32, 0.0, 0.0))))
        .collect()
}

/// Per-tick samples of one case on one library.
#[derive(Default)]
struct Ticks {
    /// Upstream section that gathers, encodes and hands off the changes.
    send_us: Vec<f64>,
    /// Replicon only: the backend's socket writes (`SendPackets`).
    socket_us: Vec<f64>,
    /// Whole Upstream update.
    up_update_us: Vec<f64>,
    /// Downstream section that applies the tick (summed over updates).
    apply_us: Vec<f64>,
    /// Whole Downstream updates of the tick (summed; includes updates that found nothing yet).
    down_update_us: Vec<f64>,
    /// Bytes of the tick.
    bytes: Vec<f64>,
    /// Ticks that needed more than one Downstream update.
    split_ticks: usize,
}

struct CaseResult {
    n: usize,
    changed: usize,
    ours: Ticks,
    ours_sync_ms: f64,
    ours_sync_tx: u64,
    replicon: Ticks,
    replicon_sync_ms: f64,
    replicon_sync_ticks: usize,
    replicon_buffers: (usize, usize),
    memcpy_us: f64,
}

impl CaseResult {
    fn new(n: usize, period: usize) -> CaseResult {
        CaseResult {
            n,
            changed: n / period,
            ours: Ticks::default(),
            ours_sync_ms: 0.0,
            ours_sync_tx: 0,
            replicon: Ticks::default(),
            replicon_sync_ms: 0.0,
            replicon_sync_ticks: 0,
            replicon_buffers: (0, 0),
            memcpy_us: 0.0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// bevy_noodles2

fn noodles_app(name: &str) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(NoodlesPlugin {
            session_name: name.into(),
            ..default()
        })
        .init_resource::<Stamps>()
        .add_systems(
            PreUpdate,
            (
                stamp::<0>
                    .after(NoodlesSystems::Receive)
                    .before(NoodlesSystems::ApplyTransactions),
                stamp::<1>.after(NoodlesSystems::ApplyTransactions),
            ),
        )
        .add_systems(
            PostUpdate,
            (
                stamp::<2>.before(NoodlesSystems::ExportAssets),
                stamp::<3>.after(NoodlesSystems::Send),
            ),
        );
    app.finish();
    app.cleanup();
    single_threaded(&mut app);
    app
}

fn mirrored(app: &mut App) -> usize {
    count::<(With<Mirrored>, With<Transform>)>(app)
}

/// Mirrored entities with a mesh (the asset case).
fn with_mesh(app: &mut App) -> usize {
    count::<(With<Mirrored>, With<Mesh3d>)>(app)
}

fn open_links(app: &mut App) -> usize {
    let world = app.world_mut();
    let mut q = world.query::<&NoodlesLink>();
    q.iter(world).filter(|l| l.is_open()).count()
}

/// The Upstream's update of a measured tick: a function of its own, so that a callgrind run can
/// count its instructions alone (`--toggle-collect`, see `benches/callgrind.sh`).
#[inline(never)]
fn measured_upstream_tick(up: &mut App) -> f64 {
    // `black_box` after the call: a tail call would hide the return from callgrind, which would
    // then go on counting after it. The marker differs from `measured_downstream_tick`, or the
    // compiler would merge the two identical functions into one.
    black_box((timed_update(up), 1u8)).0
}

/// A Downstream update of a measured tick (see [`measured_upstream_tick`]).
#[inline(never)]
fn measured_downstream_tick(down: &mut App) -> f64 {
    black_box((timed_update(down), 2u8)).0
}

/// An Upstream update of the asset case with assets: under
/// `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_asset_tick*'` (and
/// `MIRROR_BENCH_ASSETS_ONLY=1`) it counts the instructions of those updates alone, and with
/// `'*measured_upstream_tick*'` those of the same case without assets.
#[inline(never)]
fn measured_asset_tick(up: &mut App) -> f64 {
    black_box((timed_update(up), 3u8)).0
}

fn run_ours(n: usize, period: usize, r: &mut CaseResult) {
    run_ours_ticks(n, period, (WARMUP_TICKS, MEASURED_TICKS), r);
}

fn run_ours_ticks(n: usize, period: usize, (warmup, measured): (usize, usize), r: &mut CaseResult) {
    let mut up = noodles_app("mirror bench upstream");
    let url = listen(&mut up, deadline());
    let entities = spawn_entities(&mut up, n);
    for e in entities {
        up.world_mut().entity_mut(e).insert(Shared);
    }
    up.update();

    // Initial sync: from opening the connection to all N transforms mirrored.
    let mut down = noodles_app("mirror bench downstream");
    let start = Instant::now();
    down.world_mut().spawn(NoodlesConnect::new(url));
    loop {
        up.update();
        down.update();
        if mirrored(&mut down) == n {
            break;
        }
        assert!(start.elapsed() < deadline(), "initial sync did not finish");
    }
    r.ours_sync_ms = start.elapsed().as_secs_f64() * 1e3;
    r.ours_sync_tx = up.world().resource::<MirrorStats>().transactions_sent;
    assert_eq!(
        (open_links(&mut up), open_links(&mut down)),
        (1, 1),
        "link down after the initial sync"
    );

    for tick in 0..warmup + measured {
        let changed = mutate::<With<Shared>>(&mut up, period, tick);
        assert_eq!(changed, r.changed);
        let measuring = tick >= warmup;

        let up_us = if measuring {
            measured_upstream_tick(&mut up)
        } else {
            timed_update(&mut up)
        };
        let send_us = up.world().resource::<Stamps>().us(2, 3);
        let stats = up.world().resource::<MirrorStats>().clone();
        assert!(
            stats.last_delta_pairs >= changed,
            "only {} pairs for {changed} changes",
            stats.last_delta_pairs
        );

        // The Downstream updates until it has applied every transaction sent so far.
        let (mut apply_us, mut down_us, mut updates) = (0.0, 0.0, 0);
        let wait = Instant::now();
        while down.world().resource::<MirrorStats>().transactions_applied < stats.transactions_sent
        {
            down_us += if measuring {
                measured_downstream_tick(&mut down)
            } else {
                timed_update(&mut down)
            };
            apply_us += down.world().resource::<Stamps>().us(0, 1);
            updates += 1;
            assert!(wait.elapsed() < deadline(), "tick {tick} never arrived");
        }
        if measuring {
            let t = &mut r.ours;
            t.send_us.push(send_us);
            t.up_update_us.push(up_us);
            t.apply_us.push(apply_us);
            t.down_update_us.push(down_us);
            t.bytes.push(stats.last_delta_bytes as f64);
            t.split_ticks += usize::from(updates > 1);
        }
    }
    assert_eq!(
        (open_links(&mut up), open_links(&mut down)),
        (1, 1),
        "link down after measuring"
    );
    assert_eq!(mirrored(&mut down), n);
    assert_eq!(
        sum_x::<With<Shared>>(&mut up),
        sum_x::<With<Mirrored>>(&mut down),
        "Downstream transforms differ"
    );
}

// ---------------------------------------------------------------------------------------------
// bevy_noodles2 with assets (issue 10): the same world with and without meshes and materials

/// Entities of the asset case, the share of them changing per tick, shared meshes and
/// materials, and how many of the first entities get a mesh of their own (each of those is
/// despawned in turn, one per tick, so every despawn deletes a mesh and its buffer on the wire).
const ASSET_CASE: (usize, usize) = (10_000, 10);
const SHARED_MESHES: usize = 1_000;
const MATERIALS: usize = 100;
const OWN_MESHES: usize = WARMUP_TICKS + MEASURED_TICKS;

/// An app of the asset case: like [`noodles_app`], with Bevy's mesh, image and material
/// collections (so the plugin exports and imports assets) in both variants.
fn noodles_asset_app(name: &str) -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, bevy::asset::AssetPlugin::default()))
        .init_asset::<Mesh>()
        .init_asset::<Image>()
        .init_asset::<StandardMaterial>()
        .add_plugins(NoodlesPlugin {
            session_name: name.into(),
            ..default()
        })
        .init_resource::<Stamps>()
        .add_systems(
            PostUpdate,
            (
                stamp::<2>.before(NoodlesSystems::ExportAssets),
                stamp::<4>
                    .after(NoodlesSystems::ExportAssets)
                    .before(NoodlesSystems::Collect),
                stamp::<3>.after(NoodlesSystems::Send),
            ),
        );
    app.finish();
    app.cleanup();
    single_threaded(&mut app);
    app
}

/// One variant of the asset case: 10,000 shared entities, 10 % of transforms changing and one
/// entity despawned per tick; `with_assets` gives each a `Mesh3d` and a `MeshMaterial3d`. The
/// two variants live side by side and tick in turns ([`run_asset_cases`]), so that what the
/// machine does meanwhile (another process, a slower core) weighs on both alike.
struct AssetCase {
    with_assets: bool,
    up: App,
    down: App,
    /// The entities despawned one per tick, in order.
    victims: Vec<Entity>,
    /// Per measured tick: the Upstream's mirror section (µs), its `ExportAssets` part, and the
    /// whole update.
    send: Vec<f64>,
    export: Vec<f64>,
    whole: Vec<f64>,
}

impl AssetCase {
    fn new(with_assets: bool) -> Self {
        let (n, _) = ASSET_CASE;
        let mut up = noodles_asset_app("asset bench upstream");
        let url = listen(&mut up, deadline());
        let mut spawned = Vec::with_capacity(n);
        {
            let world = up.world_mut();
            let meshes: Vec<Handle<Mesh>> = {
                let mut meshes = world.resource_mut::<Assets<Mesh>>();
                (0..SHARED_MESHES + OWN_MESHES)
                    .map(|i| meshes.add(Cuboid::new(1.0 + i as f32 * 0.01, 1.0, 1.0)))
                    .collect()
            };
            let materials: Vec<Handle<StandardMaterial>> = {
                let mut materials = world.resource_mut::<Assets<StandardMaterial>>();
                (0..MATERIALS)
                    .map(|i| materials.add(Color::srgb(i as f32 / MATERIALS as f32, 0.5, 0.5)))
                    .collect()
            };
            for i in 0..n {
                let mut e = world.spawn((
                    Idx(i as u32),
                    Transform::from_xyz(i as f32, 0.0, 0.0),
                    Shared,
                ));
                if with_assets {
                    let mesh = if i < OWN_MESHES {
                        SHARED_MESHES + i
                    } else {
                        i % SHARED_MESHES
                    };
                    e.insert((
                        Mesh3d(meshes[mesh].clone()),
                        MeshMaterial3d(materials[i % MATERIALS].clone()),
                    ));
                }
                spawned.push(e.id());
            }
        }
        up.update();

        let mut down = noodles_asset_app("asset bench downstream");
        down.world_mut().spawn(NoodlesConnect::new(url));
        let start = Instant::now();
        loop {
            up.update();
            down.update();
            let stats = down.world().resource::<AssetStats>();
            let assets_done = !with_assets
                || (stats.pending == 0 && stats.decoding == 0 && with_mesh(&mut down) == n);
            if mirrored(&mut down) == n && assets_done {
                break;
            }
            assert!(
                start.elapsed() < deadline(),
                "initial sync of the asset case did not finish"
            );
        }
        let victims = spawned[..WARMUP_TICKS + MEASURED_TICKS].to_vec();
        AssetCase {
            with_assets,
            up,
            down,
            victims,
            send: Vec::new(),
            export: Vec::new(),
            whole: Vec::new(),
        }
    }

    /// Tick `tick`: change 10 % of the transforms, despawn one entity, update the Upstream (and
    /// record its sections), then the Downstream until it applied everything.
    fn tick(&mut self, tick: usize) {
        let period = ASSET_CASE.1;
        let (up, down) = (&mut self.up, &mut self.down);
        let phase = (tick % period) as u32;
        {
            let world = up.world_mut();
            let mut q = world.query::<(&Idx, &mut Transform)>();
            for (idx, mut t) in q.iter_mut(world) {
                if idx.0 % period as u32 == phase {
                    t.translation.x += 1.0;
                }
            }
            world.despawn(self.victims[tick]);
        }
        // Markers for `valgrind --toggle-collect` (see `measured_asset_tick`).
        let up_us = if self.with_assets {
            measured_asset_tick(up)
        } else {
            measured_upstream_tick(up)
        };
        let send_us = up.world().resource::<Stamps>().us(2, 3);
        let export_us = up.world().resource::<Stamps>().us(2, 4);
        let sent = up.world().resource::<MirrorStats>().transactions_sent;
        let wait = Instant::now();
        while down.world().resource::<MirrorStats>().transactions_applied < sent {
            down.update();
            assert!(
                wait.elapsed() < deadline(),
                "asset tick {tick} never arrived"
            );
        }
        if tick >= WARMUP_TICKS {
            self.send.push(send_us);
            self.export.push(export_us);
            self.whole.push(up_us);
        }
    }

    /// Check what the Downstream mirrors, and return the samples.
    fn finish(mut self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (n, _) = ASSET_CASE;
        let (up, down) = (&mut self.up, &mut self.down);
        let left = n - WARMUP_TICKS - MEASURED_TICKS;
        assert_eq!(mirrored(down), left, "despawns not mirrored");
        assert_eq!(
            sum_x::<With<Shared>>(up),
            sum_x::<With<Mirrored>>(down),
            "Downstream transforms differ (asset case)"
        );
        if self.with_assets {
            assert_eq!(with_mesh(down), left, "meshes not mirrored");
            // Every own mesh was despawned with its entity: only the shared ones remain exported.
            let meshes = down.world().resource::<Assets<Mesh>>().len();
            assert!(
                meshes <= SHARED_MESHES + 1,
                "{meshes} meshes on the Downstream: deleted meshes were not deleted there"
            );
        }
        (self.send, self.export, self.whole)
    }
}

/// The asset case without and with assets, ticking in turns. Returns each variant's samples.
#[expect(clippy::type_complexity, reason = "three sample series per variant")]
fn run_asset_cases() -> (
    (Vec<f64>, Vec<f64>, Vec<f64>),
    (Vec<f64>, Vec<f64>, Vec<f64>),
) {
    eprintln!("assets case: setting up both variants ...");
    let mut bare = AssetCase::new(false);
    let mut with = AssetCase::new(true);
    eprintln!("assets case: ticking both in turns ...");
    for tick in 0..WARMUP_TICKS + MEASURED_TICKS {
        bare.tick(tick);
        with.tick(tick);
    }
    (bare.finish(), with.finish())
}

// ---------------------------------------------------------------------------------------------
// bevy_replicon 0.44 + example backend

/// Messages replicon handed to the backend, counted between `Send` and `SendPackets`.
#[derive(Resource, Default)]
struct SentBytes {
    framed: usize,
}

fn count_sent(messages: Res<ServerMessages>, mut sent: ResMut<SentBytes>) {
    for (_, _, bytes) in messages.iter_sent() {
        sent.framed += bytes.len() + BACKEND_FRAME_HEADER;
    }
}

fn replicon_server() -> App {
    let mut app = replicon_app();
    app.init_resource::<Stamps>();
    app.init_resource::<SentBytes>().add_systems(
        PostUpdate,
        (
            stamp::<2>
                .after(ServerSystems::IncrementTick)
                .before(ServerSystems::Send),
            (stamp::<3>, count_sent)
                .chain()
                .after(ServerSystems::Send)
                .before(ServerSystems::SendPackets),
            stamp::<4>.after(ServerSystems::SendPackets),
        ),
    );
    app.finish();
    app.cleanup();
    single_threaded(&mut app);
    app
}

fn replicon_client() -> App {
    let mut app = replicon_app();
    app.init_resource::<Stamps>();
    app.init_resource::<ClientReplicationStats>().add_systems(
        PreUpdate,
        (
            stamp::<0>
                .after(ClientSystems::ReceivePackets)
                .before(ClientSystems::Receive),
            stamp::<1>.after(ClientSystems::Receive),
        ),
    );
    app.finish();
    app.cleanup();
    single_threaded(&mut app);
    app
}

/// The example backend keeps its sockets private: find the one connected from `local` to `peer`
/// among this process's descriptors.
fn find_socket(local: u16, peer: u16) -> RawFd {
    let port = |a: std::io::Result<socket2::SockAddr>| {
        a.ok()
            .and_then(|a| a.as_socket())
            .map(|a: SocketAddr| a.port())
    };
    for entry in std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
    {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        // SAFETY: the descriptor is only borrowed for the two queries below; the backend keeps its
        // sockets open meanwhile, and for any other descriptor the queries just fail.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        if port(socket.local_addr()) == Some(local) && port(socket.peer_addr()) == Some(peer) {
            return fd;
        }
    }
    panic!("no socket from port {local} to port {peer}");
}

/// Enlarge a socket's kernel buffers; returns the effective (send, receive) sizes.
fn enlarge_buffers(fd: RawFd) -> (usize, usize) {
    // SAFETY: `fd` was just found open and belongs to a live backend socket.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = socket2::SockRef::from(&borrowed);
    socket
        .set_send_buffer_size(SOCKET_BUFFER)
        .expect("SO_SNDBUF");
    socket
        .set_recv_buffer_size(SOCKET_BUFFER)
        .expect("SO_RCVBUF");
    (
        socket.send_buffer_size().expect("SO_SNDBUF"),
        socket.recv_buffer_size().expect("SO_RCVBUF"),
    )
}

fn replicon_linked(server: &mut App, client: &mut App) -> bool {
    *client.world().resource::<State<ClientState>>().get() == ClientState::Connected
        && count::<With<ConnectedClient>>(server) == 1
}

fn run_replicon(n: usize, period: usize, r: &mut CaseResult) {
    let mut server = replicon_server();
    let entities = spawn_entities(&mut server, n);
    let listener = ExampleServer::new(0).expect("bind 127.0.0.1:0");
    let server_port = listener.local_addr().expect("server address").port();
    server.insert_resource(listener);
    server.update();

    // Initial sync: from connecting to all N transforms on the client, 1,000 entities per tick.
    let mut client = replicon_client();
    let start = Instant::now();
    let connection = ExampleClient::new((Ipv4Addr::LOCALHOST, server_port)).expect("connect");
    let client_port = connection.local_addr().expect("client address").port();
    client.insert_resource(connection);
    server.update(); // accepts the connection
    let bookkeeping = Instant::now();
    let client_fd = find_socket(client_port, server_port);
    let server_fd = find_socket(server_port, client_port);
    r.replicon_buffers = enlarge_buffers(client_fd);
    enlarge_buffers(server_fd);
    let bookkeeping = bookkeeping.elapsed();
    let mut next = 0;
    r.replicon_sync_ticks = 1;
    loop {
        client.update();
        if next == n && count::<(With<Remote>, With<Transform>)>(&mut client) == n {
            break;
        }
        if next < n && count::<(With<ConnectedClient>, With<AuthorizedClient>)>(&mut server) == 1 {
            let end = (next + REPLICON_SYNC_BATCH).min(n);
            server
                .world_mut()
                .insert_batch(entities[next..end].iter().map(|&e| (e, Replicated)));
            next = end;
        }
        server.update();
        r.replicon_sync_ticks += 1;
        assert!(
            start.elapsed() < deadline(),
            "replicon's initial sync did not finish"
        );
    }
    r.replicon_sync_ms = (start.elapsed() - bookkeeping).as_secs_f64() * 1e3;
    assert!(
        replicon_linked(&mut server, &mut client),
        "replicon link down after the initial sync"
    );

    for tick in 0..WARMUP_TICKS + MEASURED_TICKS {
        let changed = mutate::<With<Replicated>>(&mut server, period, tick);
        assert_eq!(changed, r.changed);

        let sent_before = server.world().resource::<SentBytes>().framed;
        let up_us = timed_update(&mut server);
        let (send_us, socket_us) = {
            let s = server.world().resource::<Stamps>();
            (s.us(2, 3), s.us(3, 4))
        };
        let bytes = server.world().resource::<SentBytes>().framed - sent_before;

        let target = client
            .world()
            .resource::<ClientReplicationStats>()
            .entities_changed
            + changed;
        let (mut apply_us, mut down_us, mut updates) = (0.0, 0.0, 0);
        let wait = Instant::now();
        while client
            .world()
            .resource::<ClientReplicationStats>()
            .entities_changed
            < target
        {
            down_us += timed_update(&mut client);
            apply_us += client.world().resource::<Stamps>().us(0, 1);
            updates += 1;
            assert!(
                wait.elapsed() < deadline(),
                "replicon tick {tick} never arrived"
            );
        }
        if tick >= WARMUP_TICKS {
            let t = &mut r.replicon;
            t.send_us.push(send_us);
            t.socket_us.push(socket_us);
            t.up_update_us.push(up_us);
            t.apply_us.push(apply_us);
            t.down_update_us.push(down_us);
            t.bytes.push(bytes as f64);
            t.split_ticks += usize::from(updates > 1);
        }
    }
    assert!(
        replicon_linked(&mut server, &mut client),
        "replicon link down after measuring"
    );
    assert_eq!(count::<(With<Remote>, With<Transform>)>(&mut client), n);
    assert_eq!(
        sum_x::<With<Replicated>>(&mut server),
        sum_x::<With<Remote>>(&mut client),
        "replicon client transforms differ"
    );
}

// ---------------------------------------------------------------------------------------------
// memcpy

fn memcpy_us(n: usize) -> f64 {
    let src: Vec<u8> = (0..n * PAIR_BYTES).map(|i| i as u8).collect();
    let mut dst = vec![0u8; n * PAIR_BYTES];
    let samples: Vec<f64> = (0..50)
        .map(|_| {
            let start = Instant::now();
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
            micros(start.elapsed())
        })
        .collect();
    median(&samples)
}

fn criterion_memcpy(c: &mut Criterion, sizes: &[usize]) {
    let mut group = c.benchmark_group("memcpy N x 48 B");
    for &n in sizes {
        let src = vec![7u8; n * PAIR_BYTES];
        let mut dst = vec![0u8; n * PAIR_BYTES];
        group.bench_function(format!("{n}"), |b| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------

/// Ticks measured under callgrind (instruction counts do not drift: a few suffice).
const CALLGRIND_TICKS: (usize, usize) = (3, 10);

/// `MIRROR_BENCH_CALLGRIND=NxP` (say `10000x10`): only our side of that case, a few ticks, for
/// `benches/callgrind.sh` to count instructions in; prints what to divide them by.
fn callgrind_case(case: &str) {
    let (n, period) = parse_case(case);
    let mut r = CaseResult::new(n, period);
    run_ours_ticks(n, period, CALLGRIND_TICKS, &mut r);
    println!(
        "callgrind case {}: measured_ticks={} changed_per_tick={}",
        label(n, period),
        CALLGRIND_TICKS.1,
        r.changed
    );
}

fn label(n: usize, period: usize) -> String {
    format!("{}k × {} %", n / 1000, 100 / period)
}

/// One library's side of a case. Each runs in a child process of its own (this binary again,
/// with [`SIDE`] set), so that neither library's allocations and caches carry the other's or an
/// earlier case's history: run one after the other in one process, replicon's apply at 100k ×
/// 10 % took 800 or 1,400 µs depending on what our side had allocated before it.
#[derive(Clone, Copy)]
enum Side {
    Ours,
    Replicon,
}

/// `MIRROR_BENCH_SIDE=ours|replicon:NxP`: run that side of that case and print its samples.
const SIDE: &str = "MIRROR_BENCH_SIDE";

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Replicon => "replicon",
        }
    }

    /// Run this side of `r`'s case in a child process and read its samples into `r`.
    fn run_in_child(self, r: &mut CaseResult) {
        let out = std::process::Command::new(std::env::current_exe().expect("this binary"))
            .env(SIDE, format!("{}:{}x{}", self.name(), r.n, r.n / r.changed))
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("start the benchmark's child process");
        assert!(out.status.success(), "{} side failed", self.name());
        let text = String::from_utf8(out.stdout).expect("UTF-8 samples");
        let field = |name: &str| -> Vec<f64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("the child printed no {name}"))
                .split_whitespace()
                .map(|v| v.parse().expect("a number"))
                .collect()
        };
        let scalar = |name: &str| field(name).first().copied().unwrap_or_default();
        let ticks = Ticks {
            send_us: field("send_us"),
            socket_us: field("socket_us"),
            up_update_us: field("up_update_us"),
            apply_us: field("apply_us"),
            down_update_us: field("down_update_us"),
            bytes: field("bytes"),
            split_ticks: scalar("split_ticks") as usize,
        };
        match self {
            Side::Ours => {
                r.ours = ticks;
                r.ours_sync_ms = scalar("sync_ms");
                r.ours_sync_tx = scalar("sync_tx") as u64;
            }
            Side::Replicon => {
                r.replicon = ticks;
                r.replicon_sync_ms = scalar("sync_ms");
                r.replicon_sync_ticks = scalar("sync_ticks") as usize;
                let b = field("buffers");
                r.replicon_buffers = (b[0] as usize, b[1] as usize);
            }
        }
    }

    /// In the child: run this side of case `NxP` and print its samples, one field per line.
    fn run_here(self, case: &str) {
        let (n, period) = parse_case(case);
        let mut r = CaseResult::new(n, period);
        let print = |name: &str, values: &[f64]| {
            let values: Vec<String> = values.iter().map(f64::to_string).collect();
            println!("{name} {}", values.join(" "));
        };
        let ticks = match self {
            Side::Ours => {
                run_ours(n, period, &mut r);
                print("sync_ms", &[r.ours_sync_ms]);
                print("sync_tx", &[r.ours_sync_tx as f64]);
                &r.ours
            }
            Side::Replicon => {
                run_replicon(n, period, &mut r);
                print("sync_ms", &[r.replicon_sync_ms]);
                print("sync_ticks", &[r.replicon_sync_ticks as f64]);
                let (a, b) = r.replicon_buffers;
                print("buffers", &[a as f64, b as f64]);
                &r.replicon
            }
        };
        print("send_us", &ticks.send_us);
        print("socket_us", &ticks.socket_us);
        print("up_update_us", &ticks.up_update_us);
        print("apply_us", &ticks.apply_us);
        print("down_update_us", &ticks.down_update_us);
        print("bytes", &ticks.bytes);
        print("split_ticks", &[ticks.split_ticks as f64]);
    }
}

/// `N` and `1/f` of a case written `NxP`.
fn parse_case(case: &str) -> (usize, usize) {
    let (n, period) = case
        .split_once('x')
        .and_then(|(n, p)| Some((n.parse::<usize>().ok()?, p.parse::<usize>().ok()?)))
        .expect("a case is NxP, for example 10000x10");
    assert!(period > 0 && n % period == 0, "N must be a multiple of P");
    (n, period)
}

fn main() {
    init_logging();
    if let Ok(case) = std::env::var("MIRROR_BENCH_CALLGRIND") {
        return callgrind_case(&case);
    }
    if let Ok(side) = std::env::var(SIDE) {
        return match side.split_once(':') {
            Some(("ours", case)) => Side::Ours.run_here(case),
            Some(("replicon", case)) => Side::Replicon.run_here(case),
            _ => panic!("{SIDE}=ours|replicon:NxP"),
        };
    }
    let quick = std::env::var_os("MIRROR_BENCH_QUICK").is_some();
    let only_assets = std::env::var_os("MIRROR_BENCH_ASSETS_ONLY").is_some();
    let load_before = load_average();
    let cases: Vec<(usize, usize)> = CASES
        .iter()
        .copied()
        .filter(|&(n, _)| !only_assets && (!quick || n <= 10_000))
        .collect();

    let (bare, with) = run_asset_cases();

    let mut results = Vec::new();
    for &(n, period) in &cases {
        assert_eq!(n % period, 0);
        let mut r = CaseResult::new(n, period);
        for side in [Side::Ours, Side::Replicon] {
            eprintln!("{}: {} ...", label(n, period), side.name());
            side.run_in_child(&mut r);
        }
        r.memcpy_us = memcpy_us(n);
        results.push((period, r));
    }

    let mut sizes: Vec<usize> = cases.iter().map(|c| c.0).collect();
    sizes.dedup();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    criterion_memcpy(&mut criterion, &sizes);

    println!(
        "\nLoad average (1, 5, 15 min) before / after the run: {load_before} / {}. The machine may be \
         shared: compare columns within this run.",
        load_average()
    );
    println!(
        "\nUpstream, µs per tick (medians of {MEASURED_TICKS} ticks after {WARMUP_TICKS} warm-up; one Downstream over \
         loopback; single-threaded schedules)\n"
    );
    println!(
        "| case | changed | ours: mirror send | ours: whole update | replicon: Send set | replicon: socket writes | \
         replicon: whole update | replicon Send / ours send | replicon update / ours update | memcpy N×48 B | ours send / memcpy |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (period, r) in &results {
        let (ours, rep) = (&r.ours, &r.replicon);
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1}× | {:.1}× | {:.1} | {:.1}× |",
            label(r.n, *period),
            r.changed,
            median(&ours.send_us),
            median(&ours.up_update_us),
            median(&rep.send_us),
            median(&rep.socket_us),
            median(&rep.up_update_us),
            median(&rep.send_us) / median(&ours.send_us),
            median(&rep.up_update_us) / median(&ours.up_update_us),
            r.memcpy_us,
            median(&ours.send_us) / r.memcpy_us,
        );
    }

    println!(
        "\nDownstream, µs per tick (medians; sections summed over the updates a tick needed)\n"
    );
    println!(
        "| case | ours: apply | ours: whole updates | replicon: apply | replicon: whole updates | replicon apply / ours apply | \
         ticks needing >1 update (ours / replicon) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (period, r) in &results {
        let (ours, rep) = (&r.ours, &r.replicon);
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1}× | {} / {} |",
            label(r.n, *period),
            median(&ours.apply_us),
            median(&ours.down_update_us),
            median(&rep.apply_us),
            median(&rep.down_update_us),
            median(&rep.apply_us) / median(&ours.apply_us),
            ours.split_ticks,
            rep.split_ticks,
        );
    }

    let (n, period) = ASSET_CASE;
    println!(
        "\nUpstream with assets, µs per tick ({}k entities, {} % of transforms changing, one entity \
         despawned per tick; with assets every entity has a Mesh3d ({SHARED_MESHES} shared meshes, \
         and the despawned ones a mesh of their own, deleted with them) and a \
         MeshMaterial3d ({MATERIALS} materials))\n",
        n / 1000,
        100 / period
    );
    println!("| | mirror send | of which ExportAssets | whole update |");
    println!("|---|---:|---:|---:|");
    for (what, r) in [("without assets", &bare), ("with assets", &with)] {
        println!(
            "| {what} | {:.0} | {:.0} | {:.0} |",
            median(&r.0),
            median(&r.1),
            median(&r.2)
        );
    }
    println!(
        "| with / without | {:.2}× | | {:.2}× |",
        median(&with.0) / median(&bare.0),
        median(&with.2) / median(&bare.2)
    );

    println!("\nBytes and initial sync\n");
    println!(
        "| case | ours bytes/tick | ours bytes/changed entity | overhead over 48 B | replicon bytes/tick | \
         replicon bytes/changed entity | ours initial sync ms | replicon initial sync ms (ticks) | replicon socket buffers snd/rcv |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (period, r) in &results {
        let (ours, rep) = (&r.ours, &r.replicon);
        let per = |b: f64| b / r.changed as f64;
        let ours_per = per(median(&ours.bytes));
        println!(
            "| {} | {:.0} | {:.2} | {:.3} % | {:.0} | {:.2} | {:.1} ({} transactions) | {:.1} ({}) | {} / {} MiB |",
            label(r.n, *period),
            median(&ours.bytes),
            ours_per,
            (ours_per / PAIR_BYTES as f64 - 1.0) * 100.0,
            median(&rep.bytes),
            per(median(&rep.bytes)),
            r.ours_sync_ms,
            r.ours_sync_tx,
            r.replicon_sync_ms,
            r.replicon_sync_ticks,
            r.replicon_buffers.0 >> 20,
            r.replicon_buffers.1 >> 20,
        );
    }
}
