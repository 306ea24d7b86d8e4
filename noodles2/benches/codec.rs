//! Codec throughput: a 100,000-record `ContentModifyComponents` of (EntityID, TransformComponent)
//! pairs (4.8 MB of content), viewed in place or copied out, and an `Any`-heavy `RPCInvoke`.
//!
//! Criterion measures each case; afterwards a table is printed whose medians are taken in the same
//! run (50 timed iterations each with `Instant`) next to a plain memcpy of the same number of
//! bytes, so the ratios are comparable. Run with `cargo bench --bench codec`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use noodles2::codec::*;
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
}

impl Cases {
    fn new() -> Cases {
        let transforms = transforms_message();
        let transforms_frame = transforms.encode_bytes().expect("encodes");
        let invoke = any_heavy_invoke();
        let invoke_frame = invoke.encode_bytes().expect("encodes");
        Cases {
            transforms,
            transforms_frame,
            invoke,
            invoke_frame,
        }
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
    g.bench_function("encode", |b| b.iter(|| black_box(cases.encode_invoke())));
    g.bench_function("decode", |b| b.iter(|| black_box(cases.decode_invoke())));
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

fn table(cases: &Cases) {
    const ITERS: usize = 50;
    let big = cases.transforms_frame.len();
    let small = cases.invoke_frame.len();
    // Memcpy first and last, so a drifting machine shows up as two different baselines.
    let memcpy_big = memcpy_median(big, ITERS);
    let memcpy_small = memcpy_median(small, ITERS * 20);
    let rows: Vec<(&str, usize, Duration, Duration)> = vec![
        ("transforms_100k  memcpy", big, memcpy_big, memcpy_big),
        (
            "transforms_100k  encode",
            big,
            median(ITERS, || cases.encode_transforms()),
            memcpy_big,
        ),
        (
            "transforms_100k  decode (Bytes slice)",
            big,
            median(ITERS, || cases.decode_transforms()),
            memcpy_big,
        ),
        (
            "transforms_100k  decode + zero-copy view",
            big,
            median(ITERS, || cases.decode_view()),
            memcpy_big,
        ),
        (
            "transforms_100k  decode + owned to_vec",
            big,
            median(ITERS, || cases.decode_owned()),
            memcpy_big,
        ),
        (
            "rpc_invoke_any_200  memcpy",
            small,
            memcpy_small,
            memcpy_small,
        ),
        (
            "rpc_invoke_any_200  encode",
            small,
            median(ITERS, || cases.encode_invoke()),
            memcpy_small,
        ),
        (
            "rpc_invoke_any_200  decode",
            small,
            median(ITERS, || cases.decode_invoke()),
            memcpy_small,
        ),
    ];
    let memcpy_big_again = memcpy_median(big, ITERS);
    println!();
    println!(
        "codec throughput, medians of {ITERS} iterations in this run (ratio = time / memcpy of the same bytes)"
    );
    println!(
        "{:<44} {:>10} {:>12} {:>11} {:>9}",
        "case", "bytes", "median", "GB/s", "x memcpy"
    );
    for (name, bytes, t, base) in rows {
        let gbps = bytes as f64 / t.as_secs_f64() / 1e9;
        let ratio = t.as_secs_f64() / base.as_secs_f64();
        println!(
            "{name:<44} {bytes:>10} {:>12} {gbps:>11.2} {ratio:>9.3}",
            format!("{t:.2?}")
        );
    }
    println!(
        "(memcpy of {big} bytes measured again after the rows: {:.2?}; records: {RECORDS}, content {} bytes, RPCInvoke frame {small} bytes)",
        memcpy_big_again,
        content_of(&cases.transforms).len()
    );
}

fn main() {
    let cases = Cases::new();
    assert_eq!(content_of(&cases.transforms).len(), RECORDS * 48);
    assert_eq!(cases.decode_owned().len(), RECORDS);
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &cases);
    c.final_summary();
    table(&cases);
}
