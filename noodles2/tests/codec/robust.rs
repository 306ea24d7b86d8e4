//! Robustness of decoding: hostile, truncated and mutated frames give typed errors (never a panic,
//! a stack overflow or a huge allocation), and the errors say where they happened.

use bytes::Bytes;
use noodles2::codec::*;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::alloc::measure;
use super::golden::{self, Frame, frame};
use super::hex;
use super::strategies::*;

/// A small, fixed-seed PRNG (splitmix64) so the mutation runs are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Frames made by the generated strategies (fixed seed): a few of every type, more of the top-level
/// messages.
pub(super) fn generated_frames() -> Vec<Frame> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let mut out = Vec::new();
    macro_rules! gen_frames {
        ($t:ident, $s:ident) => {{
            let top = matches!(
                stringify!($t),
                "PreMessage" | "MainSequenceMessage" | "OOBRequest" | "OOBReply" | "ContentMessage"
            );
            let strategy = $s(super::roundtrip::DEPTH);
            for i in 0..if top { 24 } else { 3 } {
                let v = strategy.new_tree(&mut runner).expect("strategy").current();
                out.push(frame(format!("{}#{i}", stringify!($t)), &v));
            }
        }};
    }
    for_every_codec_type!(gen_frames);
    out
}

/// Decode and check the outcome: an error, or a value whose encoding is a fixed point.
fn check_decode(f: &Frame, bytes: Vec<u8>, what: &str) -> bool {
    let len = bytes.len();
    match (f.redecode)(Bytes::from(bytes)) {
        Ok(encoded) => {
            // Strict decoding consumed every byte, and every value has one encoded size.
            assert_eq!(
                encoded.len(),
                len,
                "{}: {what}: re-encoding changed the size",
                f.name
            );
            // Decoding normalizes (e.g. unknown enum values to the default), so compare the second
            // round with the first.
            let again = (f.redecode)(Bytes::from(encoded.clone())).unwrap_or_else(|e| {
                panic!("{}: {what}: re-encoded value does not decode: {e}", f.name)
            });
            assert_eq!(again, encoded, "{}: {what}: encoding is not stable", f.name);
            true
        }
        Err(e) => {
            // Every error renders with a path that starts at the top-level type.
            let text = e.to_string();
            assert!(!text.is_empty());
            false
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    let frames: Vec<Frame> = golden::frames()
        .into_iter()
        .chain(generated_frames())
        .collect();
    let mut n = 0;
    for f in &frames {
        assert!(
            (f.redecode)(Bytes::from(f.bytes.clone())).is_ok(),
            "{} does not decode",
            f.name
        );
        for len in 0..f.bytes.len() {
            let e = (f.redecode)(Bytes::copy_from_slice(&f.bytes[..len]))
                .expect_err(&format!("{}: a {len}-byte prefix decoded", f.name));
            assert!(
                matches!(
                    e.kind,
                    DecodeErrorKind::UnexpectedEnd { .. }
                        | DecodeErrorKind::CountExceedsRemaining { .. }
                ),
                "{}: prefix of {len} bytes: {e}",
                f.name
            );
            n += 1;
        }
    }
    assert!(n > 1000, "only {n} truncations were tried");
}

#[test]
fn random_mutations_never_panic() {
    let frames: Vec<Frame> = golden::frames()
        .into_iter()
        .chain(generated_frames())
        .collect();
    let mut rng = Rng(0x05ee_d0fc_0dec);
    let (mut ok, mut err) = (0usize, 0usize);
    for f in &frames {
        let rounds = if f.name.contains('#') { 40 } else { 400 };
        for round in 0..rounds {
            let mut b = f.bytes.clone();
            let edits = 1 + rng.below(4);
            for _ in 0..edits {
                let interesting = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];
                match rng.below(4) {
                    // Flip one bit.
                    0 if !b.is_empty() => {
                        let i = rng.below(b.len());
                        b[i] ^= 1 << rng.below(8);
                    }
                    // Insert a byte.
                    1 => {
                        let i = rng.below(b.len() + 1);
                        let v = if rng.below(2) == 0 {
                            interesting[rng.below(6)]
                        } else {
                            rng.next() as u8
                        };
                        b.insert(i, v);
                    }
                    // Delete a byte.
                    2 if !b.is_empty() => {
                        b.remove(rng.below(b.len()));
                    }
                    // Overwrite a byte.
                    _ if !b.is_empty() => {
                        let i = rng.below(b.len());
                        b[i] = if rng.below(2) == 0 {
                            interesting[rng.below(6)]
                        } else {
                            rng.next() as u8
                        };
                    }
                    _ => b.push(rng.next() as u8),
                }
            }
            if check_decode(f, b, &format!("mutation round {round}")) {
                ok += 1;
            } else {
                err += 1;
            }
        }
    }
    assert!(ok + err > 5000, "only {} mutations were tried", ok + err);
    assert!(err > 0 && ok > 0, "mutations: {ok} decoded, {err} errors");
}

/// Decode, expecting an error.
fn err_of<T: Wire + std::fmt::Debug>(h: &str) -> DecodeError {
    T::decode(Bytes::from(hex(h))).expect_err("decoding should fail")
}

#[test]
fn huge_count_in_a_small_frame_fails_before_allocating() {
    let count_err = |e: &DecodeError| match e.kind {
        DecodeErrorKind::CountExceedsRemaining { count, left } => (count, left),
        ref k => panic!("expected CountExceedsRemaining, got {k:?} ({e})"),
    };
    // Each frame is 12 bytes; the counts claim u32::MAX (or u64::MAX) elements.
    type Decode = fn(Bytes) -> Result<(), DecodeError>;
    fn dec<T: Wire>(b: Bytes) -> Result<(), DecodeError> {
        T::decode(b).map(drop)
    }
    let max32 = u32::MAX as u64;
    let cases: [(&str, Decode, &str, u64, usize); 8] = [
        (
            "EntityList",
            dec::<EntityList>,
            "ffffffff 0100000000000000",
            max32,
            8,
        ),
        (
            "Content",
            dec::<Content>,
            "ffffffff 0100000000000000",
            max32,
            8,
        ),
        (
            "AnyString",
            dec::<Any>,
            "04 ffffffff 61626364656667",
            max32,
            7,
        ),
        (
            "AnyArray",
            dec::<Any>,
            "05 ffffffff 00000000000000",
            max32,
            7,
        ),
        ("AnyMap", dec::<Any>, "06 ffffffff 00000000000000", max32, 7),
        (
            "ContentArray",
            dec::<MainSequenceMessage>,
            "01 ffffffff 00000000000000",
            max32,
            7,
        ),
        (
            "OOBContent",
            dec::<OOBContent>,
            "ffffffffffffffff 01020304",
            u64::MAX,
            4,
        ),
        (
            "OOBReply",
            dec::<OOBReply>,
            "00 0700000000000000 ffffffffffffffff",
            u64::MAX,
            0,
        ),
    ];
    for (name, decode, h, count, left) in cases {
        let bytes = Bytes::from(hex(h));
        if name != "OOBReply" {
            assert_eq!(bytes.len(), 12, "{name}: frame size");
        }
        let (r, allocs) = measure(|| decode(bytes));
        let e = r.expect_err(name);
        assert_eq!(count_err(&e), (count, left), "{name}: {e}");
        assert!(
            allocs.largest < 256 && allocs.total < 1024,
            "{name}: decoding allocated {allocs:?}"
        );
    }
    // The message is exactly as documented.
    let e = err_of::<EntityList>("ffffffff 0100000000000000");
    assert_eq!(
        e.to_string(),
        "EntityList: count 4294967295 exceeds the 8 bytes left"
    );
}

#[test]
fn counts_are_checked_against_the_element_size() {
    // 2 EntityIDs need 16 bytes; 15 are left.
    let e = err_of::<EntityList>("02000000 0100000000000000 02000000000000");
    assert_eq!(
        e.kind,
        DecodeErrorKind::CountExceedsRemaining { count: 2, left: 15 }
    );
    // A large decode of a valid frame allocates about what it holds, not what a count claims.
    let list = EntityList((0..1000).map(EntityID::new).collect());
    let bytes = list.encode_bytes().unwrap();
    let (r, allocs) = measure(|| EntityList::decode(bytes));
    assert_eq!(r.unwrap(), list);
    assert!(allocs.largest <= 8000 + 64, "{allocs:?}");
}

#[test]
fn nested_error_path_names_every_step() {
    let h = concat!(
        "01",          // MainSequenceMessage::Transaction
        "04000000",    // content count 4
        "00 00000000", // [0] ContentCreateEntities, empty list
        "00 00000000", // [1]
        "00 00000000", // [2]
        "02",          // [3] ContentModifyComponents
        "0000 1400",   //   component (0, 20)
        "00000000",    //   count
        "ffffffff",    //   content count u32::MAX
        "01020304",    //   4 bytes left
    );
    let e = err_of::<MainSequenceMessage>(h);
    assert_eq!(
        e.to_string(),
        "MainSequenceMessage::Transaction.content[3].ContentModifyComponents.content: count 4294967295 exceeds the 4 bytes left"
    );
    // An unknown discriminant deep inside names its place too.
    let e = err_of::<MainSequenceMessage>("01 02000000 00 00000000 09 0000000000000000");
    assert_eq!(e.kind, DecodeErrorKind::UnknownDiscriminant { value: 9 });
    assert_eq!(
        e.to_string(),
        "MainSequenceMessage::Transaction.content[1]: unknown discriminant 9"
    );
    // Invalid UTF-8 inside an RPC argument.
    let e = err_of::<MainSequenceMessage>("04 01000000 0a00000000000000 01 04 02000000 c328");
    assert_eq!(e.kind, DecodeErrorKind::InvalidUtf8);
    assert_eq!(
        e.to_string(),
        "MainSequenceMessage::RPCInvoke.args[0].AnyString: invalid UTF-8"
    );
}

#[test]
fn unknown_discriminants_are_errors() {
    for (h, value) in [("04", 4u64), ("ff", 255)] {
        assert_eq!(
            err_of::<PreMessage>(h).kind,
            DecodeErrorKind::UnknownDiscriminant { value }
        );
    }
    // Tag 0 is unused in the main sequence.
    assert_eq!(
        err_of::<MainSequenceMessage>("00").kind,
        DecodeErrorKind::UnknownDiscriminant { value: 0 }
    );
    assert_eq!(
        err_of::<MainSequenceMessage>("06").kind,
        DecodeErrorKind::UnknownDiscriminant { value: 6 }
    );
    assert_eq!(
        err_of::<Any>("10").kind,
        DecodeErrorKind::UnknownDiscriminant { value: 16 }
    );
    assert_eq!(
        err_of::<ContentMessage>("06").kind,
        DecodeErrorKind::UnknownDiscriminant { value: 6 }
    );
    assert_eq!(
        err_of::<OOBRequest>("01 0700000000000000").kind,
        DecodeErrorKind::UnknownDiscriminant { value: 1 }
    );
    assert_eq!(
        err_of::<OOBReply>("02").kind,
        DecodeErrorKind::UnknownDiscriminant { value: 2 }
    );
    assert_eq!(
        err_of::<OOBAssetInfo>("02").kind,
        DecodeErrorKind::UnknownDiscriminant { value: 2 }
    );
    assert_eq!(
        err_of::<RPCReplyContent>("03 00").kind,
        DecodeErrorKind::UnknownDiscriminant { value: 3 }
    );
    assert_eq!(
        err_of::<BufferSource>("03").kind,
        DecodeErrorKind::UnknownDiscriminant { value: 3 }
    );
    assert_eq!(
        err_of::<ParamStateComponent>("0b").kind,
        DecodeErrorKind::UnknownDiscriminant { value: 11 }
    );
}

#[test]
fn unknown_enum_values_become_the_default_or_an_error() {
    // Declared default (`>`): VisibilityComponent 7 reads as Inherited, and re-encodes as 0.
    let v = VisibilityComponent::decode_slice(&[7]).unwrap();
    assert_eq!(v, VisibilityComponent::Inherited);
    assert_eq!(v.encode().unwrap(), vec![0]);
    assert_eq!(
        VisibilityComponent::decode_slice(&[2]).unwrap(),
        VisibilityComponent::Invisible
    );
    // A defaulted enum inside a pack keeps its raw value; the accessor reads the default.
    let mut sampler = vec![0u8; 48];
    sampler.extend_from_slice(&[9, 9, 2, 0, 0, 0]); // interpolation 9, value_type 9, keyframe_count 2
    let s = AnimSamplerAsset::decode_slice(&sampler).unwrap();
    assert_eq!(s.interpolation(), AnimInterpolation::Linear);
    assert_eq!(s.value_type(), AnimationValueType::Float);
    // A defaulted enum inside bits: EnvironmentFlags.format (bits 1-2) 3 reads as Equirect.
    let env = EnvironmentAsset::decode_slice(&hex("06000000 00 00 00")).unwrap();
    assert_eq!(env.flags.format(), EnvironmentFormat::Equirect);

    // No default: an error, naming the field.
    let e = err_of::<BillboardComponent>("02");
    assert_eq!(e.kind, DecodeErrorKind::UnknownEnumValue { value: 2 });
    assert_eq!(
        e.to_string(),
        "BillboardComponent.mode: unknown enum value 2 (the enum declares no default)"
    );
    let e = err_of::<BillboardMode>("05");
    assert_eq!(e.kind, DecodeErrorKind::UnknownEnumValue { value: 5 });
    // In a seq: LabelDefinition.kind.
    let e = err_of::<ParamDefinitionComponent>("00 0000 04");
    assert_eq!(
        e.to_string(),
        "ParamDefinitionComponent::LabelDefinition.kind: unknown enum value 4 (the enum declares no default)"
    );
    // In bits: MeshAsset.flags.primitive_type (bits 11-13) = 1 has no member.
    let mut mesh = golden::frames()
        .into_iter()
        .find(|f| f.name == "mesh_asset")
        .unwrap()
        .bytes;
    mesh[28 + 1] |= 1 << 3; // flags is at offset 28 (after view and vertex_count); bit 11 is bit 3 of its high byte
    let e = MeshAsset::decode_slice(&mesh).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::UnknownEnumValue { value: 1 });
    assert_eq!(
        e.to_string(),
        "MeshAsset.flags.primitive_type: unknown enum value 1 (the enum declares no default)"
    );
    // In a pack in an array: InstanceComponent.instance_type = 2.
    let mut inst = vec![0u8; InstanceComponent::SIZE];
    inst[28] = 2; // view (24) + instance_count (4)
    let e = InstanceComponent::decode_slice(&inst).unwrap_err();
    assert_eq!(
        e.to_string(),
        "InstanceComponent.instance_type: unknown enum value 2 (the enum declares no default)"
    );
}

