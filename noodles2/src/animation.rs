//! Animation without an engine: samplers checked and decoded from their buffers, sampled with
//! every interpolation the spec defines, clip time mapped by loop mode, and contributions of
//! layers blended (override, then additive) with the spec's coercions. An engine reads and writes
//! its own components around [`blend`]; `bevy_noodles2` does so for Bevy's.
//!
//! Spec: `spec/core/assets/animation.jaw`, `spec/core/components/animation.jaw` and the
//! "Animation Notes" of `spec/core/extension.md` (target paths, value coercion, the reference
//! evaluation). Everything here treats its input as hostile: it never panics, and an
//! [`AnimationError`] names the field that was wrong.

use crate::codec as w;

/// Memory a decoded [`Sampler`] takes, at most, as a multiple of the bytes of its two views:
/// values are kept as `f32`, so an `SRGBA8` key (4 bytes) takes 16.
pub const SAMPLER_MEMORY_FACTOR: usize = 4;

/// Why a sampler could not be decoded. Every message names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnimationError {
    /// A view's length does not match what `keyframe_count`, the value type and the
    /// interpolation need.
    #[error(
        "anim sampler: {field} is {found} bytes, but {keys} keyframes of {value_type:?} with {interpolation:?} interpolation need {expected}"
    )]
    Length {
        /// `input` or `output`.
        field: &'static str,
        /// Its length in bytes.
        found: u64,
        /// `keyframe_count`.
        keys: u32,
        /// The value type.
        value_type: ValueType,
        /// The interpolation.
        interpolation: Interpolation,
        /// The length it must have.
        expected: u64,
    },
    /// A key time is not finite, or smaller than the one before it.
    #[error("anim sampler: input time {index} is {time}, {why}")]
    Time {
        /// Its index.
        index: usize,
        /// Its value.
        time: f32,
        /// `"not finite"` or `"smaller than the time before it"`.
        why: &'static str,
    },
    /// An output value is not finite.
    #[error("anim sampler: output value {index} is {value}, not finite")]
    Value {
        /// Index of the `f32` in the output.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A rotation key is all zeros and cannot be normalized.
    #[error("anim sampler: rotation key {0} has zero length (keys must be unit quaternions)")]
    ZeroRotation(usize),
}

/// What a sampler's values are (`AnimationValueType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// One `f32`.
    Float,
    /// Three `f32`.
    Float3,
    /// A unit quaternion, `x, y, z, w`.
    Rotation,
    /// An sRGB color with alpha, one byte per channel on the wire.
    Srgba8,
}

impl ValueType {
    /// `f32` components per value in memory.
    pub fn components(self) -> usize {
        match self {
            ValueType::Float => 1,
            ValueType::Float3 => 3,
            ValueType::Rotation | ValueType::Srgba8 => 4,
        }
    }

    /// Bytes per value on the wire.
    pub fn wire_bytes(self) -> usize {
        match self {
            ValueType::Float | ValueType::Srgba8 => 4,
            ValueType::Float3 => 12,
            ValueType::Rotation => 16,
        }
    }
}

impl From<w::AnimationValueType> for ValueType {
    fn from(v: w::AnimationValueType) -> Self {
        match v {
            w::AnimationValueType::Float => ValueType::Float,
            w::AnimationValueType::Float3 => ValueType::Float3,
            w::AnimationValueType::Rotation => ValueType::Rotation,
            w::AnimationValueType::SRGBA8 => ValueType::Srgba8,
        }
    }
}

impl From<ValueType> for w::AnimationValueType {
    fn from(v: ValueType) -> Self {
        match v {
            ValueType::Float => w::AnimationValueType::Float,
            ValueType::Float3 => w::AnimationValueType::Float3,
            ValueType::Rotation => w::AnimationValueType::Rotation,
            ValueType::Srgba8 => w::AnimationValueType::SRGBA8,
        }
    }
}

/// How values between keys are found (`AnimInterpolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interpolation {
    /// Linear; spherical (shortest path) for rotations.
    Linear,
    /// The value of the key at or before the time.
    Step,
    /// Cubic Hermite with in and out tangents per key (`[in, value, out]`); rotations are
    /// normalized afterwards.
    CubicSpline,
}

impl From<w::AnimInterpolation> for Interpolation {
    fn from(v: w::AnimInterpolation) -> Self {
        match v {
            w::AnimInterpolation::Linear => Interpolation::Linear,
            w::AnimInterpolation::Step => Interpolation::Step,
            w::AnimInterpolation::CubicSpline => Interpolation::CubicSpline,
        }
    }
}

impl From<Interpolation> for w::AnimInterpolation {
    fn from(v: Interpolation) -> Self {
        match v {
            Interpolation::Linear => w::AnimInterpolation::Linear,
            Interpolation::Step => w::AnimInterpolation::Step,
            Interpolation::CubicSpline => w::AnimInterpolation::CubicSpline,
        }
    }
}

/// How a layer maps time past the clip's end (`AnimLoopMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LoopMode {
    /// Wrap around.
    #[default]
    Loop,
    /// Hold the first or last pose.
    Clamp,
    /// Play forwards, then backwards (a triangle wave).
    PingPong,
}

impl From<w::AnimLoopMode> for LoopMode {
    fn from(v: w::AnimLoopMode) -> Self {
        match v {
            w::AnimLoopMode::Loop => LoopMode::Loop,
            w::AnimLoopMode::Clamp => LoopMode::Clamp,
            w::AnimLoopMode::PingPong => LoopMode::PingPong,
        }
    }
}

