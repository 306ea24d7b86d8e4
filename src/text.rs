//! Text in world space: `TextComponent` (Core (0, 19)) ↔ [`Text3d`].
//!
//! The text lies in the entity's local XY plane, reading along +X, facing +Z (so it faces along
//! the entity's transform; add a [`Billboard`](crate::billboard::Billboard) to turn it to the
//! camera), centred on the entity's origin. `height` is the nominal text height (the font size:
//! one em) in the entity's local units; lines break at `\n`.
//!
//! Drawing (feature `render`): Bevy 0.19 has no 3D text of its own, and the crates that add it
//! target Bevy 0.20 (`bevy_rich_text3d` 0.8) or bring a second text stack (0.7 pulls
//! cosmic-text and fontconfig). So this module lays the text out with Bevy's own text pipeline
//! (`bevy_text`: parley shaping, Bevy's glyph atlases, its default font) and draws the glyphs as
//! a mesh of quads textured from the glyph atlas, with an unlit, alpha-blended
//! `StandardMaterial` in the text's color. The mesh is a child entity ([`TextMesh`]), rebuilt
//! when the text changes; it is not shared. Cost: about 110 bytes of mesh per visible glyph (four
//! vertices, six indices), plus Bevy's glyph atlas (shared by every text); a text is at most
//! 65,535 bytes on the wire.
//!
//! Spec: `spec/core/components/text.jaw`.

use bevy::prelude::*;

use crate::codec::{TextComponent, TextComponentContent};
use crate::mirror::core_components::{color_to_srgb8, srgb8_to_color};
use crate::mirror::{EntityIds, EntityResolver, MirrorAppExt, MirrorComponent, MirrorError};

/// Text drawn in world space (Core `TextComponent`). See the [module documentation](self).
#[derive(Component, Debug, Clone, PartialEq)]
pub struct Text3d {
    /// The text (UTF-8; lines break at `\n`). At most 65,535 bytes on the wire.
    pub text: String,
    /// Its color (sent as sRGB8: alpha is not sent).
    pub color: Color,
    /// Nominal height (one em) in the entity's local units; finite and above zero.
    pub height: f32,
}

impl Default for Text3d {
    fn default() -> Self {
        Text3d {
            text: String::new(),
            color: Color::WHITE,
            height: 1.0,
        }
    }
}

impl Text3d {
    /// `text` in white, one unit high.
    pub fn new(text: impl Into<String>) -> Self {
        Text3d {
            text: text.into(),
            ..default()
        }
    }
}

impl MirrorComponent for Text3d {
    type Wire = TextComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 19;
    /// `None` (not sent, logged) for a text longer than 65,535 bytes or a height that is not a
    /// finite number above zero.
    fn to_wire(&self, _: &dyn EntityIds) -> Option<TextComponent> {
        if self.text.len() > usize::from(u16::MAX)
            || !(self.height.is_finite() && self.height > 0.0)
        {
            warn!(
                "Text3d of {} bytes with height {}: not sent (at most 65,535 bytes, a finite height above zero)",
                self.text.len(),
                self.height
            );
            return None;
        }
        Some(TextComponent {
            color: color_to_srgb8(self.color),
            height: self.height,
            text: TextComponentContent(self.text.clone()),
        })
    }
    /// Decoding already refused text that is not UTF-8; the height must be a finite number
    /// above zero.
    fn check(w: &TextComponent) -> Result<(), String> {
        if w.height.is_finite() && w.height > 0.0 {
            Ok(())
        } else {
            Err(format!(
                "height is {}, not a finite number above zero",
                w.height
            ))
        }
    }
    fn from_wire(w: TextComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(Text3d {
            text: w.text.0,
            color: srgb8_to_color(w.color),
            height: w.height,
        })
    }
}

/// The child entity that draws a [`Text3d`] (made by this module; not shared).
#[derive(Component, Debug, Clone, Copy)]
pub struct TextMesh;

/// Mirrors [`Text3d`] and (with `render`) draws it. Added by
/// [`NoodlesPlugin`](crate::NoodlesPlugin).
pub struct Text3dPlugin;

