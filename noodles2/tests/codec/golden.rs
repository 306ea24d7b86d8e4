//! Golden byte vectors, computed by hand from the `.jaw` layouts in the spec (not from our encoder):
//! everything little-endian, a `dyn_array` is its count (of the declared width) then its elements,
//! a `variant` is its discriminant (of the declared width) then the option, `pack`s and `seq`s are
//! their members back to back with no padding. Each vector is checked both ways: `encode` gives
//! exactly these bytes, and decoding these bytes gives back the value.
//!
//! Float bit patterns used below: 0.0 = `00000000`, 0.25 = `0000803e`, 0.5 = `0000003f`,
//! 1.0 = `0000803f`, 2.0 = `00000040`, 3.0 = `00004040`, 10.0 = `00002041`, -1.0 = `000080bf`
//! (f32); 1.5 = `000000000000f83f`, 2.5 = `0000000000000440` (f64).

use std::fmt::Debug;

use bytes::Bytes;
use noodles2::codec::*;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{hex, to_hex};

/// A valid frame of some type, with a type-erased "decode, then re-encode" for the robustness tests.
pub struct Frame {
    pub name: String,
    pub bytes: Vec<u8>,
    pub redecode: fn(Bytes) -> Result<Vec<u8>, DecodeError>,
}

/// Decode as `T` and re-encode.
pub fn redecode<T: Wire>(b: Bytes) -> Result<Vec<u8>, DecodeError> {
    T::decode(b).map(|v| v.encode().expect("a decoded value always re-encodes"))
}

pub fn frame<T: Wire>(name: impl Into<String>, value: &T) -> Frame {
    Frame {
        name: name.into(),
        bytes: value.encode().expect("encodes"),
        redecode: redecode::<T>,
    }
}

/// The check every golden vector goes through.
fn check<T: Wire + PartialEq + Debug>(value: &T, expected_hex: &str) {
    let expected = hex(expected_hex);
    let encoded = value.encode().expect("encodes");
    assert_eq!(
        to_hex(&encoded),
        to_hex(&expected),
        "encoding of {} differs from the hand-computed bytes",
        T::NAME
    );
    assert_eq!(value.wire_len(), expected.len(), "wire_len of {}", T::NAME);
    let decoded = T::decode(Bytes::from(expected.clone()))
        .unwrap_or_else(|e| panic!("decoding {}: {e}", T::NAME));
    assert_eq!(
        &decoded,
        value,
        "decoding the hand-computed bytes of {}",
        T::NAME
    );
    let decoded = T::decode_slice(&expected).expect("decode_slice");
    assert_eq!(&decoded, value);
}

fn core_component(identifier: u16) -> ComponentTypeID {
    ComponentTypeID::new(ExtensionID::new(EXTENSION_CORE), identifier)
}

fn core_asset(identifier: u16, id: u64) -> AnAsset {
    AnAsset::new(
        AssetTypeID::new(ExtensionID::new(EXTENSION_CORE), identifier),
        AssetID::new(id),
    )
}

/// Encode several values back to back (for `Content` payloads).
fn concat(parts: &[&[u8]]) -> Bytes {
    Bytes::from(parts.concat())
}

/// One (EntityID, TransformComponent) record of a `ContentModifyComponents` payload.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq,
)]
#[repr(C, packed)]
struct Pair {
    id: EntityID,
    t: TransformComponent,
}

/// Every golden case: a function returning the value and its hand-computed hex.
mod cases {
    use super::*;

    pub fn introduction() -> (PreMessage, &'static str) {
        let v = PreMessage::Introduction(Introduction {
            header: IntroductionHeader {
                protocol_version: 1,
                flags: IntroductionFlags::default().with_authority_request(1),
                name: "ab".into(),
                capabilities: PreambleCaps(vec![ExtensionID::new(0), ExtensionID::new(7)]),
            },
        });
        let h = concat!(
            "02",   // PreMessage discriminant (u8) 2 = Introduction
            "0100", // header.protocol_version (u16) = 1
            "0100", // header.flags (bits u16): bit 0 authority_request = 1
            "02",   // header.name count (u8) = 2
            "6162", // "ab"
            "0200", // header.capabilities count (u16) = 2
            "0000", // ExtensionID 0 (Core)
            "0700", // ExtensionID 7
        );
        (v, h)
    }