impl From<LoopMode> for w::AnimLoopMode {
    fn from(v: LoopMode) -> Self {
        match v {
            LoopMode::Loop => w::AnimLoopMode::Loop,
            LoopMode::Clamp => w::AnimLoopMode::Clamp,
            LoopMode::PingPong => w::AnimLoopMode::PingPong,
        }
    }
}

/// One sampled (or blended) value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A scalar.
    Float(f32),
    /// A vector.
    Float3([f32; 3]),
    /// A unit quaternion, `[x, y, z, w]`.
    Rotation([f32; 4]),
    /// An sRGB-encoded color with alpha, each channel in `0..=1` (the wire's byte / 255).
    Color([f32; 4]),
}

impl Value {
    /// Its type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Float(_) => ValueType::Float,
            Value::Float3(_) => ValueType::Float3,
            Value::Rotation(_) => ValueType::Rotation,
            Value::Color(_) => ValueType::Srgba8,
        }
    }

    /// This value as type `to`, by the spec's coercion table: a scalar becomes `[v, v, v]`, a
    /// vector its `x`; colors keep their channels (a target without alpha ignores it). `None`
    /// when no coercion exists (the channel is then ignored).
    pub fn coerce(self, to: ValueType) -> Option<Value> {
        match (self, to) {
            (v, t) if v.value_type() == t => Some(v),
            (Value::Float(v), ValueType::Float3) => Some(Value::Float3([v, v, v])),
            (Value::Float3(v), ValueType::Float) => Some(Value::Float(v[0])),
            _ => None,
        }
    }

    fn components(&self) -> &[f32] {
        match self {
            Value::Float(v) => std::slice::from_ref(v),
            Value::Float3(v) => v,
            Value::Rotation(v) | Value::Color(v) => v,
        }
    }

    fn from_components(ty: ValueType, c: &[f32]) -> Value {
        let at = |i: usize| c.get(i).copied().unwrap_or(0.0);
        match ty {
            ValueType::Float => Value::Float(at(0)),
            ValueType::Float3 => Value::Float3([at(0), at(1), at(2)]),
            ValueType::Rotation => Value::Rotation([at(0), at(1), at(2), at(3)]),
            ValueType::Srgba8 => Value::Color([at(0), at(1), at(2), at(3)]),
        }
    }
}

/// An `AnimSamplerAsset` with its keys read from its buffers: times, and values in `f32`
/// (rotations normalized with hemisphere continuity, colors as channels in `0..=1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sampler {
    interpolation: Interpolation,
    value_type: ValueType,
    times: Vec<f32>,
    /// Per key `components` values, or `3 × components` (`[in, value, out]`) for cubic splines.
    values: Vec<f32>,
}

