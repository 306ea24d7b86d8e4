//! Skinned meshes: Bevy's [`SkinnedMesh`] ↔ the NOODLES2 `SkinComponent` (Core component 23,
//! `spec/core/components/skin.jaw`).
//!
//! The wire form is the mirrored component [`Skin`]: the joint entities in palette order, an
//! optional skeleton root, and the inverse bind matrices as a slice of a Buffer asset (one
//! column-major `Mat4` per joint, 64 bytes each; the slice is exactly `64 × joints` bytes).
//!
//! Bevy's joint matrices (`joint world × inverse bind`, giving world-space vertices) and the
//! spec's (`inverse(mesh world) × joint world × inverse bind`, giving mesh-space vertices that
//! the mesh entity's transform then places) put every vertex in the same place.
//!
//! - **Upstream**: nothing to do beyond `Shared`. A shared entity with a [`SkinnedMesh`] gets a
//!   [`Skin`] derived from it; the [`SkinnedMeshInverseBindposes`] asset is exported once as a
//!   Buffer asset (whatever the number of skins using it), kept while a shared skin uses it,
//!   deleted when none does, and re-sent (as a new buffer) when the Bevy asset changes. A skin
//!   whose joints are not all shared cannot be represented: it is not sent (a Downstream that had
//!   it loses it) until they are. A skin with fewer inverse bind matrices than joints is not sent
//!   (logged).
//! - **Downstream**: a received [`Skin`] becomes a [`SkinnedMesh`] (plus Bevy's
//!   `DynamicSkinnedMeshBounds`) whose joints are the local mirrored entities, once its buffer
//!   has arrived, every joint has a `Transform` and the entity's mesh (if any) has arrived. A
//!   joint that has not arrived is a placeholder entity (as for a `ChildOf` parent that arrives
//!   later): the skin waits for it, then applies. A view whose length is not 64 × the joint
//!   count, a view outside its buffer, or a mesh whose joint indices (with a weight above zero)
//!   reach past the joint list (checked when the skin or the entity's `Mesh3d` changes) is
//!   refused: logged and counted in
//!   [`AssetStats`], the entity keeps no `SkinnedMesh`, and the rest of the
//!   world goes on.

use std::collections::{HashMap, HashSet};

use bevy::asset::AssetId;
use bevy::camera::visibility::DynamicSkinnedMeshBounds;
use bevy::mesh::VertexAttributeValues;
use bevy::mesh::skinning::{SkinnedMesh, SkinnedMeshInverseBindposes};
use bevy::prelude::*;

use super::export::AssetExport;
use super::sync::{AssetImport, AssetStats, BufferArrived, buffer_body, buffer_of, delete_buffer};
use super::users::{Users, buffer_readers, modified};
use super::{AssetError, OobServer};
use crate::codec::{
    AssetID, BufferAssetID, BufferView, EntityID, SkinComponent, SkinComponentFlags, SkinJointList,
};
use crate::mirror::{
    AssetRefusal, EntityIds, EntityResolver, MirrorComponent, MirrorError, Mirrored, Outgoing,
    RefusalReason, Refused, Shared, SharedId,
};

pub use noodles2::assets::MATRIX_BYTES;

/// A slice of a Buffer asset (the fields of a NOODLES2 `BufferView`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BufferSlice {
    /// The Buffer asset's `AssetID`.
    pub buffer: u64,
    /// Byte offset into the buffer.
    pub offset: u64,
    /// Byte length.
    pub length: u64,
}

/// The NOODLES2 `SkinComponent` (Core component 23) of an entity: which entities are its joints
/// and where their inverse bind matrices are.
///
/// The plugin derives it from [`SkinnedMesh`] on the Upstream and turns it into a
/// [`SkinnedMesh`] on the Downstream (see the [module docs](self)); apps normally do not touch
/// it. Spec: `spec/core/components/skin.jaw`.
#[derive(Component, Debug, Clone, PartialEq, Default)]
pub struct Skin {
    /// Joint entities, in palette order (mesh joint indices index this list).
    pub joints: Vec<Entity>,
    /// Optional root of the joint hierarchy (`flags.is_root`).
    pub skeleton_root: Option<Entity>,
    /// The inverse bind matrices: `64 × joints.len()` bytes of column-major `Mat4`s.
    pub inverse_bind_matrices: BufferSlice,
}