#[test]
fn trailing_bytes_are_an_error() {
    let e = err_of::<PreMessage>("00 00");
    assert_eq!(e.kind, DecodeErrorKind::TrailingBytes { count: 1 });
    assert_eq!(
        e.to_string(),
        "PreMessage: 1 trailing bytes after the message"
    );
    let e = err_of::<EntityID>("0100000000000000 ffff");
    assert_eq!(e.kind, DecodeErrorKind::TrailingBytes { count: 2 });
    for f in golden::frames() {
        let mut b = f.bytes.clone();
        b.push(0);
        let e = (f.redecode)(Bytes::from(b)).expect_err(&f.name);
        assert_eq!(
            e.kind,
            DecodeErrorKind::TrailingBytes { count: 1 },
            "{}",
            f.name
        );
    }
}

#[test]
fn invalid_utf8_is_an_error() {
    let e = err_of::<NameComponent>("0200 fffe");
    assert_eq!(e.kind, DecodeErrorKind::InvalidUtf8);
    assert_eq!(e.to_string(), "NameComponent: invalid UTF-8");
    // A truncated multi-byte sequence.
    assert_eq!(
        err_of::<NameComponent>("0100 e2").kind,
        DecodeErrorKind::InvalidUtf8
    );
    // Valid UTF-8 decodes.
    assert_eq!(
        NameComponent::decode_slice(&hex("0200 c3a9")).unwrap().0,
        "é"
    );
    // Byte arrays not marked UTF-8 take anything.
    assert!(AnyBytes::decode_slice(&hex("02000000 fffe")).is_ok());
}