impl Sampler {
    /// A sampler from keys: `times` (finite, non-decreasing) and `values` (`components` per key,
    /// three times that for cubic splines: in-tangent, value, out-tangent; colors in `0..=1`).
    /// Rotation keys are normalized and made hemisphere-continuous, as the spec requires.
    pub fn new(
        interpolation: Interpolation,
        value_type: ValueType,
        times: Vec<f32>,
        mut values: Vec<f32>,
    ) -> Result<Self, AnimationError> {
        let keys = times.len();
        let per_key = per_key(interpolation, value_type);
        let expected = keys.saturating_mul(per_key);
        if values.len() != expected {
            return Err(AnimationError::Length {
                field: "output",
                found: (values.len() * 4) as u64,
                keys: keys.min(u32::MAX as usize) as u32,
                value_type,
                interpolation,
                expected: (expected * 4) as u64,
            });
        }
        check_times(&times)?;
        if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(AnimationError::Value {
                index,
                value: *value,
            });
        }
        if value_type == ValueType::Rotation {
            make_continuous(&mut values, interpolation)?;
        }
        Ok(Sampler {
            interpolation,
            value_type,
            times,
            values,
        })
    }

    /// Decode an `AnimSamplerAsset` whose views are `input` and `output` (already cut from their
    /// buffers): lengths are checked against `keyframe_count`, the value type and the
    /// interpolation (`keyframe_count × 4` bytes of times; `keyframe_count × N × 4` of values,
    /// three times that for cubic splines; an `SRGBA8` value is one `u32`).
    pub fn from_wire(
        s: &w::AnimSamplerAsset,
        input: &[u8],
        output: &[u8],
    ) -> Result<Self, AnimationError> {
        let interpolation = Interpolation::from(s.interpolation());
        let value_type = ValueType::from(s.value_type());
        let keys = s.keyframe_count.get();
        let length = |field, found: usize, expected: u64| AnimationError::Length {
            field,
            found: found as u64,
            keys,
            value_type,
            interpolation,
            expected,
        };
        let want_in = u64::from(keys) * 4;
        if input.len() as u64 != want_in {
            return Err(length("input", input.len(), want_in));
        }
        let copies = if interpolation == Interpolation::CubicSpline {
            3
        } else {
            1
        };
        let want_out = u64::from(keys) * value_type.wire_bytes() as u64 * copies;
        if output.len() as u64 != want_out {
            return Err(length("output", output.len(), want_out));
        }
        let times = floats(input);
        let values = match value_type {
            ValueType::Srgba8 => output.iter().map(|b| f32::from(*b) / 255.0).collect(),
            _ => floats(output),
        };
        Sampler::new(interpolation, value_type, times, values)
    }

    /// The two views' bytes on the wire: `(input, output)`.
    pub fn to_bytes(&self) -> (Vec<u8>, Vec<u8>) {
        let input = self.times.iter().flat_map(|t| t.to_le_bytes()).collect();
        let output = match self.value_type {
            ValueType::Srgba8 => self
                .values
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect(),
            _ => self.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        (input, output)
    }

    /// Its interpolation.
    pub fn interpolation(&self) -> Interpolation {
        self.interpolation
    }

    /// Its value type.
    pub fn value_type(&self) -> ValueType {
        self.value_type
    }

    /// Key times, seconds.
    pub fn times(&self) -> &[f32] {
        &self.times
    }

    /// Key values (see [`Sampler::new`] for the layout).
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The value at time `t` (seconds): the first key's before the first time, the last key's
    /// after the last; `None` for a sampler without keys. A time that is not a number reads as
    /// the first key's.
    pub fn sample(&self, t: f32) -> Option<Value> {
        let n = self.times.len();
        if n == 0 {
            return None;
        }
        let last = n - 1;
        if n == 1 || t.is_nan() || t <= self.times[0] {
            return Some(self.key(0));
        }
        if t >= self.times[last] {
            return Some(self.key(last));
        }
        // times[i] <= t < times[i + 1], so the segment has a length above zero.
        let i = self.times.partition_point(|x| *x <= t) - 1;
        let dt = self.times[i + 1] - self.times[i];
        let u = (t - self.times[i]) / dt;
        Some(match self.interpolation {
            Interpolation::Step => self.key(i),
            Interpolation::Linear => {
                let (a, b) = (self.key(i), self.key(i + 1));
                match (a, b) {
                    (Value::Rotation(a), Value::Rotation(b)) => Value::Rotation(slerp(a, b, u)),
                    _ => lerp(a, b, u),
                }
            }
            Interpolation::CubicSpline => self.hermite(i, u, dt),
        })
    }

    /// Key `k`'s value.
    fn key(&self, k: usize) -> Value {
        let c = self.value_type.components();
        let start = match self.interpolation {
            Interpolation::CubicSpline => (3 * k + 1) * c,
            _ => k * c,
        };
        Value::from_components(self.value_type, &self.values[start..start + c])
    }

    /// Cubic Hermite between keys `i` and `i + 1` (glTF's formula: tangents scaled by `dt`).
    fn hermite(&self, i: usize, u: f32, dt: f32) -> Value {
        let c = self.value_type.components();
        let part =
            |k: usize, which: usize| &self.values[(3 * k + which) * c..(3 * k + which + 1) * c];
        let (p0, b0, p1, a1) = (part(i, 1), part(i, 2), part(i + 1, 1), part(i + 1, 0));
        let (u2, u3) = (u * u, u * u * u);
        let h00 = 2.0 * u3 - 3.0 * u2 + 1.0;
        let h10 = u3 - 2.0 * u2 + u;
        let h01 = -2.0 * u3 + 3.0 * u2;
        let h11 = u3 - u2;
        let mut out = [0.0f32; 4];
        for j in 0..c {
            out[j] = h00 * p0[j] + h10 * dt * b0[j] + h01 * p1[j] + h11 * dt * a1[j];
        }
        if self.value_type == ValueType::Rotation {
            let len = norm(out);
            // Near-zero (or overflowed by huge tangents): fall back to the previous valid
            // rotation (the key before).
            return if len > 1e-6 && len.is_finite() {
                Value::Rotation(out.map(|x| x / len))
            } else {
                self.key(i)
            };
        }
        Value::from_components(self.value_type, &out[..c])
    }
}

fn per_key(interpolation: Interpolation, value_type: ValueType) -> usize {
    let c = value_type.components();
    if interpolation == Interpolation::CubicSpline {
        3 * c
    } else {
        c
    }
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn check_times(times: &[f32]) -> Result<(), AnimationError> {
    let mut before = f32::NEG_INFINITY;
    for (index, &time) in times.iter().enumerate() {
        if !time.is_finite() {
            return Err(AnimationError::Time {
                index,
                time,
                why: "not finite",
            });
        }
        if time < before {
            return Err(AnimationError::Time {
                index,
                time,
                why: "smaller than the time before it",
            });
        }
        before = time;
    }
    Ok(())
}

/// Normalize rotation keys and negate those (with their tangents) that point into the other
/// hemisphere from the key before.
fn make_continuous(values: &mut [f32], interpolation: Interpolation) -> Result<(), AnimationError> {
    let cubic = interpolation == Interpolation::CubicSpline;
    let stride = if cubic { 12 } else { 4 };
    let value_at = if cubic { 4 } else { 0 };
    let mut previous: Option<[f32; 4]> = None;
    for (k, key) in values.chunks_exact_mut(stride).enumerate() {
        let v = &mut key[value_at..value_at + 4];
        // Scaled first, so that huge components do not overflow the length to infinity.
        let scale = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let q = [v[0], v[1], v[2], v[3]].map(|x| x / scale);
        let len = norm(q);
        // Values are finite (checked before): only an all-zero key has no direction.
        if scale == 0.0 || len.is_nan() || len <= 1e-6 {
            return Err(AnimationError::ZeroRotation(k));
        }
        let mut q = q.map(|x| x / len);
        if previous.is_some_and(|p| dot(p, q) < 0.0) {
            q = q.map(|x| -x);
            for x in key.iter_mut() {
                *x = -*x;
            }
            // The value was negated with the rest; write it back normalized.
        }
        key[value_at..value_at + 4].copy_from_slice(&q);
        previous = Some(q);
    }
    Ok(())
}

fn dot(a: [f32; 4], b: [f32; 4]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]
}

fn norm(q: [f32; 4]) -> f32 {
    dot(q, q).sqrt()
}

fn normalize(q: [f32; 4]) -> [f32; 4] {
    let len = norm(q);
    if len > 1e-12 {
        q.map(|x| x / len)
    } else {
        IDENTITY
    }
}

