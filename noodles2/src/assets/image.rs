//! Encoded images from the wire (`spec/core/assets/image.jaw`): which container, and how large,
//! read from the header before any pixel is decoded. Feature `image`.

use std::io::Cursor;

use super::{AssetError, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE};

/// The container formats of `image.jaw`, recognised by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WEBP.
    Webp,
    /// KTX2 (GPU texture formats).
    Ktx2,
    /// Radiance HDR.
    Hdr,
    /// OpenEXR.
    Exr,
}

impl Container {
    /// The container of `bytes`, from its first bytes.
    pub fn detect(b: &[u8]) -> Option<Self> {
        const KTX2: [u8; 12] = [
            0xAB, b'K', b'T', b'X', b' ', b'2', b'0', 0xBB, 0x0D, 0x0A, 0x1A, 0x0A,
        ];
        if b.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
            Some(Self::Png)
        } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if b.len() >= 12
            && b.starts_with(b"RIFF")
            && b.get(8..12) == Some(b"WEBP".as_slice())
        {
            Some(Self::Webp)
        } else if b.starts_with(&KTX2) {
            Some(Self::Ktx2)
        } else if b.starts_with(b"#?RADIANCE") || b.starts_with(b"#?RGBE") {
            Some(Self::Hdr)
        } else if b.starts_with(&[0x76, 0x2F, 0x31, 0x01]) {
            Some(Self::Exr)
        } else {
            None
        }
    }

    /// Its name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Webp => "WEBP",
            Self::Ktx2 => "KTX2",
            Self::Hdr => "HDR",
            Self::Exr => "EXR",
        }
    }

    /// Its MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Ktx2 => "image/ktx2",
            Self::Hdr => "image/vnd.radiance",
            Self::Exr => "image/x-exr",
        }
    }

    /// The `image` crate's format (`None` for KTX2, which it does not read).
    pub fn image_format(self) -> Option<::image::ImageFormat> {
        Some(match self {
            Self::Png => ::image::ImageFormat::Png,
            Self::Jpeg => ::image::ImageFormat::Jpeg,
            Self::Webp => ::image::ImageFormat::WebP,
            Self::Hdr => ::image::ImageFormat::Hdr,
            Self::Exr => ::image::ImageFormat::OpenExr,
            Self::Ktx2 => return None,
        })
    }
}

/// What an encoded image's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// The container.
    pub container: Container,
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels (for KTX2: times depth, layers and faces).
    pub height: u64,
}

fn check_size(format: &'static str, width: u64, height: u64) -> Result<(), AssetError> {
    let side = u64::from(MAX_IMAGE_SIDE);
    if width > side || height > side || width.saturating_mul(height) > MAX_IMAGE_PIXELS {
        return Err(AssetError::ImageTooLarge {
            format,
            width,
            height,
        });
    }
    Ok(())
}

/// Bytes one EXR block (a tile, or a group of scan lines) may declare, beyond what the image's
/// own pixels need: the decoder allocates a block's declared size before it reads it.
pub const MAX_EXR_BLOCK_SLACK: u64 = 1 << 20;

