//! Instances (`InstanceComponent`, `spec/core/components/instance.jaw`) decoded without an
//! engine: the view checked against its buffer and the instance count, both layouts
//! (`FullFloatInstance`, 64 bytes, and the quantized `ReducedInstance`, 24 bytes) read into one
//! [`Instance`] form, every value checked.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{AssetError, view_bytes};
use crate::codec as w;

/// Bytes of one `FullFloatInstance`.
pub const FULL_FLOAT_BYTES: u64 = 64;
/// Bytes of one `ReducedInstance`.
pub const REDUCED_BYTES: u64 = 24;

/// One instance: where the mesh is drawn, turned and scaled (in the entity's local space), and
/// which part of its material's textures it shows. The layout is the wire's `FullFloatInstance`
/// (four `vec4<f32>`), so a slice of these is also what a GPU instance buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Instance {
    /// Translation `(x, y, z, unused)`.
    pub position: [f32; 4],
    /// Rotation as a unit quaternion `(x, y, z, w)`.
    pub rotation: [f32; 4],
    /// Texture coordinates transform: translation `(u, v)`, then scale `(u, v)`: a vertex's
    /// `uv` becomes `uv * scale + translation`.
    pub texture: [f32; 4],
    /// Scale `(x, y, z, unused)`.
    pub scale: [f32; 4],
}

impl Default for Instance {
    fn default() -> Self {
        Instance {
            position: [0.0; 4],
            rotation: [0.0, 0.0, 0.0, 1.0],
            texture: [0.0, 0.0, 1.0, 1.0],
            scale: [1.0, 1.0, 1.0, 0.0],
        }
    }
}

/// Bytes of one instance of layout `ty`.
pub fn instance_stride(ty: w::InstanceType) -> u64 {
    match ty {
        w::InstanceType::FullFloat => FULL_FLOAT_BYTES,
        w::InstanceType::Reduced => REDUCED_BYTES,
    }
}

/// The instances `c` describes, read from `buffer` (the whole content of its Buffer asset).
///
/// Refused: a view that is not exactly `instance_count × stride` bytes or that escapes its
/// buffer, an unknown layout, a value that is not finite (or quantization ranges that are not),
/// and a rotation of length zero. Rotations are normalized. Memory: one [`Instance`] (64 bytes)
/// per instance, at most 2.7 times the received view (Reduced instances are 24 bytes).
pub fn decode_instances(
    c: &w::InstanceComponent,
    buffer: &[u8],
) -> Result<Vec<Instance>, AssetError> {
    let ty = <w::InstanceType as crate::codec::WireEnum>::from_repr(c.instance_type).ok_or(
        AssetError::UnknownValue {
            asset: "instance",
            field: "instance_type".into(),
            value: u64::from(c.instance_type),
        },
    )?;
    let count = c.instance_count.get();
    let stride = instance_stride(ty);
    let length = c.view.length.get();
    let expected = u128::from(count) * u128::from(stride);
    if u128::from(length) != expected {
        return Err(AssetError::InstanceViewLength {
            length,
            count,
            stride,
            expected,
        });
    }
    let bytes = view_bytes("instance", &c.view, buffer)?;
    let mut out = Vec::with_capacity(count as usize);
    match ty {
        w::InstanceType::FullFloat => {
            for (i, b) in bytes.chunks_exact(FULL_FLOAT_BYTES as usize).enumerate() {
                let f = |k: usize| f32::from_le_bytes([b[k], b[k + 1], b[k + 2], b[k + 3]]);
                let v = |k: usize| [f(k), f(k + 4), f(k + 8), f(k + 12)];
                let inst = Instance {
                    position: v(0),
                    rotation: v(16),
                    texture: v(32),
                    scale: v(48),
                };
                out.push(checked(inst, i)?);
            }
        }
        w::InstanceType::Reduced => {
            let min = vec3(&c.quant_bb_min);
            let max = vec3(&c.quant_bb_max);
            let scale = [c.quant_scale.x.get(), c.quant_scale.y.get()];
            for (field, v) in [
                ("quant_bb_min", &min[..]),
                ("quant_bb_max", &max[..]),
                ("quant_scale", &scale[..]),
            ] {
                if let Some(value) = v.iter().find(|x| !x.is_finite()) {
                    return Err(AssetError::InstanceNotFinite {
                        instance: None,
                        field,
                        value: *value,
                    });
                }
            }
            for (i, b) in bytes.chunks_exact(REDUCED_BYTES as usize).enumerate() {
                let u = |k: usize| f32::from(u16::from_le_bytes([b[k], b[k + 1]])) / 65535.0;
                let s = |k: usize| {
                    (f32::from(i16::from_le_bytes([b[k], b[k + 1]])) / 32767.0).max(-1.0)
                };
                let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
                let p = [0, 1, 2].map(|a| lerp(min[a], max[a], u(a * 2)));
                let sc = lerp(scale[0], scale[1], u(6));
                let inst = Instance {
                    position: [p[0], p[1], p[2], 0.0],
                    rotation: [s(8), s(10), s(12), s(14)],
                    texture: [s(16), s(18), s(20), s(22)],
                    scale: [sc, sc, sc, 0.0],
                };
                out.push(checked(inst, i)?);
            }
        }
    }
    Ok(out)
}

fn vec3(v: &w::Vec3) -> [f32; 3] {
    [v.x.get(), v.y.get(), v.z.get()]
}