/// The identity rotation, `[x, y, z, w]`.
pub const IDENTITY: [f32; 4] = [0.0, 0.0, 0.0, 1.0];

/// Spherical linear interpolation along the shortest path, normalized.
pub fn slerp(a: [f32; 4], b: [f32; 4], t: f32) -> [f32; 4] {
    let mut d = dot(a, b);
    let b = if d < 0.0 {
        d = -d;
        b.map(|x| -x)
    } else {
        b
    };
    if d > 0.9995 {
        // Nearly the same rotation: normalized linear interpolation is exact enough.
        let mut out = [0.0; 4];
        for i in 0..4 {
            out[i] = a[i] + (b[i] - a[i]) * t;
        }
        return normalize(out);
    }
    let theta = d.min(1.0).acos();
    let s = theta.sin();
    let (wa, wb) = (((1.0 - t) * theta).sin() / s, (t * theta).sin() / s);
    let mut out = [0.0; 4];
    for i in 0..4 {
        out[i] = wa * a[i] + wb * b[i];
    }
    normalize(out)
}

/// The Hamilton product `a × b` (`[x, y, z, w]`): rotation `b` applied first.
pub fn multiply(a: [f32; 4], b: [f32; 4]) -> [f32; 4] {
    let [ax, ay, az, aw] = a;
    let [bx, by, bz, bw] = b;
    [
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ]
}

/// Component-wise linear interpolation of two values of one type.
fn lerp(a: Value, b: Value, t: f32) -> Value {
    let (ac, bc) = (a.components(), b.components());
    let mut out = [0.0f32; 4];
    for (i, (x, y)) in ac.iter().zip(bc).enumerate() {
        out[i] = x + (y - x) * t;
    }
    Value::from_components(a.value_type(), &out[..ac.len()])
}

/// A layer's clip time at `now` (the authority's monotonic seconds), mapped into
/// `[0, duration]` by its loop mode (spec: `clip_t = (now - start_time) * speed +
/// clip_time_offset`, then [`map_time`]). `None` when the layer contributes nothing: weight not
/// above 0, a duration of 0, or a time that is not a number.
pub fn clip_time(layer: &Layer, now: f64, duration: f64) -> Option<f64> {
    // Written to refuse NaN too.
    let contributes = layer.weight > 0.0 && duration > 0.0 && duration.is_finite();
    if !contributes {
        return None;
    }
    let raw = (now - layer.start_time) * f64::from(layer.speed) + layer.clip_time_offset;
    raw.is_finite()
        .then(|| map_time(raw, layer.loop_mode, duration))
}

/// Map clip time `t` into `[0, duration]` (spec: `map_time`): wrap for [`LoopMode::Loop`], clamp
/// for [`LoopMode::Clamp`], a triangle wave for [`LoopMode::PingPong`]. 0 for a duration that is
/// not above 0.
pub fn map_time(t: f64, mode: LoopMode, duration: f64) -> f64 {
    if duration.is_nan() || duration <= 0.0 {
        return 0.0;
    }
    match mode {
        LoopMode::Clamp => t.clamp(0.0, duration),
        LoopMode::Loop => t.rem_euclid(duration),
        LoopMode::PingPong => {
            let x = t.rem_euclid(2.0 * duration);
            if x <= duration { x } else { 2.0 * duration - x }
        }
    }
}

/// One layer of an `AnimatorComponent`, without its clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layer {
    /// Authority monotonic seconds when the layer began.
    pub start_time: f64,
    /// Seconds into the clip at `start_time`.
    pub clip_time_offset: f64,
    /// Playback speed (1 is real time; 0 freezes the clip).
    pub speed: f32,
    /// Contribution (negative counts as 0).
    pub weight: f32,
    /// Time past the clip's end.
    pub loop_mode: LoopMode,
    /// Adds to the result of the override layers instead of blending with them.
    pub additive: bool,
}

impl Default for Layer {
    fn default() -> Self {
        Layer {
            start_time: 0.0,
            clip_time_offset: 0.0,
            speed: 1.0,
            weight: 1.0,
            loop_mode: LoopMode::Loop,
            additive: false,
        }
    }
}

impl From<&w::AnimLayer> for Layer {
    fn from(l: &w::AnimLayer) -> Self {
        Layer {
            start_time: l.start_time.get(),
            clip_time_offset: l.clip_time_offset.get(),
            speed: l.speed.get(),
            weight: l.weight.get(),
            loop_mode: LoopMode::from(l.loop_mode()),
            additive: l.is_additive != 0,
        }
    }
}

/// One layer's sampled value for one target path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contribution {
    /// The sampled value, already coerced to the target's type.
    pub value: Value,
    /// The layer's weight (negative counts as 0).
    pub weight: f32,
    /// From an additive layer.
    pub additive: bool,
}