impl Plugin for Text3dPlugin {
    fn build(&self, app: &mut App) {
        app.mirror_component::<Text3d>();
    }

    fn finish(&self, app: &mut App) {
        // After every plugin is built: draw if the app has Bevy's text pipeline.
        #[cfg(feature = "render")]
        draw::build(app);
        #[cfg(not(feature = "render"))]
        let _ = app;
    }
}

#[cfg(feature = "render")]
mod draw {
    use std::collections::HashMap;

    use bevy::asset::RenderAssetUsages;
    use bevy::mesh::{Indices, PrimitiveTopology};
    use bevy::prelude::*;
    use bevy::text::{
        ComputedTextBlock, FontAtlasSet, FontCx, FontHinting, FontSize, Justify, LayoutCx,
        LetterSpacing, LineBreak, LineHeight, RemSize, ScaleCx, TextBounds, TextFont,
        TextLayoutInfo, TextPipeline,
    };

    use super::{Text3d, TextMesh};

    /// Glyphs are rasterized at this many pixels per em (then scaled to `height`).
    const PIXELS_PER_EM: f32 = 64.0;

    pub(super) fn build(app: &mut App) {
        if !app.world().contains_resource::<TextPipeline>() {
            debug!("no bevy_text in this app: Text3d is mirrored but not drawn");
            return;
        }
        app.init_resource::<Pending>().add_systems(
            PostUpdate,
            (remove_meshes, lay_out)
                .chain()
                .before(bevy::transform::TransformSystems::Propagate),
        );
    }

    /// Texts whose font or atlas was not ready: laid out again next frame.
    #[derive(Resource, Default)]
    struct Pending(Vec<Entity>);

    /// Text entities' drawing children go with their `Text3d`.
    fn remove_meshes(
        mut removed: RemovedComponents<Text3d>,
        texts: Query<(), With<Text3d>>,
        children: Query<&Children>,
        meshes: Query<(), With<TextMesh>>,
        mut commands: Commands,
    ) {
        for e in removed.read() {
            if texts.contains(e) {
                continue;
            }
            for c in children.get(e).into_iter().flatten() {
                if meshes.contains(*c) {
                    commands.entity(*c).despawn();
                }
            }
        }
    }

