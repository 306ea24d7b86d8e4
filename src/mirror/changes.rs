//! Whether any shared entity changed: a cheap test before a `Changed<C>` query, answering
//! whether a query of `&C` filtered by `(With<Shared>, Or<(Changed<C>, Added<SharedId>)>)` would
//! select anything, by reading the change-tick column of `C` in the matching tables directly, and
//! a count of `SharedId` insertions ([`ShareEpoch`]) for the `Added<SharedId>` half.
//!
//! Bevy has no change ticks per archetype or table, so a `Changed<C>` query looks at every entity
//! with `C`, one filter call at a time: about 25 instructions per entity for this filter, every
//! send tick, for every mirrored component type and every asset exporter. A world of 10,000
//! shared entities with a mesh and a material paid four such scans per tick for components that
//! almost never change. Comparing the tick columns as plain slices, 64 rows at a time without
//! branches, costs about 1.5 instructions per entity, and stops at the first change: a type that
//! changed is then iterated by its query as before, one that did not is skipped. Whether an
//! entity was shared meanwhile is one comparison: [`SharedId`]'s insert hook counts insertions
//! in [`ShareEpoch`], and a scan that sees a new count answers yes (also when the newly shared
//! entity has no `C`: the query then finds nothing, which costs what it did before).
//!
//! [`anything_changed`] is the first half of a piped system
//! (`anything_changed::<C>.pipe(system)`): it reads the world (`&World`, so nothing writes it
//! meanwhile) with the same change ticks as the query of the second half. A component stored in
//! sparse sets always answers yes (the query decides).

use std::cell::UnsafeCell;

use bevy::ecs::change_detection::{MAX_CHANGE_AGE, Tick};
use bevy::ecs::component::{ComponentId, StorageType};
use bevy::ecs::lifecycle::HookContext;
use bevy::ecs::query::QueryState;
use bevy::ecs::system::SystemChangeTick;
use bevy::ecs::world::DeferredWorld;
use bevy::prelude::*;

use super::{Shared, SharedId};

/// Entities with every component the scan needs (tables whose columns are read).
type Candidates<C> = (With<Shared>, With<SharedId>, With<C>);

/// How many times a [`SharedId`] was inserted in this world (counted by its insert hook).
#[derive(Resource, Debug, Default)]
pub(crate) struct ShareEpoch(u64);

/// [`SharedId`]'s insert hook: one more entity shared (or shared again).
pub(crate) fn count_share(mut world: DeferredWorld, _: HookContext) {
    if let Some(mut epoch) = world.get_resource_mut::<ShareEpoch>() {
        epoch.0 += 1;
    }
}

/// The scan's cached state (`Local` of [`anything_changed`]).
pub(crate) struct Scan<C: Component> {
    /// Built once the component types are registered.
    state: Option<(QueryState<(), Candidates<C>>, ComponentId)>,
    /// [`ShareEpoch`] when the scan last ran (0, as the count starts, before its first run).
    epoch: u64,
}

impl<C: Component> Default for Scan<C> {
    fn default() -> Self {
        Scan {
            state: None,
            epoch: 0,
        }
    }
}

/// System: whether a shared entity's `C` changed, or an entity was shared, since it last ran.
pub(crate) fn anything_changed<C: Component>(
    world: &World,
    ticks: SystemChangeTick,
    mut scan: Local<Scan<C>>,
) -> bool {
    // Newly shared entities: without the counter (a world without the mirror plugin), always.
    let Some(epoch) = world.get_resource::<ShareEpoch>().map(|e| e.0) else {
        return true;
    };
    if std::mem::replace(&mut scan.epoch, epoch) != epoch {
        return true;
    }
    let Some(c_id) = world.component_id::<C>() else {
        return false;
    };
    let table_stored = world
        .components()
        .get_info(c_id)
        .is_some_and(|i| i.storage_type() == StorageType::Table);
    if !table_stored {
        return true;
    }
    if scan.state.is_none() {
        let Some(state) = world.try_query_filtered::<(), Candidates<C>>() else {
            return false;
        };
        scan.state = Some((state, c_id));
    }
    let Some((state, c_id)) = scan.state.as_mut() else {
        return false;
    };
    state.update_archetypes(world);
    let newer = Newer::new(ticks.last_run(), ticks.this_run());
    let tables = &world.storages().tables;
    // `Shared`, `SharedId` and `C` live in tables, so every archetype of a matched table matches.
    state
        .matched_tables()
        .filter_map(|t| tables.get(t))
        .any(|table| {
            table
                .get_changed_ticks_slice_for(*c_id)
                .is_some_and(|changed| any_newer(changed, newer))
        })
}

/// Whether a row's tick in `changed` is newer (kept out of line, so profiles show the scan's
/// cost).
#[inline(never)]
fn any_newer(changed: &[UnsafeCell<Tick>], newer: Newer) -> bool {
    // SAFETY: `UnsafeCell<Tick>` has the layout of `Tick`, and the caller reads the whole world
    // (`&World`), so no system writes a tick while this borrow lives.
    let changed = unsafe { ticks_of(changed) };
    // 64 rows at a time, without branches (they vectorize), stopping after a chunk with a change.
    const CHUNK: usize = 64;
    changed
        .chunks(CHUNK)
        .any(|chunk| chunk.iter().fold(false, |any, &c| any | newer.test(c)))
}

/// A column's ticks as plain values.
///
/// # Safety
/// Nothing may write the ticks while the returned slice lives.
unsafe fn ticks_of(cells: &[UnsafeCell<Tick>]) -> &[Tick] {
    // SAFETY: `UnsafeCell<T>` is `repr(transparent)`; the caller rules out writes.
    unsafe { &*(std::ptr::from_ref(cells) as *const [Tick]) }
}