/// The value of one target path after the layers' contributions, in layer order (spec:
/// reference evaluation). Override contributions are averaged by weight (rotations by weighted
/// incremental slerp; contributors whose type differs from the first one's are ignored), and
/// replace `base` unless their weights sum to 0; then additive ones are applied in order
/// (`base + weight × value`; rotations `base × slerp(identity, value, clamp(weight, 0, 1))`).
pub fn blend(base: Value, contributions: &[Contribution]) -> Value {
    // The common case, one layer overriding: its value (what the general path computes).
    if let [c] = contributions
        && !c.additive
        && c.weight > 0.0
    {
        return match c.value {
            Value::Rotation(q) => Value::Rotation(normalize(q)),
            v => v,
        };
    }
    let mut out = base;
    let mut overrides = contributions
        .iter()
        .filter(|c| !c.additive && c.weight > 0.0);
    if let Some(first) = overrides.next() {
        let ty = first.value.value_type();
        match first.value {
            Value::Rotation(q) => {
                let (mut q, mut acc) = (q, first.weight);
                for c in overrides {
                    if let Value::Rotation(r) = c.value {
                        q = slerp(q, r, c.weight / (acc + c.weight));
                        acc += c.weight;
                    }
                }
                out = Value::Rotation(normalize(q));
            }
            _ => {
                let mut sum = [0.0f32; 4];
                let mut total = 0.0;
                for c in std::iter::once(first).chain(overrides) {
                    if c.value.value_type() != ty {
                        continue;
                    }
                    for (s, v) in sum.iter_mut().zip(c.value.components()) {
                        *s += c.weight * v;
                    }
                    total += c.weight;
                }
                let n = ty.components();
                for s in &mut sum[..n] {
                    *s /= total;
                }
                out = Value::from_components(ty, &sum[..n]);
            }
        }
    }
    for c in contributions
        .iter()
        .filter(|c| c.additive && c.weight > 0.0)
    {
        out = match (out, c.value) {
            (Value::Rotation(b), Value::Rotation(d)) => Value::Rotation(normalize(multiply(
                b,
                slerp(IDENTITY, d, c.weight.clamp(0.0, 1.0)),
            ))),
            (b, d) if b.value_type() == d.value_type() => {
                let mut sum = [0.0f32; 4];
                for (i, (x, y)) in b.components().iter().zip(d.components()).enumerate() {
                    sum[i] = x + c.weight * y;
                }
                Value::from_components(b.value_type(), &sum[..b.value_type().components()])
            }
            (b, _) => b,
        };
    }
    out
}

/// A Core animation target path (spec: "Animation Notes", target tables): what a channel
/// animates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `TransformComponent` (0, 20) member 0.
    Translation,
    /// `TransformComponent` member 1.
    Rotation,
    /// `TransformComponent` member 2.
    Scale,
    /// `EnvironmentComponent` (0, 3) member 1.
    EnvironmentIntensity,
    /// `EnvironmentComponent` member 2.
    EnvironmentRotation,
    /// Member 0 of a light: `DirectionalLightComponent` (0, 10), `PointLightComponent` (0, 11)
    /// or `SpotLightComponent` (0, 12), by its identifier.
    LightColor(u16),
    /// Member 1 of a light (identifier as above).
    LightIntensity(u16),
    /// `MorphWeightsComponent` (0, 24) member 0: weight `sub_index`.
    MorphWeight(u16),
    /// `PBRMaterial` asset (0, 4) member 0.
    BaseColor,
    /// `PBRMaterial` member 1.
    Roughness,
    /// `PBRMaterial` member 2.
    Metallic,
    /// `PBRMaterial` member 3.
    Ior,
}

impl Target {
    /// The path of component `(extension, identifier)` member `member` (`sub_index` `sub`);
    /// `None` for a path the spec does not define (the channel is ignored).
    pub fn of_component(component: (u16, u16), member: u16, sub: u16) -> Option<Target> {
        Some(match (component, member) {
            ((0, 20), 0) => Target::Translation,
            ((0, 20), 1) => Target::Rotation,
            ((0, 20), 2) => Target::Scale,
            ((0, 3), 1) => Target::EnvironmentIntensity,
            ((0, 3), 2) => Target::EnvironmentRotation,
            ((0, id @ 10..=12), 0) => Target::LightColor(id),
            ((0, id @ 10..=12), 1) => Target::LightIntensity(id),
            ((0, 24), 0) => Target::MorphWeight(sub),
            _ => return None,
        })
    }

    /// The path of asset type `(extension, identifier)` member `member`; `None` for a path the
    /// spec does not define.
    pub fn of_asset(asset_type: (u16, u16), member: u16) -> Option<Target> {
        Some(match (asset_type, member) {
            ((0, 4), 0) => Target::BaseColor,
            ((0, 4), 1) => Target::Roughness,
            ((0, 4), 2) => Target::Metallic,
            ((0, 4), 3) => Target::Ior,
            _ => return None,
        })
    }

    /// Where this path lives on the wire: `(component or asset type, member_index, sub_index)`.
    pub fn to_wire(self) -> ((u16, u16), u16, u16) {
        match self {
            Target::Translation => ((0, 20), 0, 0),
            Target::Rotation => ((0, 20), 1, 0),
            Target::Scale => ((0, 20), 2, 0),
            Target::EnvironmentIntensity => ((0, 3), 1, 0),
            Target::EnvironmentRotation => ((0, 3), 2, 0),
            Target::LightColor(id) => ((0, id), 0, 0),
            Target::LightIntensity(id) => ((0, id), 1, 0),
            Target::MorphWeight(i) => ((0, 24), 0, i),
            Target::BaseColor => ((0, 4), 0, 0),
            Target::Roughness => ((0, 4), 1, 0),
            Target::Metallic => ((0, 4), 2, 0),
            Target::Ior => ((0, 4), 3, 0),
        }
    }

    /// Whether this is a member of an asset (a material) rather than of an entity's component.
    pub fn is_asset(self) -> bool {
        matches!(
            self,
            Target::BaseColor | Target::Roughness | Target::Metallic | Target::Ior
        )
    }