/// `n` nested `AnyArray`s of one element around a void.
fn nested_any(n: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(n * 5 + 1);
    for _ in 0..n {
        b.extend_from_slice(&[5, 1, 0, 0, 0]);
    }
    b.push(0);
    b
}

#[test]
fn deep_nesting_is_too_deep_not_a_stack_overflow() {
    // 64 levels of Any (63 arrays around a void) are fine; 65 are not.
    assert!(Any::decode_slice(&nested_any(63)).is_ok());
    let e = Any::decode_slice(&nested_any(64)).unwrap_err();
    assert_eq!(
        e.kind,
        DecodeErrorKind::TooDeep {
            limit: rt::MAX_DEPTH
        }
    );
    // A hostile frame a million levels deep fails the same way, quickly.
    let e = Any::decode_slice(&nested_any(1_000_000)).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::TooDeep { limit: 64 });
    // Through map keys, and inside a top-level message.
    let mut keys = Vec::new();
    for _ in 0..200 {
        keys.extend_from_slice(&[6, 1, 0, 0, 0]); // AnyMap with one pair, whose key is ...
    }
    let e = Any::decode_slice(&keys).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::TooDeep { limit: 64 });
    let mut invoke = hex("04 01000000 0a00000000000000 01");
    invoke.extend_from_slice(&nested_any(100));
    let e = MainSequenceMessage::decode_slice(&invoke).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::TooDeep { limit: 64 });
    assert!(
        e.to_string()
            .starts_with("MainSequenceMessage::RPCInvoke.args[0].AnyArray[0].AnyArray[0]"),
        "{e}"
    );
    // Also when the decode runs on a thread with a small stack.
    let small = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| Any::decode_slice(&nested_any(10_000)).map(drop))
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert!(matches!(
        small,
        Err(DecodeError {
            kind: DecodeErrorKind::TooDeep { .. },
            ..
        })
    ));
}