    pub fn introduction_reply_with_oob_ports() -> (PreMessage, &'static str) {
        let v = PreMessage::IntroductionReply(IntroductionReply {
            header: IntroductionHeader {
                protocol_version: 1,
                flags: IntroductionFlags::default(),
                name: "S".into(),
                capabilities: PreambleCaps(vec![ExtensionID::new(0)]),
            },
            large_assets: OOBAssetInfo::OOBAssetChannels(OOBAssetChannels {
                ports: OOBPorts(vec![8080, 8081]),
            }),
        });
        let h = concat!(
            "03",   // PreMessage discriminant 3 = IntroductionReply
            "0100", // header.protocol_version = 1
            "0000", // header.flags = 0
            "01",   // header.name count (u8) = 1
            "53",   // "S"
            "0100", // header.capabilities count (u16) = 1
            "0000", // ExtensionID 0
            "01",   // large_assets: OOBAssetInfo discriminant (u8) 1 = OOBAssetChannels
            "02",   // ports count (u8) = 2
            "901f", // port 8080 (u16)
            "911f", // port 8081 (u16)
        );
        (v, h)
    }

    pub fn introduction_reply_without_oob() -> (PreMessage, &'static str) {
        let v = PreMessage::IntroductionReply(IntroductionReply {
            header: IntroductionHeader {
                protocol_version: 1,
                flags: IntroductionFlags::default(),
                name: "".into(),
                capabilities: PreambleCaps(vec![]),
            },
            large_assets: OOBAssetInfo::Void,
        });
        let h = concat!(
            "03",   // PreMessage discriminant 3 = IntroductionReply
            "0100", // header.protocol_version = 1
            "0000", // header.flags = 0
            "00",   // header.name count = 0
            "0000", // header.capabilities count = 0
            "00",   // large_assets: OOBAssetInfo discriminant 0 = void
        );
        (v, h)
    }

    pub fn probe() -> (PreMessage, &'static str) {
        (PreMessage::Probe(Probe), "00") // PreMessage discriminant 0 = Probe, which has no members
    }

    pub fn probe_reply() -> (PreMessage, &'static str) {
        let v = PreMessage::ProbeReply(ProbeReply {
            name: "abc".into(),
            icon: PreambleIcon(Bytes::from_static(&[0x89, 0x50])),
        });
        let h = concat!(
            "01",       // PreMessage discriminant 1 = ProbeReply
            "03",       // name count (u8) = 3
            "616263",   // "abc"
            "02000000", // icon count (u32) = 2
            "8950",     // icon bytes
        );
        (v, h)
    }