    /// The value type the member holds (colors: [`ValueType::Srgba8`], whose alpha a target
    /// without alpha ignores).
    pub fn value_type(self) -> ValueType {
        match self {
            Target::Translation | Target::Scale => ValueType::Float3,
            Target::Rotation | Target::EnvironmentRotation => ValueType::Rotation,
            Target::LightColor(_) | Target::BaseColor => ValueType::Srgba8,
            Target::EnvironmentIntensity
            | Target::LightIntensity(_)
            | Target::MorphWeight(_)
            | Target::Roughness
            | Target::Metallic
            | Target::Ior => ValueType::Float,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
    }

    fn comps(v: Value) -> Vec<f32> {
        v.components().to_vec()
    }

    #[test]
    fn step_holds_the_key_at_or_before() {
        let s = Sampler::new(
            Interpolation::Step,
            ValueType::Float,
            vec![0.0, 1.0, 2.0],
            vec![10.0, 20.0, 30.0],
        )
        .unwrap();
        assert_eq!(s.sample(-1.0), Some(Value::Float(10.0)));
        assert_eq!(s.sample(0.99), Some(Value::Float(10.0)));
        assert_eq!(s.sample(1.0), Some(Value::Float(20.0)));
        assert_eq!(s.sample(1.5), Some(Value::Float(20.0)));
        assert_eq!(s.sample(5.0), Some(Value::Float(30.0)));
        assert_eq!(s.sample(f32::NAN), Some(Value::Float(10.0)));
    }

    #[test]
    fn linear_interpolates_and_clamps_out_of_range() {
        let s = Sampler::new(
            Interpolation::Linear,
            ValueType::Float3,
            vec![1.0, 3.0],
            vec![0.0, 0.0, 0.0, 2.0, 4.0, -6.0],
        )
        .unwrap();
        // A quarter of the way: (2 - 1) / (3 - 1) = 0.5 → half.
        assert_eq!(s.sample(2.0), Some(Value::Float3([1.0, 2.0, -3.0])));
        assert_eq!(s.sample(1.5), Some(Value::Float3([0.5, 1.0, -1.5])));
        assert_eq!(s.sample(0.0), Some(Value::Float3([0.0, 0.0, 0.0])));
        assert_eq!(s.sample(9.0), Some(Value::Float3([2.0, 4.0, -6.0])));
    }

    #[test]
    fn linear_rotation_is_shortest_path_slerp() {
        // 0° and 90° about Z: halfway is 45°: (0, 0, sin 22.5°, cos 22.5°).
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let s = Sampler::new(
            Interpolation::Linear,
            ValueType::Rotation,
            vec![0.0, 1.0],
            // The second key is given in the far hemisphere: continuity negates it.
            vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, -h, -h],
        )
        .unwrap();
        assert!(close(&s.values()[4..], &[0.0, 0.0, h, h]));
        let half = 22.5f32.to_radians();
        assert!(close(
            &comps(s.sample(0.5).unwrap()),
            &[0.0, 0.0, half.sin(), half.cos()]
        ));
        // A quarter: 22.5°.
        let q = 11.25f32.to_radians();
        assert!(close(
            &comps(s.sample(0.25).unwrap()),
            &[0.0, 0.0, q.sin(), q.cos()]
        ));
    }

    #[test]
    fn rotations_are_normalized_on_load_and_zero_is_refused() {
        let s = Sampler::new(
            Interpolation::Step,
            ValueType::Rotation,
            vec![0.0],
            vec![0.0, 0.0, 0.0, 2.0],
        )
        .unwrap();
        assert_eq!(s.values(), &[0.0, 0.0, 0.0, 1.0]);
        let e = Sampler::new(
            Interpolation::Step,
            ValueType::Rotation,
            vec![0.0, 1.0],
            vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        )
        .unwrap_err();
        assert_eq!(e, AnimationError::ZeroRotation(1));
    }

    #[test]
    fn cubic_spline_follows_hermite() {
        // Keys at t=0 (value 0, out-tangent 1) and t=2 (value 1, in-tangent 0); dt = 2.
        // At u = 0.5: h00 = 0.5, h10 = 0.125, h01 = 0.5, h11 = -0.125:
        // 0.5·0 + 0.125·2·1 + 0.5·1 + (-0.125)·2·0 = 0.75.
        let s = Sampler::new(
            Interpolation::CubicSpline,
            ValueType::Float,
            vec![0.0, 2.0],
            vec![9.0, 0.0, 1.0, 0.0, 1.0, 9.0],
        )
        .unwrap();
        assert_eq!(s.sample(1.0), Some(Value::Float(0.75)));
        assert_eq!(s.sample(0.0), Some(Value::Float(0.0)));
        assert_eq!(s.sample(2.0), Some(Value::Float(1.0)));
        assert_eq!(s.sample(3.0), Some(Value::Float(1.0)));
    }

    #[test]
    fn cubic_rotation_is_normalized_and_falls_back_near_zero() {
        // Two opposite-looking keys with tangents that cancel the midpoint: q0 = (0,0,0,1),
        // q1 = (0,0,0,1) with large opposing tangents still normalize to unit length.
        let s = Sampler::new(
            Interpolation::CubicSpline,
            ValueType::Rotation,
            vec![0.0, 1.0],
            vec![
                0.0, 0.0, 0.0, 0.0, /* value */ 0.0, 0.0, 0.0, 1.0, /* out */ 0.0, 0.0,
                1.0, 0.0, /* in */ 0.0, 0.0, 1.0, 0.0, /* value */ 0.0, 0.0, 0.0, 1.0,
                0.0, 0.0, 0.0, 0.0,
            ],
        )
        .unwrap();
        let q = comps(s.sample(0.5).unwrap());
        let len = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((len - 1.0).abs() < 1e-5, "{q:?}");
        // At u=0.5: z = 0.125·1 + (-0.125)·1 = 0, w = 0.5 + 0.5 = 1: identity.
        assert!(close(&q, &[0.0, 0.0, 0.0, 1.0]));
    }