#[test]
fn values_that_do_not_fit_their_count_fail_to_encode() {
    let long = "x".repeat(256);
    let v = PreMessage::Introduction(Introduction {
        header: IntroductionHeader {
            name: long.as_str().into(),
            ..Default::default()
        },
    });
    let e = v.encode().unwrap_err();
    assert_eq!(e.kind, EncodeErrorKind::TooLong { len: 256, max: 255 });
    assert_eq!(
        e.to_string(),
        "PreMessage::Introduction.header.name: 256 elements do not fit a count of at most 255"
    );
    // 255 fits.
    let v = PreMessage::Introduction(Introduction {
        header: IntroductionHeader {
            name: "x".repeat(255).as_str().into(),
            ..Default::default()
        },
    });
    assert_eq!(v.encode().unwrap().len(), 1 + 2 + 2 + 1 + 255 + 2);
    let args = RPCArgumentList(vec![Any::Void; 256]);
    let e = RPCInvoke {
        this_invoke_id: 1,
        endpoint: EntityID::new(1),
        args,
    }
    .encode()
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "RPCInvoke.args: 256 elements do not fit a count of at most 255"
    );
}

/// Every top-level message type decodes arbitrary short byte strings without panicking
/// (exhaustive over all 1- and 2-byte frames, plus every 3-byte frame for the small unions).
#[test]
fn all_short_frames_decode_or_fail_cleanly() {
    fn all<T: Wire>(max_len: usize) {
        for b0 in 0..=255u8 {
            let _ = T::decode_slice(&[b0]);
            for b1 in 0..=255u8 {
                let _ = T::decode_slice(&[b0, b1]);
                if max_len >= 3 {
                    for b2 in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
                        let _ = T::decode_slice(&[b0, b1, b2]);
                    }
                }
            }
        }
    }
    all::<PreMessage>(3);
    all::<MainSequenceMessage>(3);
    all::<OOBRequest>(2);
    all::<OOBReply>(2);
    all::<Any>(3);
    all::<ContentMessage>(2);
}