    pub fn transaction_with_every_content_kind() -> (MainSequenceMessage, &'static str) {
        let buffer = BufferAsset {
            flags: BufferAssetFlags::default().with_hint(BufferDownloadHint::DEFER),
            source: BufferSource::InlineContent(InlineContent(Bytes::from_static(&[0xaa, 0xbb]))),
        };
        let v = MainSequenceMessage::Transaction(Transaction {
            content: ContentArray(vec![
                ContentMessage::ContentCreateEntities(ContentCreateEntities {
                    list: EntityList(vec![EntityID::new(1), EntityID::new(2)]),
                }),
                ContentMessage::ContentDeleteEntities(ContentDeleteEntities {
                    list: EntityList(vec![EntityID::new(3)]),
                }),
                ContentMessage::ContentModifyComponents(ContentModifyComponents {
                    component: core_component(21),
                    count: 1,
                    content: Content(concat(&[
                        &EntityID::new(1).encode().unwrap(),
                        &VisibilityComponent::Invisible.encode().unwrap(),
                    ])),
                }),
                ContentMessage::ContentDeleteComponents(ContentDeleteComponents {
                    component: core_component(15),
                    list: EntityList(vec![EntityID::new(2)]),
                }),
                ContentMessage::ContentModifyAsset(ContentModifyAsset {
                    an_asset: core_asset(0, 5),
                    content: Content(buffer.encode_bytes().unwrap()),
                }),
                ContentMessage::ContentDeleteAsset(ContentDeleteAsset {
                    an_asset: core_asset(2, 9),
                }),
            ]),
        });
        let h = concat!(
            "01",       // MainSequenceMessage discriminant (u8) 1 = Transaction
            "06000000", // content count (u32) = 6
            // content[0]
            "00",               // ContentMessage discriminant 0 = ContentCreateEntities
            "02000000",         // list count (u32) = 2
            "0100000000000000", // EntityID 1
            "0200000000000000", // EntityID 2
            // content[1]
            "01",               // ContentMessage 1 = ContentDeleteEntities
            "01000000",         // list count = 1
            "0300000000000000", // EntityID 3
            // content[2]
            "02",               // ContentMessage 2 = ContentModifyComponents
            "0000",             // component.extension = 0 (Core)
            "1500",             // component.identifier = 21 (Visibility)
            "01000000",         // count (advisory, u32) = 1
            "09000000",         // content count (u32) = 9 bytes
            "0100000000000000", //   record: EntityID 1
            "02",               //   record: VisibilityComponent 2 = Invisible
            // content[3]
            "03",               // ContentMessage 3 = ContentDeleteComponents
            "0000",             // component.extension = 0
            "0f00",             // component.identifier = 15 (Name)
            "01000000",         // list count = 1
            "0200000000000000", // EntityID 2
            // content[4]
            "04",               // ContentMessage 4 = ContentModifyAsset
            "0000",             // an_asset.asset_type.extension = 0
            "0000",             // an_asset.asset_type.identifier = 0 (Buffer)
            "0500000000000000", // an_asset.asset_id = 5
            "0b000000",         // content count (u32) = 11 bytes of BufferAsset:
            "01000000",         //   flags (bits u32): hint (bit 0) = DEFER (1)
            "00",               //   source: BufferSource discriminant 0 = InlineContent
            "02000000",         //   InlineContent count (u32) = 2
            "aabb",             //   the buffer bytes
            // content[5]
            "05",               // ContentMessage 5 = ContentDeleteAsset
            "0000",             // an_asset.asset_type.extension = 0
            "0200",             // an_asset.asset_type.identifier = 2 (Image)
            "0900000000000000", // an_asset.asset_id = 9
        );
        (v, h)
    }

    pub fn modify_two_transforms() -> (ContentMessage, &'static str) {
        let records = [
            Pair {
                id: EntityID::new(1),
                t: TransformComponent::new(
                    Vec3::new(1.0, 2.0, 3.0),
                    UnitQuaternion::new(0.0, 0.0, 0.0, 1.0),
                    Vec3::new(1.0, 1.0, 1.0),
                ),
            },
            Pair {
                id: EntityID::new(0x0102_0304_0506_0708),
                t: TransformComponent::new(
                    Vec3::new(0.5, -1.0, 0.0),
                    UnitQuaternion::new(0.0, 1.0, 0.0, 0.0),
                    Vec3::new(2.0, 2.0, 2.0),
                ),
            },
        ];
        let v = ContentMessage::ContentModifyComponents(ContentModifyComponents {
            component: core_component(20),
            count: 2,
            content: Content(Bytes::copy_from_slice(records.as_bytes())),
        });
        let h = concat!(
            "02",       // ContentMessage discriminant 2 = ContentModifyComponents
            "0000",     // component.extension = 0
            "1400",     // component.identifier = 20 (Transform)
            "02000000", // count (advisory) = 2
            "60000000", // content count (u32) = 96 = 2 * (8 + 40)
            // record 0
            "0100000000000000",                    // EntityID 1
            "0000803f 00000040 00004040",          // position (1, 2, 3)
            "00000000 00000000 00000000 0000803f", // rotation (0, 0, 0, 1)
            "0000803f 0000803f 0000803f",          // scale (1, 1, 1)
            // record 1
            "0807060504030201",                    // EntityID 0x0102030405060708
            "0000003f 000080bf 00000000",          // position (0.5, -1, 0)
            "00000000 0000803f 00000000 00000000", // rotation (0, 1, 0, 0)
            "00000040 00000040 00000040",          // scale (2, 2, 2)
        );
        (v, h)
    }

