//! [`Users`]: which shared entities use which exported thing (a mesh, an inverse-bindposes
//! asset, an environment map), kept up to date from changes and removals, so what an exporter
//! does per frame follows what changed, not the size of the world.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use bevy::prelude::*;
use bevy::tasks::{Task, futures::check_ready};

/// Take the tasks of `tasks` that finished, with their results (the others stay).
pub(crate) fn take_finished<K: Copy + Eq + Hash, T>(
    tasks: &mut HashMap<K, Task<T>>,
) -> Vec<(K, T)> {
    let mut done = Vec::new();
    tasks.retain(|key, task| match check_ready(task) {
        Some(result) => {
            done.push((*key, result));
            false
        }
        None => true,
    });
    done
}

/// Entity → the key it uses, and key → the entities using it (each entity uses one key).
#[derive(Debug)]
pub(crate) struct Users<K> {
    by_entity: HashMap<Entity, K>,
    by_key: HashMap<K, HashSet<Entity>>,
}

impl<K> Default for Users<K> {
    fn default() -> Self {
        Users {
            by_entity: HashMap::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> Users<K> {
    /// `e` now uses `key`. Returns the key it used before if nobody uses that one any more.
    pub(crate) fn set(&mut self, e: Entity, key: K) -> Option<K> {
        let old = self.by_entity.insert(e, key);
        if old == Some(key) {
            return None;
        }
        self.by_key.entry(key).or_default().insert(e);
        old.filter(|old| self.release(e, *old))
    }

    /// `e` uses nothing any more. Returns its key if nobody uses that one any more.
    pub(crate) fn remove(&mut self, e: Entity) -> Option<K> {
        let old = self.by_entity.remove(&e)?;
        self.release(e, old).then_some(old)
    }

    /// Whether some entity uses `key`.
    pub(crate) fn is_used(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// The entities that use `key`.
    pub(crate) fn users_of(&self, key: &K) -> impl Iterator<Item = Entity> + '_ {
        self.by_key.get(key).into_iter().flatten().copied()
    }

    /// Drop `e` from `old`'s users; whether `old` has none left.
    fn release(&mut self, e: Entity, old: K) -> bool {
        let Some(set) = self.by_key.get_mut(&old) else {
            return false;
        };
        set.remove(&e);
        if set.is_empty() {
            self.by_key.remove(&old);
            return true;
        }
        false
    }
}

/// Reference counts of keys (images that exported assets refer to).
#[derive(Debug)]
pub(crate) struct RefCounts<K>(HashMap<K, u32>);

impl<K> Default for RefCounts<K> {
    fn default() -> Self {
        RefCounts(HashMap::new())
    }
}

impl<K: Copy + Eq + Hash> RefCounts<K> {
    /// Replace references `old` by `new`; returns the keys nothing refers to any more.
    pub(crate) fn replace(&mut self, old: &[K], new: &[K]) -> Vec<K> {
        for k in new {
            *self.0.entry(*k).or_default() += 1;
        }
        let mut gone = Vec::new();
        for k in old {
            if let Some(n) = self.0.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    self.0.remove(k);
                    gone.push(*k);
                }
            }
        }
        gone
    }

    /// Whether anything refers to `key`.
    pub(crate) fn is_used(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }
}

/// The ids of the assets Bevy modified, from this frame's asset events (read them every frame:
/// a reader that skips frames loses them).
pub(crate) fn modified<A: Asset>(
    events: &mut MessageReader<AssetEvent<A>>,
) -> impl Iterator<Item = AssetId<A>> {
    events.read().filter_map(|e| match e {
        AssetEvent::Modified { id } => Some(*id),
        _ => None,
    })
}

/// What a Downstream system that reads slices of buffers (skins, instances) works on this
/// frame: the entities that waited, the ones whose component changed, and the users of every
/// buffer whose bytes arrived or were replaced (`users`: entity, its link, the buffer it reads);
/// sorted, without repeats.
pub(crate) fn buffer_readers(
    pending: &mut HashSet<Entity>,
    changed: impl Iterator<Item = Entity>,
    arrived: &mut MessageReader<crate::assets::sync::BufferArrived>,
    users: impl Iterator<Item = (Entity, Entity, u64)>,
) -> Vec<Entity> {
    let mut work: Vec<Entity> = pending.drain().collect();
    work.extend(changed);
    let arrived: HashSet<(Entity, u64)> = arrived.read().map(|a| (a.link, a.buffer)).collect();
    if !arrived.is_empty() {
        work.extend(
            users
                .filter(|(_, link, buffer)| arrived.contains(&(*link, *buffer)))
                .map(|(e, _, _)| e),
        );
    }
    work.sort_unstable();
    work.dedup();
    work
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_report_the_key_nobody_uses_any_more() {
        let mut u = Users::default();
        let (a, b) = (
            Entity::from_raw_u32(1).unwrap(),
            Entity::from_raw_u32(2).unwrap(),
        );
        assert_eq!(u.set(a, 'x'), None);
        assert_eq!(u.set(b, 'x'), None);
        assert_eq!(
            u.set(a, 'x'),
            None,
            "setting the same key again changes nothing"
        );
        assert_eq!(u.set(a, 'y'), None, "b still uses x");
        assert_eq!(u.users_of(&'x').collect::<Vec<_>>(), vec![b]);
        assert_eq!(u.remove(b), Some('x'));
        assert!(!u.is_used(&'x'));
        assert_eq!(u.set(a, 'z'), Some('y'));
        assert_eq!(u.users_of(&'z').collect::<Vec<_>>(), vec![a]);
        assert_eq!(u.remove(b), None, "b is gone already");
        assert_eq!(u.remove(a), Some('z'));
    }

    #[test]
    fn ref_counts_report_what_nothing_refers_to() {
        let mut r = RefCounts::default();
        assert!(r.replace(&[], &[1, 2]).is_empty());
        assert!(r.replace(&[], &[2]).is_empty());
        assert_eq!(r.replace(&[1, 2], &[3]), vec![1]);
        assert!(r.is_used(&2) && r.is_used(&3) && !r.is_used(&1));
        assert_eq!(r.replace(&[2, 3], &[]), vec![2, 3]);
        assert!(r.replace(&[7], &[]).is_empty(), "unknown keys are ignored");
    }
}