    #[expect(clippy::too_many_arguments, reason = "what Bevy's text pipeline needs")]
    fn lay_out(
        mut pending: ResMut<Pending>,
        changed: Query<Entity, Changed<Text3d>>,
        texts: Query<(&Text3d, Option<&Children>)>,
        old: Query<(), With<TextMesh>>,
        mut pipeline: ResMut<TextPipeline>,
        fonts: Res<Assets<Font>>,
        mut images: ResMut<Assets<Image>>,
        mut atlases: ResMut<FontAtlasSet>,
        mut font_cx: ResMut<FontCx>,
        mut layout_cx: ResMut<LayoutCx>,
        mut scale_cx: ResMut<ScaleCx>,
        rem: Option<Res<RemSize>>,
        mut meshes: ResMut<Assets<Mesh>>,
        mut materials: ResMut<Assets<StandardMaterial>>,
        mut commands: Commands,
    ) {
        let mut work: Vec<Entity> = std::mem::take(&mut pending.0);
        work.extend(changed.iter());
        work.sort_unstable();
        work.dedup();
        let font = TextFont {
            font_size: FontSize::Px(PIXELS_PER_EM),
            ..default()
        };
        for e in work {
            let Ok((text, children)) = texts.get(e) else {
                continue;
            };
            let mut computed = ComputedTextBlock::default();
            let mut info = TextLayoutInfo::default();
            let spans = std::iter::once((
                e,
                0,
                text.text.as_str(),
                &font,
                text.color,
                LineHeight::default(),
                LetterSpacing::default(),
            ));
            let laid_out = pipeline
                .update_buffer(
                    &fonts,
                    spans,
                    LineBreak::NoWrap,
                    Justify::Center,
                    TextBounds::UNBOUNDED,
                    1.0,
                    &mut computed,
                    &mut font_cx,
                    &mut layout_cx,
                    Vec2::splat(1000.0),
                    rem.as_ref().map_or(16.0, |r| r.0),
                )
                .and_then(|()| {
                    pipeline.update_text_layout_info(
                        &mut info,
                        &mut atlases,
                        &mut images,
                        &mut computed,
                        &mut scale_cx,
                        TextBounds::UNBOUNDED,
                        Justify::Center,
                        FontHinting::Disabled,
                    )
                });
            if let Err(err) = laid_out {
                // The font has not loaded yet, most likely: try again next frame.
                debug!("text of entity {e}: not laid out yet ({err})");
                pending.0.push(e);
                continue;
            }
            for c in children.into_iter().flatten() {
                if old.contains(*c) {
                    commands.entity(*c).despawn();
                }
            }
            // One mesh per atlas texture the glyphs are in (usually one).
            let scale = text.height / PIXELS_PER_EM;
            let mut by_atlas: HashMap<AssetId<Image>, Quads> = HashMap::new();
            for g in &info.glyphs {
                let Some(atlas) = images.get(g.atlas_info.texture) else {
                    continue;
                };
                let size = atlas.size_f32();
                let r = g.atlas_info.rect;
                // Blanks have an empty rectangle: nothing to draw.
                if r.is_empty() {
                    continue;
                }
                let half = r.size() / 2.0;
                // Layout pixels are y-down from the block's top left; the text is centred.
                let c = (g.position - info.size / 2.0) * Vec2::new(1.0, -1.0);
                by_atlas.entry(g.atlas_info.texture).or_default().push(
                    (c - half) * scale,
                    (c + half) * scale,
                    r.min / size,
                    r.max / size,
                );
            }
            for (texture, quads) in by_atlas {
                let Some(handle) = atlas_handle(&atlases, texture) else {
                    continue;
                };
                let material = materials.add(StandardMaterial {
                    base_color: text.color,
                    base_color_texture: Some(handle),
                    unlit: true,
                    alpha_mode: AlphaMode::Blend,
                    double_sided: true,
                    cull_mode: None,
                    ..default()
                });
                let child = commands
                    .spawn((
                        TextMesh,
                        Mesh3d(meshes.add(quads.mesh())),
                        MeshMaterial3d(material),
                        Transform::default(),
                    ))
                    .id();
                commands.entity(e).add_child(child);
            }
        }
    }

    /// The glyph atlas texture with id `texture`, as a handle a material can hold.
    fn atlas_handle(atlases: &FontAtlasSet, texture: AssetId<Image>) -> Option<Handle<Image>> {
        atlases
            .values()
            .flatten()
            .find(|a| a.texture.id() == texture)
            .map(|a| a.texture.clone())
    }

    /// Glyph quads: positions, texture coordinates, indices.
    #[derive(Default)]
    struct Quads {
        positions: Vec<[f32; 3]>,
        uvs: Vec<[f32; 2]>,
        indices: Vec<u32>,
    }

    impl Quads {
        /// A quad from `min` to `max` (local, y up) showing atlas `uv_min..uv_max` (y down).
        fn push(&mut self, min: Vec2, max: Vec2, uv_min: Vec2, uv_max: Vec2) {
            let base = self.positions.len() as u32;
            self.positions.extend([
                [min.x, min.y, 0.0],
                [max.x, min.y, 0.0],
                [max.x, max.y, 0.0],
                [min.x, max.y, 0.0],
            ]);
            self.uvs.extend([
                [uv_min.x, uv_max.y],
                [uv_max.x, uv_max.y],
                [uv_max.x, uv_min.y],
                [uv_min.x, uv_min.y],
            ]);
            self.indices
                .extend([base, base + 1, base + 2, base, base + 2, base + 3]);
        }

        fn mesh(self) -> Mesh {
            let n = self.positions.len();
            Mesh::new(
                PrimitiveTopology::TriangleList,
                RenderAssetUsages::default(),
            )
            .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, self.positions)
            .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, vec![[0.0f32, 0.0, 1.0]; n])
            .with_inserted_attribute(Mesh::ATTRIBUTE_UV_0, self.uvs)
            .with_inserted_indices(Indices::U32(self.indices))
        }
    }
}