    pub fn proposed_transaction_reply() -> (MainSequenceMessage, &'static str) {
        const LOCAL: u64 = 1 << 63;
        let v = MainSequenceMessage::ProposedTransactionReply(ProposedTransactionReply {
            transaction_id: 7,
            code: 0,
            remapped_entities: RemappedEntities(vec![
                EntityPairMap::new(EntityID::new(LOCAL | 1), EntityID::new(42)),
                EntityPairMap::new(EntityID::new(LOCAL | 2), EntityID::new(43)),
            ]),
            remapped_assets: RemappedAssets(vec![AssetPairMap::new(
                core_asset(3, LOCAL | 2),
                core_asset(3, 16),
            )]),
        });
        let h = concat!(
            "03",               // MainSequenceMessage discriminant 3 = ProposedTransactionReply
            "07000000",         // transaction_id (u32) = 7
            "0000",             // code (u16) = 0, accepted
            "0200",             // remapped_entities count (u16) = 2
            "0100000000000080", //   [0].from = patch-local 1 (bit 63 set)
            "2a00000000000000", //   [0].to = 42
            "0200000000000080", //   [1].from = patch-local 2
            "2b00000000000000", //   [1].to = 43
            "0100",             // remapped_assets count (u16) = 1
            "0000 0300",        //   [0].from.asset_type = (0, 3) Mesh
            "0200000000000080", //   [0].from.asset_id = patch-local 2
            "0000 0300",        //   [0].to.asset_type = (0, 3)
            "1000000000000000", //   [0].to.asset_id = 16
        );
        (v, h)
    }

    pub fn rpc_invoke_nested_any() -> (MainSequenceMessage, &'static str) {
        let v = MainSequenceMessage::RPCInvoke(RPCInvoke {
            this_invoke_id: 5,
            endpoint: EntityID::new(10),
            args: RPCArgumentList(vec![
                Any::AnyMap(AnyMap(vec![
                    AnyKeyPair {
                        key: Any::AnyString("name".into()),
                        value: Any::I64(-1),
                    },
                    AnyKeyPair {
                        key: Any::U8(7),
                        value: Any::AnyMap(AnyMap(vec![AnyKeyPair {
                            key: Any::Void,
                            value: Any::F64(1.5),
                        }])),
                    },
                ])),
                Any::AnyArray(AnyArray(vec![
                    Any::Vec3(Vec3::new(1.0, 2.0, 3.0)),
                    Any::EntityID(EntityID::new(3)),
                    Any::AnyBytes(AnyBytes(Bytes::from_static(&[0xff]))),
                ])),
            ]),
        });
        let h = concat!(
            "04",               // MainSequenceMessage discriminant 4 = RPCInvoke
            "05000000",         // this_invoke_id (u32) = 5
            "0a00000000000000", // endpoint EntityID 10
            "02",               // args count (u8) = 2
            // args[0]
            "06",               // Any discriminant 6 = AnyMap
            "02000000",         // pair count (u32) = 2
            "04",               //   [0].key: Any 4 = AnyString
            "04000000",         //     count (u32) = 4
            "6e616d65",         //     "name"
            "02",               //   [0].value: Any 2 = i64
            "ffffffffffffffff", //     -1
            "01",               //   [1].key: Any 1 = u8
            "07",               //     7
            "06",               //   [1].value: Any 6 = AnyMap
            "01000000",         //     pair count = 1
            "00",               //       key: Any 0 = void
            "03",               //       value: Any 3 = f64
            "000000000000f83f", //         1.5
            // args[1]
            "05",                         // Any discriminant 5 = AnyArray
            "03000000",                   // count (u32) = 3
            "08",                         //   Any 8 = Vec3
            "0000803f 00000040 00004040", // (1, 2, 3)
            "0f",                         //   Any 15 = EntityID
            "0300000000000000",           //     3
            "07",                         //   Any 7 = AnyBytes
            "01000000",                   //     count (u32) = 1
            "ff",                         //     the byte
        );
        (v, h)
    }

    pub fn rpc_reply_complete() -> (MainSequenceMessage, &'static str) {
        let v = MainSequenceMessage::RPCReply(RPCReply {
            this_invoke_id: 9,
            content: RPCReplyContent::RPCComplete(RPCComplete {
                result: Any::AnyString("ok".into()),
            }),
        });
        let h = concat!(
            "05",       // MainSequenceMessage discriminant 5 = RPCReply
            "09000000", // this_invoke_id (u32) = 9
            "00",       // RPCReplyContent discriminant 0 = RPCComplete
            "04",       // result: Any 4 = AnyString
            "02000000", // count (u32) = 2
            "6f6b",     // "ok"
        );
        (v, h)
    }

