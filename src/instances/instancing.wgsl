// Instanced draw of one mesh and material (bevy_noodles2, `src/instances/render.rs`).
//
// Vertex buffer 0 is the mesh (Bevy's mesh pipeline layout: position 0, normal 1, uv 2);
// vertex buffer 1 holds one `Instance` per instance (four vec4: position, rotation quaternion,
// texture transform, scale). Group 2 is this draw's material and entity transform; lighting
// goes through Bevy's PBR functions with the view's lights and environment.

#import bevy_pbr::{
    mesh_view_bindings::view,
    view_transformations::position_world_to_clip,
    pbr_types::pbr_input_new,
    pbr_functions::{apply_pbr_lighting, main_pass_post_lighting_processing, calculate_view},
    mesh_types::MESH_FLAGS_SHADOW_RECEIVER_BIT,
}

struct InstancedDraw {
    world_from_local: mat4x4<f32>,
    // The inverse transpose of world_from_local's upper 3×3, as columns (w unused).
    normal_from_local: mat4x4<f32>,
    base_color: vec4<f32>,
    emissive: vec4<f32>,
    metallic: f32,
    perceptual_roughness: f32,
    reflectance: f32,
    // Bit 0: sample the base color texture.
    flags: u32,
};

@group(2) @binding(0) var<uniform> draw: InstancedDraw;
@group(2) @binding(1) var base_color_texture: texture_2d<f32>;
@group(2) @binding(2) var base_color_sampler: sampler;

struct Vertex {
    @location(0) position: vec3<f32>,
#ifdef VERTEX_NORMALS
    @location(1) normal: vec3<f32>,
#endif
#ifdef VERTEX_UVS_A
    @location(2) uv: vec2<f32>,
#endif
    @location(8) i_position: vec4<f32>,
    @location(9) i_rotation: vec4<f32>,
    @location(10) i_texture: vec4<f32>,
    @location(11) i_scale: vec4<f32>,
};

struct VertexOutput {
    @builtin(position) position: vec4<f32>,
    @location(0) world_position: vec4<f32>,
    @location(1) world_normal: vec3<f32>,
    @location(2) uv: vec2<f32>,
};

fn rotate(q: vec4<f32>, v: vec3<f32>) -> vec3<f32> {
    let t = 2.0 * cross(q.xyz, v);
    return v + q.w * t + cross(q.xyz, t);
}

@vertex
fn vertex(vertex: Vertex) -> VertexOutput {
    var out: VertexOutput;
    let local = rotate(vertex.i_rotation, vertex.position * vertex.i_scale.xyz) + vertex.i_position.xyz;
    let world = draw.world_from_local * vec4<f32>(local, 1.0);
    out.world_position = world;
    out.position = position_world_to_clip(world.xyz);
#ifdef VERTEX_NORMALS
    // A normal follows the inverse transpose: divide by the scale, then rotate.
    let n = rotate(vertex.i_rotation, vertex.normal / vertex.i_scale.xyz);
    out.world_normal = normalize((draw.normal_from_local * vec4<f32>(n, 0.0)).xyz);
#else
    out.world_normal = vec3<f32>(0.0, 1.0, 0.0);
#endif
#ifdef VERTEX_UVS_A
    out.uv = vertex.uv * vertex.i_texture.zw + vertex.i_texture.xy;
#else
    out.uv = vertex.i_texture.xy;
#endif
    return out;
}

@fragment
fn fragment(in: VertexOutput, @builtin(front_facing) is_front: bool) -> @location(0) vec4<f32> {
    let texel = textureSample(base_color_texture, base_color_sampler, in.uv);
    var base = draw.base_color;
    if (draw.flags & 1u) != 0u {
        base = base * texel;
    }
    var pbr_input = pbr_input_new();
    pbr_input.material.base_color = base;
    pbr_input.material.emissive = draw.emissive;
    pbr_input.material.metallic = draw.metallic;
    pbr_input.material.perceptual_roughness = draw.perceptual_roughness;
    pbr_input.material.reflectance = vec3<f32>(draw.reflectance);
    pbr_input.frag_coord = in.position;
    pbr_input.world_position = in.world_position;
    var n = normalize(in.world_normal);
    if !is_front {
        n = -n;
    }
    pbr_input.world_normal = n;
    pbr_input.N = n;
    pbr_input.is_orthographic = view.clip_from_view[3].w == 1.0;
    pbr_input.V = calculate_view(in.world_position, pbr_input.is_orthographic);
    pbr_input.flags = MESH_FLAGS_SHADOW_RECEIVER_BIT;
    var color = apply_pbr_lighting(pbr_input);
    color = main_pass_post_lighting_processing(pbr_input, color);
    return color;
}