    #[test]
    fn wire_lengths_times_and_values_are_checked() {
        let mut s = w::AnimSamplerAsset {
            keyframe_count: 2.into(),
            ..Default::default()
        };
        s.set_value_type(w::AnimationValueType::Float3);
        s.set_interpolation(w::AnimInterpolation::Linear);
        let times: Vec<u8> = [0.0f32, 1.0].iter().flat_map(|t| t.to_le_bytes()).collect();
        let vals: Vec<u8> = [0.0f32; 6].iter().flat_map(|t| t.to_le_bytes()).collect();
        assert!(Sampler::from_wire(&s, &times, &vals).is_ok());
        let e = Sampler::from_wire(&s, &times, &vals[..20]).unwrap_err();
        assert!(e.to_string().contains("output is 20 bytes"), "{e}");
        assert!(e.to_string().contains("need 24"), "{e}");
        let e = Sampler::from_wire(&s, &times[..4], &vals).unwrap_err();
        assert!(e.to_string().contains("input is 4 bytes"), "{e}");
        let back: Vec<u8> = [1.0f32, 0.5].iter().flat_map(|t| t.to_le_bytes()).collect();
        let e = Sampler::from_wire(&s, &back, &vals).unwrap_err();
        assert_eq!(
            e.to_string(),
            "anim sampler: input time 1 is 0.5, smaller than the time before it"
        );
        let nan: Vec<u8> = [0.0f32, 0.0, f32::NAN, 0.0, 0.0, 0.0]
            .iter()
            .flat_map(|t| t.to_le_bytes())
            .collect();
        assert!(matches!(
            Sampler::from_wire(&s, &times, &nan),
            Err(AnimationError::Value { index: 2, .. })
        ));
        // Cubic needs three times the values.
        s.set_interpolation(w::AnimInterpolation::CubicSpline);
        assert!(Sampler::from_wire(&s, &times, &vals).is_err());
        // A count far past the bytes is a length error, not an allocation.
        s.keyframe_count = u32::MAX.into();
        assert!(Sampler::from_wire(&s, &times, &vals).is_err());
    }

    /// Found by the `anim_sampler` fuzz target: a rotation key with huge components overflowed
    /// its length to infinity, and normalizing it gave a zero quaternion.
    #[test]
    fn huge_rotation_keys_normalize_to_unit_length() {
        use crate::codec::Wire;
        let data = include_bytes!("../tests/data/anim_sampler_huge_rotation.bin");
        let (body, buffer) = data.split_at(w::AnimSamplerAsset::SIZE);
        let s = w::AnimSamplerAsset::decode(bytes::Bytes::copy_from_slice(body)).unwrap();
        let input = crate::assets::view_bytes("input", &s.input, buffer).unwrap();
        let output = crate::assets::view_bytes("output", &s.output, buffer).unwrap();
        let sampler = Sampler::from_wire(&s, input, output).unwrap();
        for t in [0.0, 0.5, 1.0, 2.0] {
            let q = comps(sampler.sample(t).unwrap());
            let len = q.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((len - 1.0).abs() < 1e-5, "{q:?} at {t}");
        }
        // Direct: [3e38, 3e38, 0, 0] is 45° about the x = y axis, not zero.
        let s = Sampler::new(
            Interpolation::Step,
            ValueType::Rotation,
            vec![0.0],
            vec![3e38, 3e38, 0.0, 0.0],
        )
        .unwrap();
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!(close(s.values(), &[h, h, 0.0, 0.0]));
    }

    #[test]
    fn srgba8_round_trips_and_interpolates_per_channel() {
        let mut s = w::AnimSamplerAsset {
            keyframe_count: 2.into(),
            ..Default::default()
        };
        s.set_value_type(w::AnimationValueType::SRGBA8);
        let times: Vec<u8> = [0.0f32, 1.0].iter().flat_map(|t| t.to_le_bytes()).collect();
        let out = [0u8, 0, 0, 255, 255, 102, 0, 255];
        let sampler = Sampler::from_wire(&s, &times, &out).unwrap();
        assert_eq!(sampler.to_bytes(), (times.clone(), out.to_vec()));
        assert!(close(
            &comps(sampler.sample(0.5).unwrap()),
            &[0.5, 0.2, 0.0, 1.0]
        ));
    }

    #[test]
    fn duplicate_times_jump_to_the_later_key() {
        let s = Sampler::new(
            Interpolation::Linear,
            ValueType::Float,
            vec![0.0, 1.0, 1.0, 2.0],
            vec![0.0, 1.0, 5.0, 6.0],
        )
        .unwrap();
        assert_eq!(s.sample(0.5), Some(Value::Float(0.5)));
        assert_eq!(s.sample(1.0), Some(Value::Float(5.0)));
        assert_eq!(s.sample(1.5), Some(Value::Float(5.5)));
    }

    #[test]
    fn loop_modes_map_time() {
        assert_eq!(map_time(2.5, LoopMode::Loop, 2.0), 0.5);
        assert_eq!(map_time(-0.5, LoopMode::Loop, 2.0), 1.5);
        assert_eq!(map_time(2.5, LoopMode::Clamp, 2.0), 2.0);
        assert_eq!(map_time(-1.0, LoopMode::Clamp, 2.0), 0.0);
        assert_eq!(map_time(2.5, LoopMode::PingPong, 2.0), 1.5);
        assert_eq!(map_time(3.5, LoopMode::PingPong, 2.0), 0.5);
        assert_eq!(map_time(4.5, LoopMode::PingPong, 2.0), 0.5);
        assert_eq!(map_time(-0.5, LoopMode::PingPong, 2.0), 0.5);
        assert_eq!(map_time(7.0, LoopMode::Loop, 0.0), 0.0);
    }