    pub fn rpc_reply_error() -> (MainSequenceMessage, &'static str) {
        let v = MainSequenceMessage::RPCReply(RPCReply {
            this_invoke_id: 9,
            content: RPCReplyContent::RPCError(RPCError {
                code: 0x0102,
                message: "oops".into(),
            }),
        });
        let h = concat!(
            "05",       // MainSequenceMessage 5 = RPCReply
            "09000000", // this_invoke_id = 9
            "01",       // RPCReplyContent 1 = RPCError
            "0201",     // code (u16) = 0x0102
            "04000000", // message count (u32) = 4
            "6f6f7073", // "oops"
        );
        (v, h)
    }

    pub fn rpc_reply_stream_result() -> (MainSequenceMessage, &'static str) {
        let v = MainSequenceMessage::RPCReply(RPCReply {
            this_invoke_id: 9,
            content: RPCReplyContent::RPCStreamResult(RPCStreamResult {
                result: Any::I64(42),
            }),
        });
        let h = concat!(
            "05",               // MainSequenceMessage 5 = RPCReply
            "09000000",         // this_invoke_id = 9
            "02",               // RPCReplyContent 2 = RPCStreamResult
            "02",               // result: Any 2 = i64
            "2a00000000000000", // 42
        );
        (v, h)
    }

    pub fn oob_request() -> (OOBRequest, &'static str) {
        let v = OOBRequest::OOBRequestContent(OOBRequestContent {
            asset_id: OOBAssetID::new(0x0102_0304_0506_0708),
        });
        let h = concat!(
            "00",               // OOBRequest discriminant 0 = OOBRequestContent
            "0807060504030201", // asset_id (u64)
        );
        (v, h)
    }

    pub fn oob_reply_success() -> (OOBReply, &'static str) {
        let v = OOBReply::OOBReplySuccess(OOBReplySuccess {
            header: OOBReplyHeader::new(OOBAssetID::new(7)),
            content: OOBContent(Bytes::from_static(&[1, 2, 3])),
        });
        let h = concat!(
            "00",               // OOBReply discriminant 0 = OOBReplySuccess
            "0700000000000000", // header.asset_id (u64) = 7
            "0300000000000000", // content count (u64) = 3
            "010203",           // the asset bytes
        );
        (v, h)
    }

    pub fn oob_reply_failure() -> (OOBReply, &'static str) {
        let v = OOBReply::OOBReplyFailure(OOBReplyFailure {
            asset_id: OOBAssetID::new(7),
            reason: "missing".into(),
        });
        let h = concat!(
            "01",               // OOBReply discriminant 1 = OOBReplyFailure
            "0700000000000000", // asset_id (u64) = 7
            "0700",             // reason count (u16) = 7
            "6d697373696e67",   // "missing"
        );
        (v, h)
    }