/// The strategies also feed a generic check: each generated value, decoded as every top-level type,
/// never panics (cross-type confusion is a common fuzzing find).
#[test]
fn frames_decoded_as_the_wrong_type_fail_cleanly() {
    let frames: Vec<Frame> = golden::frames()
        .into_iter()
        .chain(generated_frames())
        .collect();
    for f in &frames {
        let b = Bytes::from(f.bytes.clone());
        let _ = PreMessage::decode(b.clone());
        let _ = MainSequenceMessage::decode(b.clone());
        let _ = OOBRequest::decode(b.clone());
        let _ = OOBReply::decode(b.clone());
        let _ = MeshAsset::decode(b.clone());
        let _ = PBRMaterialAsset::decode(b.clone());
        let _ = ParamDefinitionComponent::decode(b);
    }
}

#[test]
fn generated_values_of_every_type_have_stable_encodings() {
    // `check_decode` on unmodified frames: decode, re-encode, and the re-encoding is identical.
    for f in generated_frames() {
        let encoded = (f.redecode)(Bytes::from(f.bytes.clone()))
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(encoded, f.bytes, "{}", f.name);
    }
    // Sanity: the strategy machinery used above is deterministic for a fixed seed.
    let a: Vec<Vec<u8>> = generated_frames().into_iter().map(|f| f.bytes).collect();
    let b: Vec<Vec<u8>> = generated_frames().into_iter().map(|f| f.bytes).collect();
    assert_eq!(a, b);
}

#[test]
fn the_generated_list_of_every_type_is_complete() {
    // The fuzz target `every_type` walks `EVERY_TYPE`; it must hold every type the strategies
    // (generated from the same schema) know, each decoding its own frames.
    let mut names = Vec::new();
    macro_rules! name {
        ($t:ident, $s:ident) => {
            names.push(stringify!($t));
        };
    }
    for_every_codec_type!(name);
    let listed: Vec<&str> = EVERY_TYPE.iter().map(|(n, _)| *n).collect();
    assert_eq!(listed.len(), names.len());
    for n in &names {
        assert!(listed.contains(n), "{n} is not in EVERY_TYPE");
    }
    for f in generated_frames() {
        let ty = f.name.split('#').next().unwrap();
        let (_, redecode) = EVERY_TYPE.iter().find(|(n, _)| *n == ty).expect("listed");
        assert_eq!(
            redecode(Bytes::from(f.bytes.clone())).expect("decodes"),
            f.bytes,
            "{}",
            f.name
        );
    }
}
