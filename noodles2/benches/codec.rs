//! Codec throughput: a 100,000-record `ContentModifyComponents` of (EntityID, TransformComponent)
//! pairs (4.8 MB of content), viewed in place or copied out, and an `Any`-heavy `RPCInvoke`.
//!
//! The `RPCInvoke` is also compared with CBOR and MessagePack carrying the same values: its 200
//! `Any` maps are converted to a serde-derived enum ([`Val`], the self-describing value a Rust
//! developer would write) that is encoded and decoded with `ciborium` (CBOR) and `rmp-serde`
//! (MessagePack), and to CBOR's own dynamic value (`ciborium::Value`). Each format is checked once
//! to decode back to the equal value before anything is timed.
//!
//! Criterion measures each case; afterwards a table is printed whose medians are taken in the same
//! run (50 timed iterations each with `Instant`) next to a plain memcpy of the same number of
//! bytes, so the ratios are comparable. The `RPCInvoke` rows of NOODLES2, CBOR and MessagePack are
//! timed interleaved (one iteration of each in turn), so a drifting machine slows them alike, and
//! their `x noodles2` column is their time over NOODLES2's for the same operation (above 1: slower
//! than NOODLES2). Run with `cargo bench --bench codec`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use noodles2::codec::*;
use serde::{Deserialize, Serialize};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// One record of the payload, read in place.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C, packed)]
struct Pair {
    id: EntityID,
    t: TransformComponent,
}

const RECORDS: usize = 100_000;

/// The frame of a `ContentModifyComponents` carrying `RECORDS` transforms.
fn transforms_message() -> ContentMessage {
    let pairs: Vec<Pair> = (0..RECORDS)
        .map(|i| {
            let f = i as f32;
            Pair {
                id: EntityID::new(i as u64 + 1),
                t: TransformComponent::new(
                    Vec3::new(f, f * 0.5, -f),
                    UnitQuaternion::new(0.0, (f * 0.001).sin(), 0.0, (f * 0.001).cos()),
                    Vec3::new(1.0, 1.0, 1.0),
                ),
            }
        })
        .collect();
    ContentMessage::ContentModifyComponents(ContentModifyComponents {
        component: ComponentTypeID::new(ExtensionID::new(EXTENSION_CORE), 20),
        count: RECORDS as u32,
        content: Content(Bytes::copy_from_slice(pairs.as_bytes())),
    })
}

/// An `RPCInvoke` with 200 arguments, each a map of strings, integers, floats, vectors and a
/// nested array and map.
fn any_heavy_invoke() -> MainSequenceMessage {
    let s = |x: &str| Any::AnyString(x.into());
    let pair = |k: &str, v: Any| AnyKeyPair {
        key: s(k),
        value: v,
    };
    let args = (0..200)
        .map(|i| {
            let f = i as f32;
            Any::AnyMap(AnyMap(vec![
                pair("name", s(&format!("object-{i}"))),
                pair("id", Any::I64(i)),
                pair("weight", Any::F64(i as f64 * 0.25)),
                pair("position", Any::Vec3(Vec3::new(f, f + 1.0, f + 2.0))),
                pair("color", Any::Vec4(Vec4::new(0.1, 0.2, 0.3, 1.0))),
                pair(
                    "tags",
                    Any::AnyArray(AnyArray(vec![s("red"), s("movable"), Any::U8(i as u8)])),
                ),
                pair("owner", Any::EntityID(EntityID::new(i as u64))),
                pair(
                    "extra",
                    Any::AnyMap(AnyMap(vec![
                        pair("visible", Any::U8(1)),
                        pair("label", s("a longer label text")),
                    ])),
                ),
            ]))
        })
        .collect();
    MainSequenceMessage::RPCInvoke(RPCInvoke {
        this_invoke_id: 1,
        endpoint: EntityID::new(7),
        args: RPCArgumentList(args),
    })
}

/// A self-describing value as a Rust developer would write it for serde: the `Any` options the
/// bench uses, externally tagged (serde's default for enums).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    I64(i64),
    F64(f64),
    U8(u8),
    Vec3([f32; 3]),
    Vec4([f32; 4]),
    Entity(u64),
    Arr(Vec<Val>),
    Map(Vec<(Val, Val)>),
}

/// The `RPCInvoke` for serde: the same fields, its arguments as [`Val`]s.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct SerdeInvoke {
    this_invoke_id: u32,
    endpoint: u64,
    args: Vec<Val>,
}