    pub fn mesh_asset() -> (MeshAsset, &'static str) {
        let common = UncompressedAttribCommon::new;
        let v = MeshAsset {
            view: BufferView::new(16, 200, BufferAssetID::new(AssetID::new(4))),
            vertex_count: 3,
            flags: UncompressedFlags::default()
                .with_format(IndexFormat::U16)
                .with_has_normal(1)
                .with_has_uv_0(1)
                .with_has_morph_targets(1)
                .with_primitive_type(PrimitiveType::Triangles),
            bb_min: Vec3::new(-1.0, 0.0, 0.0),
            bb_max: Vec3::new(1.0, 1.0, 0.0),
            position: PositionAttribute::new(common(0, 12), PositionFormat::Float3),
            index: UncompressedIndex::new(36, 3),
            normal: NormalAttribute::new(common(44, 12), NormalFormat::Float3),
            tangent: TangentAttribute::default(),
            uv_0: UVAttribute::new(common(80, 8), UVFormat::Float2),
            uv_1: UVAttribute::default(),
            joint_0: JointAttribute::default(),
            joint_1: JointAttribute::default(),
            weight_0: WeightAttribute::default(),
            weight_1: WeightAttribute::default(),
            morph_targets: MorphTargetList(vec![MorphTarget::new(
                MorphTargetFlags::default().with_has_position(1),
                PositionAttribute::new(common(104, 12), PositionFormat::Float3),
                NormalAttribute::default(),
                TangentAttribute::default(),
            )]),
        };
        let h = concat!(
            "1000000000000000", // view.offset (u64) = 16
            "c800000000000000", // view.length (u64) = 200
            "0400000000000000", // view.asset_id = buffer 4
            "03000000",         // vertex_count (u32) = 3
            // flags (bits u16) 0x0416: format (bits 0-1) = U16 (2), has_normal (bit 2), has_uv_0
            // (bit 4), has_morph_targets (bit 10), primitive_type (bits 11-13) = Triangles (0)
            "1604",
            "000080bf 00000000 00000000", // bb_min (-1, 0, 0)
            "0000803f 0000803f 00000000", // bb_max (1, 1, 0)
            "00000000 0c00 00",           // position: view_byte_offset 0, vertex_stride 12, float3
            "24000000 03000000",          // index: view_byte_offset 36, index_count 3
            "2c000000 0c00 00",           // normal: offset 44, stride 12, float3
            "00000000 0000 00",           // tangent (unused)
            "50000000 0800 00",           // uv_0: offset 80, stride 8, float2
            "00000000 0000 00",           // uv_1 (unused)
            "00000000 0000 00",           // joint_0 (unused)
            "00000000 0000 00",           // joint_1 (unused)
            "00000000 0000 00",           // weight_0 (unused)
            "00000000 0000 00",           // weight_1 (unused)
            "0100",                       // morph_targets count (u16) = 1
            "01",                         //   flags (bits u8): has_position
            "68000000 0c00 00",           //   position deltas: offset 104, stride 12, float3
            "00000000 0000 00",           //   normal (unused)
            "00000000 0000 00",           //   tangent (unused)
        );
        (v, h)
    }

    pub fn pbr_material_asset_extended() -> (PBRMaterialAsset, &'static str) {
        let nus = NormalizedUShort::new;
        let no_tex = TextureReference::default();
        let v = PBRMaterialAsset {
            base: PBRMaterialBase::new(
                MatFlags::default()
                    .with_double_sided(1)
                    .with_culling(FaceCulling::None)
                    .with_alpha(AlphaMode::Blend)
                    .with_has_color_texture(1),
                SRGBA8::new(255, 128, 0, 255),
                nus(0x8000),
                nus(0),
                0x2000,
                TextureReference::default().with_channel(1).with_image_id(2),
                no_tex,
                no_tex,
            ),
            extension: MaybePBRMaterialExtended::ExtendedMaterial(ExtendedMaterial::new(
                ExtendedMaterialFlags::default()
                    .with_has_transmission(1)
                    .with_has_clearcoat(1)
                    .with_has_emission(1)
                    .with_has_uv0_transform(1),
                Thickness::new(0.5, 10.0, SRGBA8::new(255, 255, 255, 255), no_tex),
                Transmission::new(
                    nus(0xffff),
                    nus(0x1234),
                    TextureReference::default().with_image_id(1),
                    no_tex,
                ),
                Clearcoat::new(
                    nus(1),
                    nus(2),
                    ClearcoatImagePack::default()
                        .with_has_amount_map(1)
                        .with_channel(1)
                        .with_amount_map(3)
                        .with_roughness_map(15)
                        .with_normal_map(7),
                ),
                Anisotropy::new(nus(0x0100), nus(0x0200), no_tex),
                Parallax::new(0.25, 1.0, 255, no_tex),
                Emission::new(LinearRGB::new(1.0, 0.5, 0.0), nus(0xffff), no_tex),
                Affine2::new(
                    [1.0, 0.0, 0.0, 1.0].map(zerocopy::little_endian::F32::new),
                    0.5,
                    0.25,
                ),
                Affine2::default(),
            )),
            table: MaterialImageTable(vec![
                ImageAssetID::new(AssetID::new(11)),
                ImageAssetID::new(AssetID::new(12)),
                ImageAssetID::new(AssetID::new(13)),
            ]),
        };
        let h = concat!(
            // base (PBRMaterialBase, 15 bytes)
            // flags (bits u16) 0x00d1: double_sided (bit 0), culling (bits 3-4) = None (2),
            // alpha (bits 5-6) = Blend (2), has_color_texture (bit 7)
            "d100",
            "ff8000ff", // base_color SRGBA8 (255, 128, 0, 255)
            "0080",     // roughness 0x8000
            "0000",     // metallic 0
            "0020",     // ior (u16) 0x2000
            "09",       // color_map (bits u8): channel (0-1) = 1, image_id (2-5) = 2
            "00",       // orm_map
            "00",       // normal_map
            // extension
            "01", // MaybePBRMaterialExtended discriminant 1 = ExtendedMaterial
            // flags (bits u16) 0x1424: has_transmission (bit 2), has_clearcoat (bit 5),
            // has_emission (bit 10), has_uv0_transform (bit 12)
            "2414",
            "0000003f 00002041 ffffffff 00", // thickness: 0.5, attenuation 10.0, white, no texture
            "ffff 3412 04 00", // transmission: diffuse 0xffff, specular 0x1234, diffuse_map image 1
            "0100 0200",       // clearcoat: amount 1, roughness 2
            // clearcoat.pack (bits u32) 0x1fc69: has_amount_map (bit 0), channel (bits 3-4) = 1,
            // amount_map (bits 5-9) = 3, roughness_map (bits 10-13) = 15, normal_map (14-17) = 7
            "69fc0100",
            "0001 0002 00", // anisotropy: strength 0x100, rotation 0x200, no texture
            "0000803e 0000803f ff 00", // parallax: depth_bias 0.25, depth_scale 1.0, quality 255
            "0000803f 0000003f 00000000 ffff 00", // emission: color (1, 0.5, 0), exposure, no map
            "0000803f 00000000 00000000 0000803f 0000003f 0000803e", // uv0: identity, +(0.5, 0.25)
            "00000000 00000000 00000000 00000000 00000000 00000000", // uv1: zero
            // table
            "03",               // count (u8) = 3
            "0b00000000000000", // image 11
            "0c00000000000000", // image 12
            "0d00000000000000", // image 13
        );
        (v, h)
    }

