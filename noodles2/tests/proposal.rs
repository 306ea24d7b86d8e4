//! Proposal checking without an engine (`noodles2::proposal::check`) over a small fixed world:
//! canonical entities 1 to 4, and the Core Name and ChildOf components.

use bytes::Bytes;
use noodles2::codec::*;
use noodles2::proposal::{
    AssetCheck, ComponentCheck, PATCH_LOCAL_BIT, ProposalWorld, ProposedChange, ProposedEntity,
    Step, check, codes, visit_pair_ids,
};

struct Fixed;

impl ProposalWorld for Fixed {
    type Entity = u64;
    fn entity(&self, id: u64) -> Option<u64> {
        (1..=4).contains(&id).then_some(id)
    }
    fn known_asset(&self, _: Option<(u16, u16)>, _: u64) -> bool {
        false
    }
    fn replaceable_asset(&self, _: (u16, u16, u64)) -> bool {
        false
    }
    fn component(&self, extension: u16, identifier: u16) -> Option<ComponentCheck<'_>> {
        match (extension, identifier) {
            (0, 15) => Some(ComponentCheck {
                rule: 0,
                name: "Name",
                visit: &visit_pair_ids::<NameComponent>,
            }),
            (0, 16) => Some(ComponentCheck {
                rule: 1,
                name: "ChildOf",
                visit: &visit_pair_ids::<ChildOfComponent>,
            }),
            _ => None,
        }
    }
    fn asset(&self, _: u16, _: u16) -> Option<AssetCheck<'_>> {
        None
    }
    fn asset_type_of_wrapper(&self, _: &str) -> Option<(u16, u16)> {
        None
    }
}

const NEW: u64 = PATCH_LOCAL_BIT | 1;

fn create(ids: impl IntoIterator<Item = u64>) -> ContentMessage {
    ContentMessage::ContentCreateEntities(ContentCreateEntities {
        list: EntityList(ids.into_iter().map(EntityID::new).collect()),
    })
}

fn set<W: Wire>(component: u16, id: u64, w: W) -> ContentMessage {
    let mut v = id.to_le_bytes().to_vec();
    w.write(&mut v).unwrap();
    ContentMessage::ContentModifyComponents(ContentModifyComponents {
        component: ComponentTypeID::new(ExtensionID::new(0), component),
        count: 1,
        content: Content(Bytes::from(v)),
    })
}

fn reject(content: Vec<ContentMessage>) -> (u16, String) {
    let r = check(&Fixed, &[0], &ContentArray(content)).expect_err("a rejection");
    (r.code, r.reason)
}

#[test]
fn a_well_formed_proposal_becomes_a_plan_in_content_order() {
    let content = ContentArray(vec![
        create([NEW]),
        set(15, NEW, NameComponent("new".into())),
        set(
            16,
            NEW,
            ChildOfComponent {
                parent: EntityID::new(2),
            },
        ),
        ContentMessage::ContentDeleteEntities(ContentDeleteEntities {
            list: EntityList(vec![EntityID::new(3)]),
        }),
    ]);
    let plan = check(&Fixed, &[0], &content).expect("a plan");
    assert_eq!(plan.new_entities, vec![NEW]);
    assert_eq!(plan.steps.len(), 3);
    assert!(matches!(plan.steps[2], Step::Delete { ref ids } if ids == &[3]));
    assert_eq!(
        plan.changes[0],
        ProposedChange::SetComponent {
            entity: ProposedEntity::New(NEW),
            component: (0, 15),
            name: "Name"
        }
    );
    assert_eq!(
        plan.changes[2],
        ProposedChange::DeleteEntity { id: 3, entity: 3 }
    );
}

#[test]
fn bad_ids_types_and_payloads_are_malformed_and_named() {
    let cases: Vec<(Vec<ContentMessage>, &str)> = vec![
        (vec![create([7])], "canonical id 7"),
        (vec![create([NEW, NEW])], "created twice"),
        (
            vec![set(15, 9, NameComponent("x".into()))],
            "unknown entity id 9",
        ),
        (
            vec![set(15, NEW, NameComponent("x".into()))],
            "is not created by this proposal",
        ),
        (
            vec![set(
                16,
                1,
                ChildOfComponent {
                    parent: EntityID::new(99),
                },
            )],
            "unknown entity id 99",
        ),
        (vec![set(77, 1, NameComponent("x".into()))], "not mirrored"),
        (
            vec![ContentMessage::ContentModifyComponents(
                ContentModifyComponents {
                    component: ComponentTypeID::new(ExtensionID::new(0), 15),
                    count: 1,
                    content: Content(Bytes::from_static(&[1, 0, 0])),
                },
            )],
            "undecodable Name payload",
        ),
        (
            vec![
                create([NEW]),
                ContentMessage::ContentDeleteEntities(ContentDeleteEntities {
                    list: EntityList(vec![EntityID::new(NEW)]),
                }),
            ],
            "which the same proposal creates",
        ),
    ];
    for (content, why) in cases {
        let (code, reason) = reject(content);
        assert_eq!(code, codes::MALFORMED, "{reason}");
        assert!(reason.contains(why), "expected `{why}` in `{reason}`");
    }
    // Outside the link's extensions.
    let r = check(
        &Fixed,
        &[],
        &ContentArray(vec![set(15, 1, NameComponent("x".into()))]),
    );
    assert!(
        r.unwrap_err()
            .reason
            .contains("outside the link's extensions")
    );
}

#[test]
fn more_placeholders_than_a_reply_can_remap_is_resource_exhausted() {
    let too_many = (1..=65_536u64).map(|i| PATCH_LOCAL_BIT | i);
    let (code, reason) = reject(vec![create(too_many)]);
    assert_eq!(code, codes::RESOURCE_EXHAUSTED, "{reason}");
    let just_enough = (1..=65_535u64).map(|i| PATCH_LOCAL_BIT | i);
    assert!(check(&Fixed, &[0], &ContentArray(vec![create(just_enough)])).is_ok());
}
