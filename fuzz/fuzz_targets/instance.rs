//! Fuzz the instance decoder (`noodles2::assets::decode_instances`): the input is an
//! `InstanceComponent` (its fixed 61 bytes) followed by the content of its buffer. Nothing may
//! panic; accepted instances are exactly `instance_count`, read from a view of exactly
//! `count × stride` bytes inside the buffer, every value finite and every rotation of unit
//! length; memory stays within 64 bytes per instance, at most 2.7 times the view.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use noodles2::assets::{decode_instances, instance_stride};
use noodles2::codec::{InstanceComponent, Wire};

fuzz_target!(|data: &[u8]| {
    if data.len() < InstanceComponent::SIZE {
        return;
    }
    let (body, buffer) = data.split_at(InstanceComponent::SIZE);
    let Ok(c) = InstanceComponent::decode(Bytes::copy_from_slice(body)) else {
        return;
    };
    let Ok(instances) = decode_instances(&c, buffer) else {
        return;
    };
    let count = c.instance_count.get();
    assert_eq!(instances.len() as u64, u64::from(count));
    let v = &c.view;
    assert_eq!(
        u128::from(v.length.get()),
        u128::from(count) * u128::from(instance_stride(c.instance_type()))
    );
    assert!(v.offset.get() + v.length.get() <= buffer.len() as u64);
    assert!(64 * instances.len() as u64 <= 3 * v.length.get().max(1) || instances.is_empty());
    for i in &instances {
        for x in i.position.iter().chain(&i.rotation).chain(&i.texture).chain(&i.scale) {
            assert!(x.is_finite());
        }
        let r = i.rotation;
        let len = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2] + r[3] * r[3]).sqrt();
        assert!((len - 1.0).abs() < 1e-3, "rotation length {len}");
    }
});
