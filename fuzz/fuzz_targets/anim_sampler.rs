//! Fuzz the animation sampler decoder (`noodles2::animation::Sampler::from_wire`) and its
//! evaluation: the input is an `AnimSamplerAsset` body (a fixed-size pack, its first bytes)
//! followed by the content of its buffer, from which the two views are cut. Whatever the input,
//! nothing may panic; a decoded sampler keeps at most 4 × its views' bytes, samples finite values
//! (unit quaternions for rotations) at any time, re-encodes to the bytes it came from (colors
//! aside: they are quantized), and blends with itself into a finite value.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use noodles2::animation::{
    Contribution, LoopMode, SAMPLER_MEMORY_FACTOR, Sampler, Value, ValueType, blend, map_time,
};
use noodles2::assets::view_bytes;
use noodles2::codec::{AnimSamplerAsset, Wire};

fn finite(v: &Value) -> bool {
    match v {
        Value::Float(x) => x.is_finite(),
        Value::Float3(x) => x.iter().all(|c| c.is_finite()),
        Value::Rotation(q) => {
            let len = q.iter().map(|c| c * c).sum::<f32>().sqrt();
            q.iter().all(|c| c.is_finite()) && (len - 1.0).abs() < 1e-3
        }
        Value::Color(c) => c.iter().all(|c| c.is_finite()),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < AnimSamplerAsset::SIZE {
        return;
    }
    let (body, buffer) = data.split_at(AnimSamplerAsset::SIZE);
    let Ok(s) = AnimSamplerAsset::decode(Bytes::copy_from_slice(body)) else {
        return;
    };
    let (Ok(input), Ok(output)) = (
        view_bytes("input", &s.input, buffer),
        view_bytes("output", &s.output, buffer),
    ) else {
        return;
    };
    let Ok(sampler) = Sampler::from_wire(&s, input, output) else {
        return;
    };
    let kept = (sampler.times().len() + sampler.values().len()) * 4;
    assert!(kept <= SAMPLER_MEMORY_FACTOR * (input.len() + output.len()));
    if sampler.value_type() != ValueType::Srgba8 {
        let (i, o) = sampler.to_bytes();
        assert_eq!(i, input);
        // Rotations are normalized (and made continuous) on load, so only their count is kept.
        assert_eq!(o.len(), output.len());
    }
    let end = sampler.times().last().copied().unwrap_or(0.0);
    for t in [f32::NEG_INFINITY, -1.0, 0.0, end * 0.37, end * 0.5, end, end + 1.0, f32::NAN] {
        let Some(v) = sampler.sample(t) else {
            assert!(sampler.times().is_empty());
            return;
        };
        assert!(finite(&v) || !matches!(v, Value::Rotation(_)), "{v:?} at {t}");
        let c = Contribution {
            value: v,
            weight: 0.5,
            additive: false,
        };
        let _ = blend(v, &[c, Contribution { additive: true, ..c }]);
    }
    for mode in [LoopMode::Loop, LoopMode::Clamp, LoopMode::PingPong] {
        let t = map_time(f64::from(end) * 7.3, mode, f64::from(end));
        assert!(t.is_finite() && t >= 0.0 && t <= f64::from(end).max(0.0) + 1e-9);
    }
});