impl MirrorComponent for Skin {
    type Wire = SkinComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 23;
    /// `None` (not representable) while a joint is not shared or there are more than 65,535.
    fn to_wire(&self, ids: &dyn EntityIds) -> Option<SkinComponent> {
        if self.joints.len() > usize::from(u16::MAX) {
            return None;
        }
        let joints = self
            .joints
            .iter()
            .map(|j| ids.id_of(*j).map(EntityID::new))
            .collect::<Option<Vec<_>>>()?;
        let root = self.skeleton_root.and_then(|r| ids.id_of(r));
        let s = self.inverse_bind_matrices;
        Some(SkinComponent {
            flags: SkinComponentFlags::default().with_is_root(u8::from(root.is_some())),
            inverse_bind_matrices: BufferView::new(
                s.offset,
                s.length,
                BufferAssetID::new(AssetID::new(s.buffer)),
            ),
            // Without a root the field is ignored (`is_root` is 0), but it is still an entity
            // reference to the id machinery (proposals refuse unknown ids): name a joint.
            skeleton_root: EntityID::new(root.or(joints.first().map(|j| j.id.get())).unwrap_or(0)),
            joints: SkinJointList(joints),
        })
    }
    fn from_wire(w: SkinComponent, ids: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        let v = w.inverse_bind_matrices;
        Ok(Skin {
            joints: w.joints.iter().map(|j| ids.entity(j.id.get())).collect(),
            skeleton_root: (w.flags.is_root() != 0).then(|| ids.entity(w.skeleton_root.id.get())),
            inverse_bind_matrices: BufferSlice {
                buffer: v.asset_id.id.id.get(),
                offset: v.offset.get(),
                length: v.length.get(),
            },
        })
    }
}

/// Why a skin could not be turned into a Bevy [`SkinnedMesh`] (Downstream). The message names
/// the entity and the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SkinError {
    /// `inverse_bind_matrices.length` is not `64 × joints` (`skin.jaw`: "view length MUST be
    /// 64 * joint_count").
    #[error(
        "skin of entity {entity}: inverse_bind_matrices view is {length} bytes, but {joints} joints need exactly {expected} (64 per joint)"
    )]
    ViewLength {
        /// The skinned entity.
        entity: u64,
        /// The view's length in bytes.
        length: u64,
        /// The number of joints in the skin.
        joints: usize,
        /// The length the view must have (64 bytes per joint).
        expected: u128,
    },
    /// The view reaches outside its buffer, or the buffer was refused.
    #[error("skin of entity {entity}: inverse_bind_matrices: {reason}")]
    Buffer {
        /// The skinned entity.
        entity: u64,
        /// Why the matrices could not be read.
        reason: String,
    },
    /// The entity's mesh uses a joint index past the skin's joint list.
    #[error(
        "skin of entity {entity}: its mesh uses joint index {index} (vertex {vertex}), but the skin has {joints} joints"
    )]
    JointIndex {
        /// The skinned entity.
        entity: u64,
        /// The joint index the mesh uses.
        index: u16,
        /// The vertex that uses it.
        vertex: usize,
        /// The number of joints in the skin.
        joints: usize,
    },
}