impl Val {
    fn from_any(a: &Any) -> Val {
        match a {
            Any::AnyString(s) => Val::Str(s.0.clone()),
            Any::I64(x) => Val::I64(*x),
            Any::F64(x) => Val::F64(*x),
            Any::U8(x) => Val::U8(*x),
            Any::Vec3(v) => Val::Vec3([v.x.get(), v.y.get(), v.z.get()]),
            Any::Vec4(v) => Val::Vec4([v.x.get(), v.y.get(), v.z.get(), v.w.get()]),
            Any::EntityID(e) => Val::Entity(e.id.get()),
            Any::AnyArray(xs) => Val::Arr(xs.iter().map(Val::from_any).collect()),
            Any::AnyMap(kvs) => Val::Map(
                kvs.iter()
                    .map(|kv| (Val::from_any(&kv.key), Val::from_any(&kv.value)))
                    .collect(),
            ),
            other => unreachable!("the bench's values use no {}", other.option_name()),
        }
    }
}

/// The CBOR tag of a little-endian float32 typed array (RFC 8746), for `Vec3` and `Vec4`.
const CBOR_TAG_F32_LE: u64 = 85;
/// An application CBOR tag for entity ids (CBOR has no standard one).
const CBOR_TAG_ENTITY: u64 = 0x4e32;

/// The same value as CBOR's own dynamic value: strings, integers (CBOR has one integer type, so
/// `U8` and `I64` both become integers), floats, arrays and maps natively, vectors as RFC 8746
/// float32 typed arrays and entity ids under an application tag.
fn cbor_value(v: &Val) -> ciborium::Value {
    use ciborium::Value as C;
    let f32s = |xs: &[f32]| {
        C::Tag(
            CBOR_TAG_F32_LE,
            Box::new(C::Bytes(xs.iter().flat_map(|x| x.to_le_bytes()).collect())),
        )
    };
    match v {
        Val::Str(s) => C::Text(s.clone()),
        Val::I64(x) => C::Integer((*x).into()),
        Val::F64(x) => C::Float(*x),
        Val::U8(x) => C::Integer((*x).into()),
        Val::Vec3(xs) => f32s(xs),
        Val::Vec4(xs) => f32s(xs),
        Val::Entity(id) => C::Tag(CBOR_TAG_ENTITY, Box::new(C::Integer((*id).into()))),
        Val::Arr(xs) => C::Array(xs.iter().map(cbor_value).collect()),
        Val::Map(kvs) => C::Map(
            kvs.iter()
                .map(|(k, v)| (cbor_value(k), cbor_value(v)))
                .collect(),
        ),
    }
}

fn content_of(m: &ContentMessage) -> &Bytes {
    match m {
        ContentMessage::ContentModifyComponents(c) => &c.content.0,
        _ => unreachable!(),
    }
}

/// The operations measured, each taking what it needs by reference.
struct Cases {
    transforms: ContentMessage,
    transforms_frame: Bytes,
    invoke: MainSequenceMessage,
    invoke_frame: Bytes,
    /// The same `RPCInvoke` for serde, and its CBOR and MessagePack encodings.
    serde_invoke: SerdeInvoke,
    cbor: Vec<u8>,
    msgpack: Vec<u8>,
    /// The same `RPCInvoke` as CBOR's dynamic value, and its encoding.
    cbor_value: ciborium::Value,
    cbor_value_bytes: Vec<u8>,
}

impl Cases {
    fn new() -> Cases {
        let transforms = transforms_message();
        let transforms_frame = transforms.encode_bytes().expect("encodes");
        let invoke = any_heavy_invoke();
        let invoke_frame = invoke.encode_bytes().expect("encodes");
        let MainSequenceMessage::RPCInvoke(i) = &invoke else {
            unreachable!()
        };
        let serde_invoke = SerdeInvoke {
            this_invoke_id: i.this_invoke_id,
            endpoint: i.endpoint.id.get(),
            args: i.args.iter().map(Val::from_any).collect(),
        };
        let cbor_value = ciborium::Value::Array(vec![
            ciborium::Value::Integer(serde_invoke.this_invoke_id.into()),
            ciborium::Value::Tag(
                CBOR_TAG_ENTITY,
                Box::new(ciborium::Value::Integer(serde_invoke.endpoint.into())),
            ),
            ciborium::Value::Array(serde_invoke.args.iter().map(cbor_value).collect()),
        ]);
        let mut cases = Cases {
            transforms,
            transforms_frame,
            invoke,
            invoke_frame,
            serde_invoke,
            cbor: Vec::new(),
            msgpack: Vec::new(),
            cbor_value,
            cbor_value_bytes: Vec::new(),
        };
        cases.cbor = cases.encode_cbor();
        cases.msgpack = cases.encode_msgpack();
        cases.cbor_value_bytes = cases.encode_cbor_value();
        cases
    }