    #[test]
    fn clip_time_follows_start_speed_and_offset() {
        let layer = Layer {
            start_time: 10.0,
            clip_time_offset: 0.25,
            speed: 2.0,
            ..Layer::default()
        };
        // (11 - 10) · 2 + 0.25 = 2.25, looped in a 2 s clip: 0.25.
        assert_eq!(clip_time(&layer, 11.0, 2.0), Some(0.25));
        assert_eq!(clip_time(&layer, 11.0, 0.0), None);
        let silent = Layer {
            weight: -1.0,
            ..layer
        };
        assert_eq!(clip_time(&silent, 11.0, 2.0), None);
        let frozen = Layer {
            speed: 0.0,
            loop_mode: LoopMode::Clamp,
            ..layer
        };
        assert_eq!(clip_time(&frozen, 99.0, 2.0), Some(0.25));
    }

    fn c(value: Value, weight: f32, additive: bool) -> Contribution {
        Contribution {
            value,
            weight,
            additive,
        }
    }

    #[test]
    fn overrides_average_by_weight_and_skip_zero_sums() {
        let base = Value::Float3([9.0, 9.0, 9.0]);
        // (1·[0,0,0] + 3·[4,8,-4]) / 4 = [3, 6, -3].
        let out = blend(
            base,
            &[
                c(Value::Float3([0.0, 0.0, 0.0]), 1.0, false),
                c(Value::Float3([4.0, 8.0, -4.0]), 3.0, false),
            ],
        );
        assert_eq!(out, Value::Float3([3.0, 6.0, -3.0]));
        // Negative weights count as 0: nothing overrides, the base stays.
        assert_eq!(
            blend(base, &[c(Value::Float3([1.0; 3]), -2.0, false)]),
            base
        );
        // A single layer at weight 0.25 still fully overrides (normalized by the sum).
        assert_eq!(
            blend(Value::Float(7.0), &[c(Value::Float(2.0), 0.25, false)]),
            Value::Float(2.0)
        );
    }

    #[test]
    fn rotation_overrides_use_incremental_slerp() {
        let z90 = [
            0.0,
            0.0,
            std::f32::consts::FRAC_1_SQRT_2,
            std::f32::consts::FRAC_1_SQRT_2,
        ];
        // Identity at weight 1, 90° at weight 1: t = 1/2 → 45°.
        let out = blend(
            Value::Rotation(IDENTITY),
            &[
                c(Value::Rotation(IDENTITY), 1.0, false),
                c(Value::Rotation(z90), 1.0, false),
            ],
        );
        let h = 22.5f32.to_radians();
        assert!(close(&comps(out), &[0.0, 0.0, h.sin(), h.cos()]));
    }

    #[test]
    fn additive_layers_apply_in_order_after_overrides() {
        let out = blend(
            Value::Float(1.0),
            &[
                c(Value::Float(2.0), 0.5, true),
                c(Value::Float(10.0), 1.0, false),
            ],
        );
        // Override → 10, then + 0.5 · 2 = 11.
        assert_eq!(out, Value::Float(11.0));
        // Rotation: base 90° about Z, additive 90° about Z at weight 0.5 → 135°.
        let z90 = [
            0.0,
            0.0,
            std::f32::consts::FRAC_1_SQRT_2,
            std::f32::consts::FRAC_1_SQRT_2,
        ];
        let out = blend(Value::Rotation(z90), &[c(Value::Rotation(z90), 0.5, true)]);
        let h = 67.5f32.to_radians();
        assert!(close(&comps(out), &[0.0, 0.0, h.sin(), h.cos()]));
        // Additive identity is a no-op.
        let out = blend(
            Value::Rotation(z90),
            &[c(Value::Rotation(IDENTITY), 1.0, true)],
        );
        assert!(close(&comps(out), &z90));
    }

    #[test]
    fn coercions_follow_the_table() {
        assert_eq!(
            Value::Float(2.0).coerce(ValueType::Float3),
            Some(Value::Float3([2.0; 3]))
        );
        assert_eq!(
            Value::Float3([1.0, 2.0, 3.0]).coerce(ValueType::Float),
            Some(Value::Float(1.0))
        );
        assert_eq!(Value::Float(1.0).coerce(ValueType::Rotation), None);
        assert_eq!(Value::Rotation(IDENTITY).coerce(ValueType::Float3), None);
        let c = Value::Color([1.0, 0.5, 0.0, 1.0]);
        assert_eq!(c.coerce(ValueType::Srgba8), Some(c));
    }

    #[test]
    fn target_paths_match_the_tables() {
        assert_eq!(Target::of_component((0, 20), 1, 0), Some(Target::Rotation));
        assert_eq!(
            Target::of_component((0, 24), 0, 7),
            Some(Target::MorphWeight(7))
        );
        assert_eq!(
            Target::of_component((0, 11), 1, 0),
            Some(Target::LightIntensity(11))
        );
        assert_eq!(Target::of_component((0, 20), 3, 0), None);
        assert_eq!(Target::of_component((7, 20), 0, 0), None);
        assert_eq!(Target::of_asset((0, 4), 3), Some(Target::Ior));
        assert_eq!(Target::of_asset((0, 2), 0), None);
        for t in [
            Target::Translation,
            Target::EnvironmentRotation,
            Target::LightColor(12),
            Target::MorphWeight(3),
            Target::Metallic,
        ] {
            let (ty, member, sub) = t.to_wire();
            let back = if t.is_asset() {
                Target::of_asset(ty, member)
            } else {
                Target::of_component(ty, member, sub)
            };
            assert_eq!(back, Some(t));
        }
    }
}