/// The EXR decoder allocates each block from the header's block size (tile area or scan-line
/// group times bytes per pixel), which a small file may declare far larger than its image: refuse
/// blocks larger than the whole image plus [`MAX_EXR_BLOCK_SLACK`].
fn check_exr_blocks(encoded: &[u8], width: u64, height: u64) -> Result<(), String> {
    let meta = exr::meta::MetaData::read_from_buffered(Cursor::new(encoded), false)
        .map_err(|e| e.to_string())?;
    for header in meta.headers.iter() {
        if header.deep {
            return Err("deep EXR data is not an image".into());
        }
        let bytes_per_pixel = header.channels.bytes_per_pixel as u64;
        let image = width.saturating_mul(height).saturating_mul(bytes_per_pixel);
        let block = header.max_block_byte_size() as u64;
        if block > image.saturating_add(MAX_EXR_BLOCK_SLACK) {
            return Err(format!(
                "a block of {block} bytes is larger than the {width}x{height} image ({image} bytes)"
            ));
        }
    }
    Ok(())
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Bytes per header pixel the levels of a zstd-supercompressed KTX2 image may decompress to
/// together (the largest texel, 4 × f32, times two for a mip chain).
pub const KTX2_MAX_BYTES_PER_PIXEL: u64 = 32;

/// A zstd-supercompressed KTX2 level may decompress to far more than its header's size says (a
/// decoder reads each level to its end): decompress the levels into a counter, and refuse a file
/// whose levels together exceed [`KTX2_MAX_BYTES_PER_PIXEL`] per pixel of the header's size
/// (`height` already counts depth, layers and faces), or whose level index points outside it.
/// Other supercompression schemes are left to the decoder (which names the ones it lacks).
fn check_ktx2_levels(encoded: &[u8], width: u64, height: u64) -> Result<(), String> {
    use std::io::Read;
    // Header: identifier (12), vkFormat, ... levelCount at 40, supercompressionScheme at 44.
    let (Some(levels), Some(scheme)) = (le_u32(encoded, 40), le_u32(encoded, 44)) else {
        return Err("KTX2 header is truncated".into());
    };
    const ZSTD: u32 = 2;
    if scheme != ZSTD {
        return Ok(());
    }
    let limit = width
        .max(1)
        .saturating_mul(height.max(1))
        .saturating_mul(KTX2_MAX_BYTES_PER_PIXEL);
    let mut total = 0u64;
    for level in 0..levels.max(1) as usize {
        // Level index entries (offset, length, uncompressed length) start at byte 80.
        let at = 80 + level * 24;
        let (Some(offset), Some(length)) = (le_u64(encoded, at), le_u64(encoded, at + 8)) else {
            return Err(format!("level index entry {level} is truncated"));
        };
        let data = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(length).ok())
            .and_then(|(o, l)| encoded.get(o..o.checked_add(l)?))
            .ok_or_else(|| format!("level {level} lies outside the file"))?;
        let decoder = ruzstd::decoding::StreamingDecoder::new(data)
            .map_err(|e| format!("level {level} is not zstd: {e}"))?;
        let allowed = limit - total;
        let n = std::io::copy(&mut decoder.take(allowed + 1), &mut std::io::sink())
            .map_err(|e| format!("level {level} does not decompress: {e}"))?;
        if n > allowed {
            return Err(format!(
                "levels decompress to more than {limit} bytes, {KTX2_MAX_BYTES_PER_PIXEL} per pixel of its {width}x{height} header"
            ));
        }
        total += n;
    }
    Ok(())
}

