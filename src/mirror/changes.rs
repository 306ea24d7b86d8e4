//! Whether any shared entity changed: a cheap test before a `Changed<C>` query, answering
//! whether a query of `&C` filtered by `(With<Shared>, Or<(Changed<C>, Added<SharedId>)>)` would
//! select anything, by reading the change-tick columns of the matching tables directly.
//!
//! Bevy has no change ticks per archetype or table, so a `Changed<C>` query looks at every entity
//! with `C`, one filter call at a time: about 25 instructions per entity for this filter, every
//! send tick, for every mirrored component type and every asset exporter. A world of 10,000
//! shared entities with a mesh and a material paid four such scans per tick for components that
//! almost never change. Comparing the tick columns as plain slices, 64 rows at a time without
//! branches, costs about 5 instructions per entity, and stops at the first change: a type that
//! changed is then iterated by its query as before, one that did not is skipped.
//!
//! [`anything_changed`] is the first half of a piped system
//! (`anything_changed::<C>.pipe(system)`): it reads the world (`&World`, so nothing writes it
//! meanwhile) with the same change ticks as the query of the second half. A component stored in
//! sparse sets always answers yes (the query decides).

use std::cell::UnsafeCell;

use bevy::ecs::change_detection::{MAX_CHANGE_AGE, Tick};
use bevy::ecs::component::{ComponentId, StorageType};
use bevy::ecs::query::QueryState;
use bevy::ecs::system::SystemChangeTick;
use bevy::prelude::*;

use super::{Shared, SharedId};

/// Entities with every component the scan needs (tables whose columns are read).
type Candidates<C> = (With<Shared>, With<SharedId>, With<C>);

/// The scan's cached state (`Local` of [`anything_changed`]).
pub(crate) struct Scan<C: Component> {
    /// Built once the component types are registered.
    state: Option<(QueryState<(), Candidates<C>>, ComponentId, ComponentId)>,
}

impl<C: Component> Default for Scan<C> {
    fn default() -> Self {
        Scan { state: None }
    }
}

/// System: whether a shared entity's `C` changed, or an entity was shared, since it last ran.
pub(crate) fn anything_changed<C: Component>(
    world: &World,
    ticks: SystemChangeTick,
    mut scan: Local<Scan<C>>,
) -> bool {
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
        let (Some(state), Some(id_id)) = (
            world.try_query_filtered::<(), Candidates<C>>(),
            world.component_id::<SharedId>(),
        ) else {
            return false;
        };
        scan.state = Some((state, c_id, id_id));
    }
    let Some((state, c_id, id_id)) = scan.state.as_mut() else {
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
            match (
                table.get_changed_ticks_slice_for(*c_id),
                table.get_added_ticks_slice_for(*id_id),
            ) {
                (Some(changed), Some(added)) => any_newer(changed, added, newer),
                _ => false,
            }
        })
}

/// Whether a row's tick in `changed` or in `added` is newer (kept out of line, so profiles show
/// the scan's cost).
#[inline(never)]
fn any_newer(changed: &[UnsafeCell<Tick>], added: &[UnsafeCell<Tick>], newer: Newer) -> bool {
    // SAFETY: `UnsafeCell<Tick>` has the layout of `Tick`, and the caller reads the whole world
    // (`&World`), so no system writes a tick while these borrows live.
    let (changed, added) = unsafe { (ticks_of(changed), ticks_of(added)) };
    // 64 rows at a time, without branches (they vectorize), stopping after a chunk with a change.
    const CHUNK: usize = 64;
    changed
        .chunks(CHUNK)
        .zip(added.chunks(CHUNK))
        .any(|(changed, added)| {
            changed
                .iter()
                .zip(added)
                .fold(false, |any, (&c, &a)| any | newer.test(c) | newer.test(a))
        })
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
    }

    #[test]
    fn table_components_agree_with_the_filter() {
        agrees_with_the_filter::<Table>(Table, |c| &mut c.0);
    }

    #[test]
    fn sparse_set_components_always_ask_the_query() {
        let mut app = App::new();
        app.init_resource::<Answers>()
            .add_systems(Update, anything_changed::<Sparse>.pipe(both::<Sparse>));
        app.world_mut().spawn((Shared, SharedId(1), Sparse));
        assert_eq!(answer(&mut app), (true, 1));
        assert_eq!(answer(&mut app), (true, 0));
    }
}