    /// Every format decodes back to the value it was encoded from.
    fn check_round_trips(&self) {
        assert_eq!(
            MainSequenceMessage::decode(self.invoke_frame.clone()).expect("decodes"),
            self.invoke
        );
        let cbor: SerdeInvoke = ciborium::from_reader(&self.cbor[..]).expect("CBOR decodes");
        assert_eq!(cbor, self.serde_invoke);
        let msgpack: SerdeInvoke =
            rmp_serde::from_slice(&self.msgpack).expect("MessagePack decodes");
        assert_eq!(msgpack, self.serde_invoke);
        let value: ciborium::Value =
            ciborium::from_reader(&self.cbor_value_bytes[..]).expect("CBOR value decodes");
        assert_eq!(value, self.cbor_value);
    }

    fn encode_transforms(&self) -> usize {
        self.transforms.encode().expect("encodes").len()
    }

    fn decode_transforms(&self) -> usize {
        let m = ContentMessage::decode(self.transforms_frame.clone()).expect("decodes");
        content_of(&m).len()
    }

    /// Decode, then view the records in place and read the last one.
    fn decode_view(&self) -> f32 {
        let m = ContentMessage::decode(self.transforms_frame.clone()).expect("decodes");
        let pairs = <[Pair]>::ref_from_bytes(content_of(&m)).expect("whole records");
        let last = pairs[pairs.len() - 1];
        last.t.position.x.get() + pairs.len() as f32
    }

    /// Decode, then copy the records out into an owned Vec.
    fn decode_owned(&self) -> Vec<Pair> {
        let m = ContentMessage::decode(self.transforms_frame.clone()).expect("decodes");
        <[Pair]>::ref_from_bytes(content_of(&m))
            .expect("whole records")
            .to_vec()
    }

    fn encode_invoke(&self) -> usize {
        self.invoke.encode().expect("encodes").len()
    }

    fn decode_invoke(&self) -> usize {
        match MainSequenceMessage::decode(self.invoke_frame.clone()).expect("decodes") {
            MainSequenceMessage::RPCInvoke(i) => i.args.len(),
            _ => unreachable!(),
        }
    }

    fn encode_cbor(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(&self.serde_invoke, &mut out).expect("encodes");
        out
    }

    fn decode_cbor(&self) -> usize {
        let v: SerdeInvoke = ciborium::from_reader(&self.cbor[..]).expect("decodes");
        v.args.len()
    }

    fn encode_cbor_value(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(&self.cbor_value, &mut out).expect("encodes");
        out
    }

    fn decode_cbor_value(&self) -> usize {
        let v: ciborium::Value =
            ciborium::from_reader(&self.cbor_value_bytes[..]).expect("decodes");
        v.as_array().map_or(0, Vec::len)
    }

    fn encode_msgpack(&self) -> Vec<u8> {
        rmp_serde::to_vec(&self.serde_invoke).expect("encodes")
    }

    fn decode_msgpack(&self) -> usize {
        let v: SerdeInvoke = rmp_serde::from_slice(&self.msgpack).expect("decodes");
        v.args.len()
    }

