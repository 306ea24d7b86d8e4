//! Fuzz the image check (`noodles2::assets::check_image`), which every received image and
//! environment passes before it is decoded. It must not panic, and it must tell the truth: an
//! image it admits decodes (with the `image` crate, as the plugin's decoder does) to exactly
//! the size its header gave, so the size limits bound the decoder's memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use noodles2::assets::{MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, check_image};

/// Larger images are only checked, not decoded (decoding them would slow the fuzzer down).
const DECODE_PIXELS: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = check_image(data) else {
        return;
    };
    assert!(header.width <= u64::from(MAX_IMAGE_SIDE));
    assert!(header.width * header.height <= MAX_IMAGE_PIXELS);
    let Some(format) = header.container.image_format() else {
        return;
    };
    if header.width * header.height > DECODE_PIXELS {
        return;
    }
    if let Ok(image) = image::load_from_memory_with_format(data, format) {
        assert_eq!(
            (u64::from(image.width()), u64::from(image.height())),
            (header.width, header.height),
            "the header's size is not the decoded size"
        );
    }
});