    pub fn animation_asset() -> (AnimationAsset, &'static str) {
        let v = AnimationAsset {
            samplers: AnimSamplerList(vec![
                AnimSamplerAssetID::new(AssetID::new(100)),
                AnimSamplerAssetID::new(AssetID::new(101)),
            ]),
            component_channels: AnimCChannelList(vec![ComponentAnimChannel::new(
                0,
                ComponentAnimTarget::new(EntityID::new(5), core_component(20), 1, 0),
            )]),
            asset_channels: AnimAChannelList(vec![AssetAnimChannel::new(
                1,
                AssetAnimTarget::new(core_asset(4, 8), 0, 0),
            )]),
            duration_seconds: 2.5,
        };
        let h = concat!(
            "0200",             // samplers count (u16) = 2
            "6400000000000000", // sampler asset 100
            "6500000000000000", // sampler asset 101
            "0100",             // component_channels count (u16) = 1
            "0000",             //   sampler index 0
            "0500000000000000", //   target.entity 5
            "0000 1400",        //   target.component_id (0, 20) Transform
            "0100",             //   target.member_index 1 (rotation)
            "0000",             //   target.sub_index 0
            "0100",             // asset_channels count (u16) = 1
            "0100",             //   sampler index 1
            "0000 0400",        //   target.asset.asset_type (0, 4) PBRMaterial
            "0800000000000000", //   target.asset.asset_id 8
            "0000",             //   target.member_index 0 (base_color)
            "0000",             //   target.sub_index 0
            "0000000000000440", // duration_seconds (f64) = 2.5
        );
        (v, h)
    }
}

macro_rules! goldens {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (v, h) = cases::$name();
                check(&v, h);
            }
        )*

        /// Every golden frame (for the robustness tests).
        pub fn frames() -> Vec<Frame> {
            vec![$({
                let (v, h) = cases::$name();
                let f = frame(stringify!($name), &v);
                assert_eq!(f.bytes, hex(h));
                f
            }),*]
        }
    };
}