/// `Tick::is_newer_than`, with its constant part computed once.
#[derive(Clone, Copy)]
struct Newer {
    this_run: u32,
    since_last_run: u32,
}

impl Newer {
    fn new(last_run: Tick, this_run: Tick) -> Self {
        Newer {
            this_run: this_run.get(),
            since_last_run: this_run
                .get()
                .wrapping_sub(last_run.get())
                .min(MAX_CHANGE_AGE),
        }
    }

    /// Bevy clamps both ages to [`MAX_CHANGE_AGE`]; `since_last_run` already is, so clamping
    /// the tick's age too changes no answer (an age above it is never below `since_last_run`),
    /// and without it the comparison vectorizes.
    #[inline(always)]
    fn test(self, tick: Tick) -> bool {
        self.since_last_run > self.this_run.wrapping_sub(tick.get())
    }
}

#[cfg(test)]
mod tests {
    use bevy::ecs::component::Mutable;

    use super::*;

    #[derive(Component)]
    struct Table(u32);
    #[derive(Component)]
    #[component(storage = "SparseSet")]
    struct Sparse;

    /// What the scan answered, and what the filter it stands for selected, in the same run.
    #[derive(Resource, Default)]
    struct Answers(Vec<(bool, usize)>);

    /// The filter the scan stands for, on entities with `C` (the collectors' and exporters'
    /// queries fetch `&C`).
    type Filter<C> = (With<Shared>, With<C>, Or<(Changed<C>, Added<SharedId>)>);

    fn both<C: Component>(
        In(any): In<bool>,
        filter: Query<(), Filter<C>>,
        mut answers: ResMut<Answers>,
    ) {
        answers.0.push((any, filter.iter().count()));
    }

    /// One update: the scan's answer and the number of entities the filter selected.
    fn answer(app: &mut App) -> (bool, usize) {
        app.update();
        app.world_mut()
            .resource_mut::<Answers>()
            .0
            .pop()
            .expect("the systems ran")
    }

    /// The scan says yes exactly when [`Filter`] selects something, across several tables and
    /// chunk boundaries.
    fn agrees_with_the_filter<C: Component<Mutability = Mutable>>(
        make: fn(u32) -> C,
        get: fn(&mut C) -> &mut u32,
    ) {
        let mut app = App::new();
        app.init_resource::<Answers>()
            .init_resource::<ShareEpoch>()
            .add_systems(Update, anything_changed::<C>.pipe(both::<C>));
        assert_eq!(answer(&mut app), (false, 0), "nothing exists yet");
        let world = app.world_mut();
        // 200 shared entities in one table, 3 in another (an extra `Name`), and some that do not
        // qualify: not shared, or without `C`.
        let mut shared: Vec<Entity> = (0..200)
            .map(|i| world.spawn((Shared, SharedId(i), make(i as u32))).id())
            .collect();
        shared.extend((200..203).map(|i| {
            world
                .spawn((Shared, SharedId(i), make(0), Name::new("x")))
                .id()
        }));
        let unshared = world.spawn(make(0)).id();
        let without = world.spawn((Shared, SharedId(500))).id();
        assert_eq!(answer(&mut app), (true, 203), "everything is new");
        assert_eq!(answer(&mut app), (false, 0), "nothing changed since");

        // A change in any row (first, at a chunk's edge, in the last partial chunk, in the
        // second table) is seen, and nothing else.
        for i in [0usize, 63, 64, 130, 199, 201] {
            *get(&mut app
                .world_mut()
                .get_mut::<C>(shared[i])
                .expect("spawned with C")) += 1;
            assert_eq!(answer(&mut app), (true, 1), "a change in row {i}");
            assert_eq!(answer(&mut app), (false, 0));
        }
        // Changes that do not count: an entity that is not shared, or reads.
        let world = app.world_mut();
        *get(&mut world.get_mut::<C>(unshared).expect("spawned with C")) += 1;
        let _ = world.get::<C>(shared[5]);
        world.entity_mut(without).insert(Name::new("y"));
        assert_eq!(answer(&mut app), (false, 0));
        // Shared again (unshared, then a new `SharedId`) without touching `C`.
        let mut e = app.world_mut().entity_mut(shared[150]);
        e.remove::<SharedId>();
        e.insert(SharedId(1000));
        assert_eq!(answer(&mut app), (true, 1), "a newly shared entity");
        assert_eq!(answer(&mut app), (false, 0));
        // An entity shared without `C`: the scan cannot tell and lets the query look.
        app.world_mut().spawn((Shared, SharedId(1001)));
        assert_eq!(answer(&mut app), (true, 0), "shared without C");
        assert_eq!(answer(&mut app), (false, 0));
    }

    #[test]
    fn without_the_share_counter_the_query_always_looks() {
        let mut app = App::new();
        app.init_resource::<Answers>()
            .add_systems(Update, anything_changed::<Table>.pipe(both::<Table>));
        app.world_mut().spawn((Shared, SharedId(1), Table(0)));
        assert_eq!(answer(&mut app), (true, 1));
        assert_eq!(answer(&mut app), (true, 0));
    }

    #[test]
    fn table_components_agree_with_the_filter() {
        agrees_with_the_filter::<Table>(Table, |c| &mut c.0);
    }

    #[test]
    fn sparse_set_components_always_ask_the_query() {
        let mut app = App::new();
        app.init_resource::<Answers>()
            .init_resource::<ShareEpoch>()
            .add_systems(Update, anything_changed::<Sparse>.pipe(both::<Sparse>));
        app.world_mut().spawn((Shared, SharedId(1), Sparse));
        assert_eq!(answer(&mut app), (true, 1));
        assert_eq!(answer(&mut app), (true, 0));
    }
}