    /// The `RPCInvoke` in every format, NOODLES2's encode and decode first.
    fn invoke_cases(&self) -> Vec<InvokeCase<'_>> {
        let (small, cbor, value, msgpack) = (
            self.invoke_frame.len(),
            self.cbor.len(),
            self.cbor_value_bytes.len(),
            self.msgpack.len(),
        );
        vec![
            InvokeCase::new("encode", "NOODLES2 Any  encode", small, || {
                self.encode_invoke()
            }),
            InvokeCase::new("decode", "NOODLES2 Any  decode", small, || {
                self.decode_invoke()
            }),
            InvokeCase::new(
                "cbor_serde_encode",
                "CBOR (serde enum, ciborium)  encode",
                cbor,
                || self.encode_cbor().len(),
            ),
            InvokeCase::new(
                "cbor_serde_decode",
                "CBOR (serde enum, ciborium)  decode",
                cbor,
                || self.decode_cbor(),
            ),
            InvokeCase::new(
                "cbor_value_encode",
                "CBOR (ciborium::Value)  encode",
                value,
                || self.encode_cbor_value().len(),
            ),
            InvokeCase::new(
                "cbor_value_decode",
                "CBOR (ciborium::Value)  decode",
                value,
                || self.decode_cbor_value(),
            ),
            InvokeCase::new(
                "msgpack_encode",
                "MessagePack (serde enum, rmp-serde)  encode",
                msgpack,
                || self.encode_msgpack().len(),
            ),
            InvokeCase::new(
                "msgpack_decode",
                "MessagePack (serde enum, rmp-serde)  decode",
                msgpack,
                || self.decode_msgpack(),
            ),
        ]
    }
}

/// One format's encode or decode of the `RPCInvoke`.
struct InvokeCase<'a> {
    /// Criterion's name (NOODLES2's keep the names they had before the comparison).
    id: &'static str,
    /// The table's name.
    label: &'static str,
    /// Bytes of this format's encoding.
    bytes: usize,
    run: Box<dyn Fn() -> usize + 'a>,
}

impl<'a> InvokeCase<'a> {
    fn new(
        id: &'static str,
        label: &'static str,
        bytes: usize,
        run: impl Fn() -> usize + 'a,
    ) -> Self {
        InvokeCase {
            id,
            label,
            bytes,
            run: Box::new(run),
        }
    }
}

