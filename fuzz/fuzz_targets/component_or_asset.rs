//! Fuzz the decoders of every Core component and asset type: the first byte selects the type
//! (modulo the number of types), the rest is the value (see `common::check` for the property).
#![no_main]

mod common;

use noodles2::codec::*;
use libfuzzer_sys::fuzz_target;

macro_rules! checkers {
    ($($t:ident),* $(,)?) => {
        /// One checker per type, components by Core id (0, 0..=29) then assets (0, 0..=6).
        const CHECKERS: &[fn(&[u8])] = &[$(common::check::<$t>),*];
    };
}

checkers!(
    // Components (0, 0) ..= (0, 29).
    GlobalComponent,
    RPCEndpointComponent,
    BillboardComponent,
    EnvironmentComponent,
    InstanceComponent,
    InteractiveComponent,
    CanTranslateComponent,
    CanRotateComponent,
    CanScaleComponent,
    ActivateComponent,
    DirectionalLightComponent,
    PointLightComponent,
    SpotLightComponent,
    PBRMaterialComponent,
    MeshComponent,
    NameComponent,
    ChildOfComponent,
    CanSelectComponent,
    IsSelectedComponent,
    TextComponent,
    TransformComponent,
    VisibilityComponent,
    AnimatorComponent,
    SkinComponent,
    MorphWeightsComponent,
    TimeSyncComponent,
    ParameterRootComponent,
    ParameterComponent,
    ParamDefinitionComponent,
    ParamStateComponent,
    // Assets (0, 0) ..= (0, 6).
    BufferAsset,
    EnvironmentAsset,
    ImageAsset,
    MeshAsset,
    PBRMaterialAsset,
    AnimationAsset,
    AnimSamplerAsset,
);

fuzz_target!(|data: &[u8]| {
    if let Some((&selector, value)) = data.split_first() {
        CHECKERS[selector as usize % CHECKERS.len()](value);
    }
});