/// `inst` (instance number `i`) with its rotation normalized, or why it cannot be used.
fn checked(mut inst: Instance, i: usize) -> Result<Instance, AssetError> {
    for (field, v) in [
        ("position", inst.position),
        ("rotation", inst.rotation),
        ("texture", inst.texture),
        ("scale", inst.scale),
    ] {
        if let Some(value) = v.iter().find(|x| !x.is_finite()) {
            return Err(AssetError::InstanceNotFinite {
                instance: Some(i),
                field,
                value: *value,
            });
        }
    }
    let r = inst.rotation;
    let len = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2] + r[3] * r[3]).sqrt();
    if !(len.is_finite() && len > 1e-6) {
        return Err(AssetError::InstanceRotation { instance: i });
    }
    inst.rotation = r.map(|x| x / len);
    Ok(inst)
}

/// `instances` as a buffer of `FullFloatInstance`s (little-endian), what an Upstream sends.
pub fn encode_full_float(instances: &[Instance]) -> Vec<u8> {
    let mut out = Vec::with_capacity(instances.len() * FULL_FLOAT_BYTES as usize);
    for i in instances {
        for x in i
            .position
            .iter()
            .chain(&i.rotation)
            .chain(&i.texture)
            .chain(&i.scale)
        {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(
        ty: w::InstanceType,
        count: u32,
        offset: u64,
        length: u64,
    ) -> w::InstanceComponent {
        w::InstanceComponent::new(
            w::BufferView::new(offset, length, w::BufferAssetID::new(w::AssetID::new(1))),
            count,
            ty,
            w::Vec3::new(-10.0, 0.0, 0.0),
            w::Vec3::new(10.0, 2.0, 4.0),
            w::Vec2::new(0.5, 2.5),
        )
    }

    #[test]
    fn full_float_round_trips_and_normalizes_rotation() {
        let a = Instance {
            position: [1.0, 2.0, 3.0, 0.0],
            rotation: [0.0, 0.0, 0.0, 2.0],
            texture: [0.5, 0.25, 0.5, 0.5],
            scale: [1.0, 2.0, 3.0, 0.0],
        };
        let bytes = encode_full_float(&[Instance::default(), a]);
        assert_eq!(bytes.len(), 128);
        let c = component(w::InstanceType::FullFloat, 2, 0, 128);
        let back = decode_instances(&c, &bytes).unwrap();
        assert_eq!(back[0], Instance::default());
        assert_eq!(back[1].rotation, [0.0, 0.0, 0.0, 1.0]);
        assert_eq!(back[1].position, a.position);
        assert_eq!(back[1].texture, a.texture);
    }

    #[test]
    fn reduced_instances_are_dequantized_over_their_ranges() {
        let mut b = Vec::new();
        for v in [65535u16, 0, 32768, 65535] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0i16, 0, 0, 32767, 16384, -32768, 32767, 32767] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let c = component(w::InstanceType::Reduced, 1, 0, 24);
        let i = decode_instances(&c, &b).unwrap()[0];
        assert_eq!(i.position[0], 10.0);
        assert_eq!(i.position[1], 0.0);
        assert!((i.position[2] - 2.0).abs() < 1e-3);
        assert_eq!(i.scale, [2.5, 2.5, 2.5, 0.0]);
        assert_eq!(i.rotation, [0.0, 0.0, 0.0, 1.0]);
        assert!((i.texture[0] - 0.5).abs() < 1e-3);
        assert_eq!(i.texture[1], -1.0);
        assert_eq!(&i.texture[2..], &[1.0, 1.0]);
    }

    #[test]
    fn bad_views_and_values_are_refused_by_name() {
        let bytes = encode_full_float(&[Instance::default(); 2]);
        // A count that disagrees with the view.
        let e = decode_instances(&component(w::InstanceType::FullFloat, 3, 0, 128), &bytes);
        assert!(
            matches!(e, Err(AssetError::InstanceViewLength { count: 3, .. })),
            "{e:?}"
        );
        // A view outside its buffer.
        let e = decode_instances(&component(w::InstanceType::FullFloat, 2, 64, 128), &bytes);
        assert!(
            matches!(e, Err(AssetError::ViewOutOfBuffer { .. })),
            "{e:?}"
        );
        // A huge count cannot overflow: the view length must match it.
        let e = decode_instances(
            &component(w::InstanceType::FullFloat, u32::MAX, 0, u64::MAX),
            &bytes,
        );
        assert!(e.is_err());
        // Not finite.
        let mut nan = Instance::default();
        nan.scale[1] = f32::NAN;
        let e = decode_instances(
            &component(w::InstanceType::FullFloat, 1, 0, 64),
            &encode_full_float(&[nan]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("instance 0: scale"), "{e}");
        // A zero rotation.
        let zero = Instance {
            rotation: [0.0; 4],
            ..Default::default()
        };
        let e = decode_instances(
            &component(w::InstanceType::FullFloat, 1, 0, 64),
            &encode_full_float(&[zero]),
        );
        assert!(
            matches!(e, Err(AssetError::InstanceRotation { instance: 0 })),
            "{e:?}"
        );
        // Quantization ranges that are not finite (Reduced instances are read over them).
        let mut c = component(w::InstanceType::Reduced, 1, 0, 24);
        c.quant_bb_max = w::Vec3::new(1.0, f32::INFINITY, 1.0);
        let e = decode_instances(&c, &[0; 24]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "instance: quant_bb_max has inf, not a finite number"
        );
        // An unknown layout.
        let mut c = component(w::InstanceType::FullFloat, 1, 0, 64);
        c.instance_type = 7;
        assert!(matches!(
            decode_instances(&c, &bytes),
            Err(AssetError::UnknownValue { ref field, .. }) if field == "instance_type"
        ));
    }
}