/// The bytes of `matrices` on the wire (column-major f32, little-endian).
pub fn matrices_to_bytes(matrices: &[Mat4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(matrices.len() * MATRIX_BYTES as usize);
    for m in matrices {
        for x in m.to_cols_array() {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

/// The first joint index of `mesh` (with a weight above zero) that is not below `joints`, as
/// (vertex, index) (`noodles2::assets::joint_past` on Bevy's attributes).
fn joint_past(mesh: &Mesh, joints: usize) -> Option<(usize, u16)> {
    let Some(VertexAttributeValues::Uint16x4(indices)) =
        mesh.attribute(Mesh::ATTRIBUTE_JOINT_INDEX)
    else {
        return None;
    };
    let weights = match mesh.attribute(Mesh::ATTRIBUTE_JOINT_WEIGHT) {
        Some(VertexAttributeValues::Float32x4(w)) => Some(w.as_slice()),
        _ => None,
    };
    noodles2::assets::joint_past(indices, weights, joints)
}

/// What the Upstream exported for skins. Kept up to date from changes and removals, so a send
/// tick costs what changed, not the number of skinned entities.
#[derive(Resource, Default)]
pub struct SkinExport {
    /// Inverse-bindposes asset → the Buffer asset it is exported as.
    exported: HashMap<AssetId<SkinnedMeshInverseBindposes>, u64>,
    /// Which skinned entity's `Skin` uses which inverse bindposes.
    users: Users<AssetId<SkinnedMeshInverseBindposes>>,
    /// Inverse bindposes an entity stopped using (noted by observers).
    unused: Vec<AssetId<SkinnedMeshInverseBindposes>>,
    /// Skinned entity → its joints, and joint → the skinned entities naming it.
    joints: HashMap<Entity, Vec<Entity>>,
    joint_users: HashMap<Entity, HashSet<Entity>>,
    /// Skinned entities whose inverse bindposes have not loaded yet; retried on send ticks.
    waiting: HashSet<Entity>,
    /// Skinned entities with a joint that is not shared (their `Skin` is not sent); checked on
    /// send ticks.
    waiting_joints: HashSet<Entity>,
    /// Skinned entities with a joint that stopped being shared: derived again.
    recheck: HashSet<Entity>,
    /// Skinned entities that cannot be sent (logged once), until their `SkinnedMesh` changes.
    refused: HashSet<Entity>,
    /// Inverse bindposes Bevy modified since the last send tick.
    modified: HashSet<AssetId<SkinnedMeshInverseBindposes>>,
}

impl SkinExport {
    /// Entity `e` lost its `SkinnedMesh` or stopped being shared; if it is a joint, the skins
    /// naming it are derived again (they may not be representable any more).
    pub(crate) fn forget_entity(&mut self, e: Entity, unshared: bool) {
        if let Some(key) = self.users.remove(e) {
            self.unused.push(key);
        }
        self.set_joints(e, Vec::new());
        self.waiting.remove(&e);
        self.waiting_joints.remove(&e);
        self.recheck.remove(&e);
        self.refused.remove(&e);
        if unshared && let Some(skins) = self.joint_users.get(&e) {
            self.recheck.extend(skins.iter().copied());
        }
    }

    /// Skinned entity `e` now names `joints`.
    fn set_joints(&mut self, e: Entity, joints: Vec<Entity>) {
        for j in self.joints.remove(&e).unwrap_or_default() {
            if let Some(users) = self.joint_users.get_mut(&j) {
                users.remove(&e);
                if users.is_empty() {
                    self.joint_users.remove(&j);
                }
            }
        }
        for j in &joints {
            self.joint_users.entry(*j).or_default().insert(e);
        }
        if !joints.is_empty() {
            self.joints.insert(e, joints);
        }
    }
}

/// Every frame: note the inverse bindposes Bevy modified, for the next send tick.
pub(crate) fn note_modified_skins(
    mut events: MessageReader<AssetEvent<SkinnedMeshInverseBindposes>>,
    mut skins: ResMut<SkinExport>,
) {
    skins.modified.extend(modified(&mut events));
}

/// Upstream, on send ticks: derive [`Skin`] from shared [`SkinnedMesh`]es that changed (or wait
/// for something), export their inverse bindposes, and delete the buffers no skin uses any more.
#[expect(clippy::too_many_arguments, reason = "one system exports skins")]
#[expect(clippy::type_complexity, reason = "change-detection filters")]
pub(crate) fn export_skins(
    mut skins: ResMut<SkinExport>,
    mut export: ResMut<AssetExport>,
    mut out: ResMut<Outgoing>,
    mut stats: ResMut<AssetStats>,
    bindposes: Res<Assets<SkinnedMeshInverseBindposes>>,
    changed: Query<
        Entity,
        (
            With<Shared>,
            With<SkinnedMesh>,
            Or<(Changed<SkinnedMesh>, Added<SharedId>)>,
        ),
    >,
    mut users: Query<(&SkinnedMesh, &SharedId, Option<&mut Skin>), With<Shared>>,
    shared: Query<(), With<SharedId>>,
    oob: Option<Res<OobServer>>,
    mut commands: Commands,
) {
    let oob = oob.as_deref();
    let skins = &mut *skins;
    let mut todo: HashSet<Entity> = std::mem::take(&mut skins.waiting);
    for e in &changed {
        skins.refused.remove(&e);
        todo.insert(e);
    }
    // A modified inverse-bindposes asset is exported again, as a new buffer.
    for id in std::mem::take(&mut skins.modified) {
        if let Some(buffer) = skins.exported.remove(&id) {
            delete_buffer(&mut out, oob, buffer);
            todo.extend(skins.users.users_of(&id));
        }
    }
    let recheck = std::mem::take(&mut skins.recheck);
    todo.extend(recheck.iter().copied());
    for e in todo {
        let Ok((sm, id, skin)) = users.get_mut(e) else {
            continue;
        };
        if skins.refused.contains(&e) {
            continue;
        }
        let ibm_id = sm.inverse_bindposes.id();
        let Some(ibm) = bindposes.get(ibm_id) else {
            skins.waiting.insert(e);
            continue;
        };
        if ibm.len() < sm.joints.len() {
            warn!(
                "skin of entity {}: {} joints but only {} inverse bind matrices; not shared",
                id.get(),
                sm.joints.len(),
                ibm.len()
            );
            skins.refused.insert(e);
            if let Some(old) = skins.users.remove(e) {
                skins.unused.push(old);
            }
            if skin.is_some() {
                commands.entity(e).try_remove::<Skin>();
            }
            continue;
        }
        let buffer = match skins.exported.get(&ibm_id) {
            Some(&b) => b,
            None => {
                let b = export.allocate();
                let Some(body) = buffer_body(matrices_to_bytes(ibm), b, oob) else {
                    continue;
                };
                out.modify_asset((0, super::asset_type::BUFFER, b), body);
                stats.exported += 1;
                skins.exported.insert(ibm_id, b);
                b
            }
        };
        if let Some(old) = skins.users.set(e, ibm_id) {
            skins.unused.push(old);
        }
        skins.set_joints(e, sm.joints.clone());
        let new = Skin {
            joints: sm.joints.clone(),
            skeleton_root: None,
            inverse_bind_matrices: BufferSlice {
                buffer,
                offset: 0,
                length: MATRIX_BYTES * sm.joints.len() as u64,
            },
        };
        if new.joints.iter().any(|j| !shared.contains(*j)) {
            skins.waiting_joints.insert(e);
        }
        match skin {
            Some(mut s) => {
                // A joint may have been unshared: the collector decides again (and sends the
                // removal of a skin that is not representable any more).
                if *s != new || (recheck.contains(&e) && skins.waiting_joints.contains(&e)) {
                    *s = new;
                }
            }
            None => {
                commands.entity(e).try_insert(new);
            }
        }
    }
    // Skins waiting for their joints to be shared: send them once they are.
    let waiting: Vec<Entity> = skins.waiting_joints.iter().copied().collect();
    for e in waiting {
        match users.get_mut(e) {
            Ok((_, _, Some(mut skin))) => {
                if skin.joints.iter().all(|j| shared.contains(*j)) {
                    skin.set_changed();
                    skins.waiting_joints.remove(&e);
                }
            }
            // The `Skin` is inserted at the end of this system.
            Ok(_) => {}
            Err(_) => {
                skins.waiting_joints.remove(&e);
            }
        }
    }
    for id in std::mem::take(&mut skins.unused) {
        if !skins.users.is_used(&id)
            && let Some(buffer) = skins.exported.remove(&id)
        {
            delete_buffer(&mut out, oob, buffer);
        }
    }
}

/// Downstream: skins waiting for their buffer, joints or mesh.
#[derive(Resource, Default)]
pub struct SkinImport {
    pending: HashSet<Entity>,
}

/// What became of one received skin.
enum Resolved {
    /// Every check passed: the inverse bind matrices.
    Ready(Vec<Mat4>),
    /// Its buffer, a joint or its mesh has not arrived.
    Waiting,
}

/// Downstream: turn received [`Skin`]s into [`SkinnedMesh`]es.
#[expect(
    clippy::too_many_arguments,
    reason = "reads the buffers, meshes and joints a skin needs"
)]
#[expect(clippy::type_complexity, reason = "change-detection filters")]
pub(crate) fn apply_skins(
    mut state: ResMut<SkinImport>,
    import: Res<AssetImport>,
    meshes: Res<Assets<Mesh>>,
    mut bindposes: ResMut<Assets<SkinnedMeshInverseBindposes>>,
    mut stats: ResMut<AssetStats>,
    changed: Query<
        Entity,
        (
            Or<(Changed<Skin>, Changed<Mesh3d>)>,
            With<Skin>,
            With<Mirrored>,
        ),
    >,
    skins: Query<(Entity, &Skin, &Mirrored, Option<&Mesh3d>)>,
    mut buffers: MessageReader<BufferArrived>,
    arrived: Query<(), With<Transform>>,
    mut removed: RemovedComponents<Skin>,
    mut commands: Commands,
) {
    for e in removed.read() {
        state.pending.remove(&e);
        if !skins.contains(e)
            && let Ok(mut em) = commands.get_entity(e)
        {
            em.try_remove::<(SkinnedMesh, DynamicSkinnedMeshBounds)>();
        }
    }
    // Also the skins whose buffer got new bytes under the same id.
    let work = buffer_readers(
        &mut state.pending,
        changed.iter(),
        &mut buffers,
        skins
            .iter()
            .map(|(e, s, m, _)| (e, m.link, s.inverse_bind_matrices.buffer)),
    );
    for e in work {
        let Ok((_, skin, mirrored, mesh)) = skins.get(e) else {
            continue;
        };
        match resolve(
            skin,
            mirrored.link,
            mirrored.id,
            mesh,
            &import,
            &meshes,
            &arrived,
        ) {
            Ok(Resolved::Ready(ibm)) => {
                let sm = SkinnedMesh {
                    inverse_bindposes: bindposes.add(SkinnedMeshInverseBindposes::from(ibm)),
                    joints: skin.joints.clone(),
                };
                commands
                    .entity(e)
                    .try_insert((sm, DynamicSkinnedMeshBounds));
            }
            Ok(Resolved::Waiting) => {
                state.pending.insert(e);
            }
            Err(err) => {
                stats.refuse(AssetRefusal {
                    link: mirrored.link,
                    what: Refused::Skin {
                        entity: mirrored.id,
                    },
                    reason: RefusalReason::Invalid(err.to_string()),
                });
                commands
                    .entity(e)
                    .try_remove::<(SkinnedMesh, DynamicSkinnedMeshBounds)>();
            }
        }
    }
}

/// Check one received skin and read its matrices, or say what it waits for.
fn resolve(
    skin: &Skin,
    link: Entity,
    entity: u64,
    mesh: Option<&Mesh3d>,
    import: &AssetImport,
    meshes: &Assets<Mesh>,
    arrived: &Query<(), With<Transform>>,
) -> Result<Resolved, SkinError> {
    let s = skin.inverse_bind_matrices;
    let n = skin.joints.len();
    let view = BufferView::new(
        s.offset,
        s.length,
        BufferAssetID::new(AssetID::new(s.buffer)),
    );
    let buffer = match buffer_of(import, link, &view) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(Resolved::Waiting),
        Err(reason) => return Err(SkinError::Buffer { entity, reason }),
    };
    let matrices =
        noodles2::assets::inverse_bind_matrices(n, &view, &buffer).map_err(|e| match e {
            AssetError::SkinViewLength {
                length,
                joints,
                expected,
            } => SkinError::ViewLength {
                entity,
                length,
                joints,
                expected,
            },
            e => SkinError::Buffer {
                entity,
                reason: e.to_string(),
            },
        })?;
    if !skin.joints.iter().all(|j| arrived.contains(*j)) {
        return Ok(Resolved::Waiting);
    }
    if let Some(m) = mesh {
        let Some(mesh) = meshes.get(&m.0) else {
            return Ok(Resolved::Waiting);
        };
        if let Some((vertex, index)) = joint_past(mesh, n) {
            return Err(SkinError::JointIndex {
                entity,
                index,
                vertex,
                joints: n,
            });
        }
    }
    Ok(Resolved::Ready(
        matrices.iter().map(Mat4::from_cols_array).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_are_column_major_and_round_trip() {
        let m = Mat4::from_cols_array(&std::array::from_fn(|i| i as f32 + 0.5));
        let t = Mat4::from_translation(Vec3::new(7.0, 8.0, 9.0));
        let bytes = matrices_to_bytes(&[m, t]);
        assert_eq!(bytes.len(), 128);
        // The first column comes first; a translation is the last column.
        assert_eq!(&bytes[0..4], &0.5f32.to_le_bytes());
        assert_eq!(&bytes[64 + 48..64 + 52], &7.0f32.to_le_bytes());
        let view = BufferView::new(0, 128, BufferAssetID::new(AssetID::new(1)));
        let back = noodles2::assets::inverse_bind_matrices(2, &view, &bytes).unwrap();
        let back: Vec<Mat4> = back.iter().map(Mat4::from_cols_array).collect();
        assert_eq!(back, vec![m, t]);
    }

    #[test]
    fn joint_indices_past_the_palette_are_found_only_with_weight() {
        let mut mesh = Mesh::new(
            bevy::mesh::PrimitiveTopology::TriangleList,
            bevy::asset::RenderAssetUsages::default(),
        );
        mesh.insert_attribute(Mesh::ATTRIBUTE_POSITION, vec![[0.0f32; 3]; 2]);
        mesh.insert_attribute(
            Mesh::ATTRIBUTE_JOINT_INDEX,
            VertexAttributeValues::Uint16x4(vec![[0, 9, 0, 0], [1, 0, 5, 0]]),
        );
        mesh.insert_attribute(
            Mesh::ATTRIBUTE_JOINT_WEIGHT,
            vec![[1.0f32, 0.0, 0.0, 0.0], [0.5, 0.25, 0.25, 0.0]],
        );
        // Joint 9 has no weight; joint 5 of vertex 1 has.
        assert_eq!(joint_past(&mesh, 2), Some((1, 5)));
        assert_eq!(joint_past(&mesh, 6), None);
    }
}
