//! Helpers shared by the benchmarks (a module of each, not a benchmark of its own).

#![allow(dead_code)]

use bevy::prelude::*;
use serde::{Deserialize, Serialize};

/// `Transform` as postcard writes it with Bevy's `serialize` feature: ten `f32`s, 40 bytes. The
/// replicon side of the benchmarks replicates `Transform` through it (`replicate_as`), which
/// avoids enabling Bevy's `serialize` feature for every test build of the crate.
#[derive(Serialize, Deserialize)]
pub struct TransformWire([f32; 3], [f32; 4], [f32; 3]);

impl From<Transform> for TransformWire {
    fn from(t: Transform) -> Self {
        TransformWire(
            t.translation.to_array(),
            t.rotation.to_array(),
            t.scale.to_array(),
        )
    }
}

impl From<TransformWire> for Transform {
    fn from(w: TransformWire) -> Self {
        Transform {
            translation: Vec3::from_array(w.0),
            rotation: Quat::from_array(w.1),
            scale: Vec3::from_array(w.2),
        }
    }
}

/// The first three fields of `/proc/loadavg` (other work on the machine skews every figure).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A value at quantile `q` (0 to 1) of sorted `samples`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