/// Reads the container and the dimensions of an encoded image (the bytes of an `ImageAsset`'s
/// view) from its header, before any pixel is decoded: anything but PNG, JPEG, WEBP, KTX2, HDR
/// or EXR is [`AssetError::UnknownImageFormat`] quoting the first bytes, a format this build
/// does not read is [`AssetError::ImageFormatNotEnabled`], a header that does not read is
/// [`AssetError::Decode`], and more than [`MAX_IMAGE_SIDE`] per side or
/// [`MAX_IMAGE_PIXELS`] in total is [`AssetError::ImageTooLarge`]. An EXR whose blocks are larger
/// than its image, and a zstd-supercompressed KTX2 whose levels decompress to more than
/// [`KTX2_MAX_BYTES_PER_PIXEL`] per header pixel, are [`AssetError::Decode`] too.
pub fn check_image(encoded: &[u8]) -> Result<ImageHeader, AssetError> {
    let Some(container) = Container::detect(encoded) else {
        let first_bytes = encoded
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(AssetError::UnknownImageFormat {
            first_bytes: if first_bytes.is_empty() {
                "none, the image is empty".to_owned()
            } else {
                first_bytes
            },
        });
    };
    let name = container.name();
    let decode = |reason: String| AssetError::Decode {
        format: name,
        reason,
    };
    let (width, height) = match container.image_format() {
        None => {
            // KTX2 header: identifier (12), vkFormat, typeSize, pixelWidth, pixelHeight,
            // pixelDepth, layerCount, faceCount, levelCount (u32 LE each).
            let field = |at: usize| {
                le_u32(encoded, at)
                    .map(u64::from)
                    .ok_or_else(|| decode("KTX2 header is truncated".to_owned()))
            };
            let (width, height, depth) = (field(20)?, field(24)?, field(28)?);
            let layers = field(32)?.max(1).saturating_mul(field(36)?.max(1));
            let height = height
                .max(1)
                .saturating_mul(depth.max(1))
                .saturating_mul(layers);
            (width, height)
        }
        Some(format) if !format.reading_enabled() => {
            return Err(AssetError::ImageFormatNotEnabled(name));
        }
        Some(format) => {
            let (w, h) = ::image::ImageReader::with_format(Cursor::new(encoded), format)
                .into_dimensions()
                .map_err(|e| decode(e.to_string()))?;
            (u64::from(w), u64::from(h))
        }
    };
    check_size(name, width, height)?;
    match container {
        Container::Exr => check_exr_blocks(encoded, width, height).map_err(decode)?,
        Container::Ktx2 => check_ktx2_levels(encoded, width, height).map_err(decode)?,
        _ => {}
    }
    Ok(ImageHeader {
        container,
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_containers() {
        assert_eq!(
            Container::detect(b"\x89PNG\r\n\x1a\n...."),
            Some(Container::Png)
        );
        assert_eq!(
            Container::detect(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(Container::Jpeg)
        );
        assert_eq!(
            Container::detect(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(Container::Webp)
        );
        assert_eq!(Container::detect(b"#?RADIANCE\n"), Some(Container::Hdr));
        assert_eq!(
            Container::detect(&[0x76, 0x2F, 0x31, 0x01, 2]),
            Some(Container::Exr)
        );
        assert_eq!(Container::detect(b"GIF89a"), None);
        assert_eq!(Container::detect(b""), None);
    }

    #[test]
    fn sizes_come_from_headers_and_are_bounded() {
        // A KTX2 header claiming 100,000 x 100,000 pixels.
        let mut ktx = vec![
            0xAB, b'K', b'T', b'X', b' ', b'2', b'0', 0xBB, 0x0D, 0x0A, 0x1A, 0x0A,
        ];
        ktx.extend_from_slice(&[0; 8]);
        for v in [100_000u32, 100_000, 0, 0, 1] {
            ktx.extend_from_slice(&v.to_le_bytes());
        }
        assert!(matches!(
            check_image(&ktx),
            Err(AssetError::ImageTooLarge { .. })
        ));
        assert!(matches!(
            check_image(&ktx[..22]),
            Err(AssetError::Decode { .. })
        ));
        // Found by the image_header fuzz target: a 0.5 KB EXR whose tiles declare 587 MB.
        let huge = include_bytes!("../../tests/data/exr_huge_block.exr");
        let err = check_image(huge).unwrap_err();
        assert!(
            matches!(err, AssetError::Decode { format: "EXR", .. }),
            "{err}"
        );
        // zstd-supercompressed KTX2 (scheme 2), 4x2 RGBA8 in its header: a level that inflates
        // to 1 MiB is refused before any decoder allocates it; one that points past the file too.
        let ktx2 = |level: &[u8], stored_len: u64| {
            let mut f = vec![
                0xAB, b'K', b'T', b'X', b' ', b'2', b'0', 0xBB, 0x0D, 0x0A, 0x1A, 0x0A,
            ];
            for v in [37u32, 1, 4, 2, 0, 0, 1, 1, 2] {
                f.extend_from_slice(&v.to_le_bytes());
            }
            f.extend_from_slice(&[0; 32]); // dfd, kvd, sgd: none
            for v in [104u64, stored_len, 32] {
                f.extend_from_slice(&v.to_le_bytes());
            }
            f.extend_from_slice(level);
            f
        };
        let bomb = ruzstd::encoding::compress_to_vec(
            &vec![0u8; 1 << 20][..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let err = check_image(&ktx2(&bomb, bomb.len() as u64)).unwrap_err();
        assert!(
            err.to_string()
                .contains("decompress to more than 256 bytes"),
            "{err}"
        );
        let small = ruzstd::encoding::compress_to_vec(
            &[7u8; 32][..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert!(check_image(&ktx2(&small, small.len() as u64)).is_ok());
        let err = check_image(&ktx2(&small, small.len() as u64 + 1)).unwrap_err();
        assert!(err.to_string().contains("outside the file"), "{err}");
        let err = check_image(b"GIF89a").unwrap_err();
        assert!(err.to_string().contains("47 49 46 38 39 61"), "{err}");
    }
}