goldens!(
    introduction,
    introduction_reply_with_oob_ports,
    introduction_reply_without_oob,
    probe,
    probe_reply,
    transaction_with_every_content_kind,
    modify_two_transforms,
    proposed_transaction_reply,
    rpc_invoke_nested_any,
    rpc_reply_complete,
    rpc_reply_error,
    rpc_reply_stream_result,
    oob_request,
    oob_reply_success,
    oob_reply_failure,
    mesh_asset,
    pbr_material_asset_extended,
    animation_asset,
);

/// The payloads inside the golden transaction decode as the types the spec says they carry.
#[test]
fn transaction_payloads_decode_as_their_types() {
    let (MainSequenceMessage::Transaction(t), _) = cases::transaction_with_every_content_kind()
    else {
        unreachable!()
    };
    let ContentMessage::ContentModifyComponents(m) = &t.content[2] else {
        panic!("content[2]")
    };
    let (id, vis) = m.content.split_at(8);
    assert_eq!(EntityID::decode_slice(id).unwrap(), EntityID::new(1));
    assert_eq!(
        VisibilityComponent::decode_slice(vis).unwrap(),
        VisibilityComponent::Invisible
    );
    let ContentMessage::ContentModifyAsset(a) = &t.content[4] else {
        panic!("content[4]")
    };
    let buffer = BufferAsset::decode(a.content.0.clone()).unwrap();
    assert_eq!(buffer.flags.hint(), BufferDownloadHint::DEFER);
    assert_eq!(
        buffer.source,
        BufferSource::InlineContent(InlineContent(Bytes::from_static(&[0xaa, 0xbb])))
    );
}

/// The Transform records can be viewed in place (zero-copy) and decoded one by one.
#[test]
fn transform_records_view_in_place() {
    let (ContentMessage::ContentModifyComponents(m), _) = cases::modify_two_transforms() else {
        unreachable!()
    };
    let pairs = <[Pair]>::ref_from_bytes(&m.content).expect("96 bytes are two 48-byte records");
    assert_eq!(pairs.len(), 2);
    assert_eq!({ pairs[1].id }.id.get(), 0x0102_0304_0506_0708);
    let t = pairs[0].t;
    assert_eq!(t.position, Vec3::new(1.0, 2.0, 3.0));
    assert_eq!(t.scale, Vec3::new(1.0, 1.0, 1.0));
    // Decoding record by record gives the same values.
    let mut rest = &m.content[..];
    let mut n = 0;
    while !rest.is_empty() {
        let (rec, tail) = rest.split_at(EntityID::SIZE + TransformComponent::SIZE);
        let (id, tr) = rec.split_at(EntityID::SIZE);
        assert_eq!(EntityID::decode_slice(id).unwrap(), { pairs[n].id });
        assert_eq!(TransformComponent::decode_slice(tr).unwrap(), {
            pairs[n].t
        });
        rest = tail;
        n += 1;
    }
    assert_eq!(n, 2);
}

/// The bits accessors read back what the golden vectors set.
#[test]
fn bits_accessors_read_back() {
    let (m, _) = cases::mesh_asset();
    assert_eq!(m.flags.raw(), 0x0416);
    assert_eq!(m.flags.format(), IndexFormat::U16);
    assert_eq!(
        (
            m.flags.has_normal(),
            m.flags.has_tangent(),
            m.flags.has_uv_0()
        ),
        (1, 0, 1)
    );
    assert_eq!(m.flags.primitive_type(), PrimitiveType::Triangles);
    let (p, _) = cases::pbr_material_asset_extended();
    assert_eq!(p.base.flags.culling(), FaceCulling::None);
    assert_eq!(p.base.flags.alpha(), AlphaMode::Blend);
    assert_eq!(
        (p.base.color_map.channel(), p.base.color_map.image_id()),
        (1, 2)
    );
    let MaybePBRMaterialExtended::ExtendedMaterial(x) = p.extension else {
        panic!()
    };
    let pack = x.clearcoat.pack;
    assert_eq!(pack.raw(), 0x1fc69);
    assert_eq!(
        (pack.amount_map(), pack.roughness_map(), pack.normal_map()),
        (3, 15, 7)
    );
    // Setters mask to the field width and leave the other bits alone.
    let t = TextureReference::default()
        .with_image_id(0xff)
        .with_channel(0);
    assert_eq!((t.raw(), t.image_id()), (0x3c, 15));
}