fn criterion_benches(c: &mut Criterion, cases: &Cases) {
    let n = cases.transforms_frame.len() as u64;
    let mut g = c.benchmark_group("transforms_100k");
    g.throughput(Throughput::Bytes(n))
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    let src = cases.transforms_frame.to_vec();
    let mut dst = vec![0u8; src.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
    g.bench_function("encode", |b| {
        b.iter(|| black_box(cases.encode_transforms()))
    });
    g.bench_function("decode", |b| {
        b.iter(|| black_box(cases.decode_transforms()))
    });
    g.bench_function("decode_zero_copy_view", |b| {
        b.iter(|| black_box(cases.decode_view()))
    });
    g.bench_function("decode_owned_to_vec", |b| {
        b.iter(|| black_box(cases.decode_owned()))
    });
    g.finish();

    let n = cases.invoke_frame.len() as u64;
    let mut g = c.benchmark_group("rpc_invoke_any_200");
    g.throughput(Throughput::Bytes(n))
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    let src = cases.invoke_frame.to_vec();
    let mut dst = vec![0u8; src.len()];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
    // NOODLES2, then CBOR and MessagePack carrying the same values, each with the throughput of
    // its own encoding's bytes.
    for c in cases.invoke_cases() {
        g.throughput(Throughput::Bytes(c.bytes as u64));
        g.bench_function(c.id, |b| b.iter(|| black_box((c.run)())));
    }
    g.finish();
}

/// The median of `iters` timed runs of `f` (after a few warm-up runs).
fn median<R>(iters: usize, mut f: impl FnMut() -> R) -> Duration {
    for _ in 0..5 {
        black_box(f());
    }
    let mut times: Vec<Duration> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn memcpy_median(bytes: usize, iters: usize) -> Duration {
    let src: Vec<u8> = (0..bytes).map(|i| i as u8).collect();
    let mut dst = vec![0u8; bytes];
    median(iters, || {
        dst.copy_from_slice(black_box(&src));
        black_box(dst.as_mut_ptr());
    })
}

/// Medians of `iters` timed runs of each of `fs`, interleaved: every round runs each case once
/// untimed (so it starts with its own data in the caches, as in a loop of it alone) and once timed,
/// so a drifting machine slows every case alike.
fn medians_interleaved(iters: usize, fs: &[&dyn Fn() -> usize]) -> Vec<Duration> {
    for _ in 0..5 {
        for f in fs {
            black_box(f());
        }
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(iters); fs.len()];
    for _ in 0..iters {
        for (f, ts) in fs.iter().zip(&mut times) {
            black_box(f());
            let t = Instant::now();
            black_box(f());
            ts.push(t.elapsed());
        }
    }
    times
        .into_iter()
        .map(|mut ts| {
            ts.sort();
            ts[ts.len() / 2]
        })
        .collect()
}

/// One row of the table: the case, bytes, median, memcpy of the same bytes, and NOODLES2's median
/// for the same operation (for the `RPCInvoke` rows).
struct Row {
    name: String,
    bytes: usize,
    t: Duration,
    memcpy: Duration,
    noodles2: Option<Duration>,
}

fn table(cases: &Cases) {
    const ITERS: usize = 50;
    let big = cases.transforms_frame.len();
    let small = cases.invoke_frame.len();
    // Memcpy first and last, so a drifting machine shows up as two different baselines.
    let memcpy_big = memcpy_median(big, ITERS);
    let memcpy_small = memcpy_median(small, ITERS * 20);
    let row = |name: &str, bytes: usize, t: Duration, memcpy: Duration| Row {
        name: name.to_string(),
        bytes,
        t,
        memcpy,
        noodles2: None,
    };
    let mut rows: Vec<Row> = vec![
        row("transforms_100k  memcpy", big, memcpy_big, memcpy_big),
        row(
            "transforms_100k  encode",
            big,
            median(ITERS, || cases.encode_transforms()),
            memcpy_big,
        ),
        row(
            "transforms_100k  decode (Bytes slice)",
            big,
            median(ITERS, || cases.decode_transforms()),
            memcpy_big,
        ),
        row(
            "transforms_100k  decode + zero-copy view",
            big,
            median(ITERS, || cases.decode_view()),
            memcpy_big,
        ),
        row(
            "transforms_100k  decode + owned to_vec",
            big,
            median(ITERS, || cases.decode_owned()),
            memcpy_big,
        ),
        row(
            "rpc_invoke_any_200  memcpy",
            small,
            memcpy_small,
            memcpy_small,
        ),
    ];
    // The RPCInvoke in every format, timed interleaved; NOODLES2's encode and decode come first.
    let invoke = cases.invoke_cases();
    let fs: Vec<&dyn Fn() -> usize> = invoke.iter().map(|c| &*c.run).collect();
    let times = medians_interleaved(ITERS, &fs);
    let (noodles2_encode, noodles2_decode) = (times[0], times[1]);
    for (c, t) in invoke.iter().zip(times) {
        let memcpy = if c.bytes == small {
            memcpy_small
        } else {
            memcpy_median(c.bytes, ITERS * 20)
        };
        let noodles2 = if c.id.ends_with("encode") {
            noodles2_encode
        } else {
            noodles2_decode
        };
        rows.push(Row {
            name: format!("rpc_invoke_any_200  {}", c.label),
            bytes: c.bytes,
            t,
            memcpy,
            noodles2: Some(noodles2),
        });
    }
    let memcpy_big_again = memcpy_median(big, ITERS);
    println!();
    println!(
        "codec throughput, medians of {ITERS} iterations in this run (x memcpy = time / memcpy of the same bytes; x noodles2 = time / NOODLES2's time for the same operation)"
    );
    println!(
        "{:<64} {:>10} {:>12} {:>11} {:>9} {:>10}",
        "case", "bytes", "median", "GB/s", "x memcpy", "x noodles2"
    );
    for r in rows {
        let gbps = r.bytes as f64 / r.t.as_secs_f64() / 1e9;
        let ratio = r.t.as_secs_f64() / r.memcpy.as_secs_f64();
        let vs = match r.noodles2 {
            Some(n) => format!("{:.3}", r.t.as_secs_f64() / n.as_secs_f64()),
            None => String::new(),
        };
        println!(
            "{:<64} {:>10} {:>12} {gbps:>11.2} {ratio:>9.3} {vs:>10}",
            r.name,
            r.bytes,
            format!("{:.2?}", r.t)
        );
    }
    println!(
        "(memcpy of {big} bytes measured again after the rows: {:.2?}; records: {RECORDS}, content {} bytes, RPCInvoke frame {small} bytes; the Any rows were timed interleaved)",
        memcpy_big_again,
        content_of(&cases.transforms).len()
    );
}

fn main() {
    let cases = Cases::new();
    assert_eq!(content_of(&cases.transforms).len(), RECORDS * 48);
    assert_eq!(cases.decode_owned().len(), RECORDS);
    cases.check_round_trips();
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &cases);
    c.final_summary();
    table(&cases);
}
