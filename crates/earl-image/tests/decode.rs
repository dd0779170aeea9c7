//! Every supported format decodes to the RGB that Pillow's `convert("RGB")` gives, and every
//! limit refuses from the header. Test images are made here with real encoders.

use std::io::Cursor;

use earl_image::{Format, ImageError, Limits, RgbImage, decode_rgb, probe};
use image::{ExtendedColorType, ImageEncoder, Rgba, RgbaImage};

/// A small image with distinct colours and alpha, so dropped (not composited) alpha shows.
fn sample(w: u32, h: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| {
        Rgba([(x * 40) as u8, (y * 50) as u8, 200, (x * 30 + 5) as u8])
    })
}

fn rgb_of(im: &RgbaImage) -> RgbImage {
    RgbImage::from_fn(im.width(), im.height(), |x, y| {
        let p = im.get_pixel(x, y).0;
        image::Rgb([p[0], p[1], p[2]])
    })
}

fn encode(w: u32, h: u32, data: &[u8], color: ExtendedColorType, format: Format) -> Vec<u8> {
    use image::codecs::*;
    let mut out = Vec::new();
    let cursor = Cursor::new(&mut out);
    match format {
        Format::Png => png::PngEncoder::new(cursor).write_image(data, w, h, color),
        Format::Jpeg => {
            jpeg::JpegEncoder::new_with_quality(cursor, 95).write_image(data, w, h, color)
        }
        Format::WebP => webp::WebPEncoder::new_lossless(cursor).write_image(data, w, h, color),
        Format::Bmp => {
            bmp::BmpEncoder::new(&mut Cursor::new(&mut out)).write_image(data, w, h, color)
        }
        Format::Tiff => tiff::TiffEncoder::new(cursor).write_image(data, w, h, color),
        Format::Gif => unreachable!("GIF is encoded frame by frame below"),
    }
    .unwrap();
    out
}

/// A PNG written with the png crate, for colour types image's encoder does not write.
fn png_raw(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8]) -> Vec<u8> {
    png_with(w, h, color, depth, data, |_| {})
}

fn png_with(
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    setup: impl FnOnce(&mut png::Encoder<&mut Vec<u8>>),
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    setup(&mut enc);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(data).unwrap();
    writer.finish().unwrap();
    out
}

/// Default limits except the aspect ratio: several test images are a single row.
fn decode(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    decode_rgb(
        bytes,
        &Limits {
            max_aspect: f64::INFINITY,
            ..Limits::default()
        },
    )
}

#[test]
fn lossless_formats_drop_alpha_without_compositing() {
    let im = sample(6, 4);
    for format in [Format::Png, Format::WebP, Format::Tiff, Format::Bmp] {
        let bytes = encode(6, 4, im.as_raw(), ExtendedColorType::Rgba8, format);
        let info = probe(&bytes).unwrap();
        assert_eq!((info.width, info.height, info.format), (6, 4, format));
        assert_eq!(info.bytes, bytes.len() as u64);
        assert_eq!(decode(&bytes).unwrap(), rgb_of(&im), "{format}");
    }
    let rgb = rgb_of(&im);
    for format in [Format::Png, Format::Tiff, Format::Bmp] {
        let bytes = encode(6, 4, rgb.as_raw(), ExtendedColorType::Rgb8, format);
        assert_eq!(decode(&bytes).unwrap(), rgb, "{format}");
    }
}

#[test]
fn jpeg_decodes_close_to_the_source() {
    let rgb = RgbImage::from_fn(32, 24, |x, y| {
        image::Rgb([(x * 8) as u8, (y * 10) as u8, 128])
    });
    let bytes = encode(32, 24, rgb.as_raw(), ExtendedColorType::Rgb8, Format::Jpeg);
    assert_eq!(probe(&bytes).unwrap().format, Format::Jpeg);
    let out = decode(&bytes).unwrap();
    let mean = out
        .as_raw()
        .iter()
        .zip(rgb.as_raw())
        .map(|(&a, &b)| a.abs_diff(b) as f64)
        .sum::<f64>()
        / rgb.as_raw().len() as f64;
    assert!(mean < 3.0, "mean abs error {mean}");
    let grey = image::GrayImage::from_fn(16, 16, |x, y| image::Luma([(x * 16 + y) as u8]));
    let bytes = encode(16, 16, grey.as_raw(), ExtendedColorType::L8, Format::Jpeg);
    let out = decode(&bytes).unwrap();
    assert!(
        out.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
        "grey JPEG is replicated"
    );
}

#[test]
fn gif_gives_the_first_frame() {
    use image::codecs::gif::GifEncoder;
    let red = RgbaImage::from_pixel(5, 3, Rgba([255, 0, 0, 255]));
    let mut first = red.clone();
    first.put_pixel(1, 1, Rgba([0, 0, 255, 255]));
    let green = RgbaImage::from_pixel(5, 3, Rgba([0, 255, 0, 255]));
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut bytes);
        let frames = [first.clone(), green].map(image::Frame::new);
        enc.encode_frames(frames).unwrap();
    }
    assert_eq!(probe(&bytes).unwrap().format, Format::Gif);
    assert_eq!(decode(&bytes).unwrap(), rgb_of(&first));
}

#[test]
fn gif_transparent_index_keeps_its_palette_colour() {
    // Written by Pillow: 2x2, palette [(10,20,30), (200,100,50)], index 1 transparent, pixel
    // (0,0) = 1. Pillow's convert("RGB") gives the palette colour, not black.
    const GIF: [u8; 53] = [
        0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x02, 0x00, 0x02, 0x00, 0x81, 0x00, 0x00, 0x0a, 0x14,
        0x1e, 0xc8, 0x64, 0x32, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0xf9, 0x04, 0x01, 0x00,
        0x00, 0x01, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x08, 0x06,
        0x00, 0x03, 0x00, 0x18, 0x18, 0x10, 0x00, 0x3b,
    ];
    let out = decode(&GIF).unwrap();
    assert_eq!(
        out.as_raw(),
        &[200, 100, 50, 10, 20, 30, 10, 20, 30, 10, 20, 30]
    );
}

#[test]
fn jpeg_with_data_after_the_end_marker_decodes() {
    // Phones append videos or maps after EOI (motion photos); Pillow reads the image.
    let rgb = RgbImage::from_fn(16, 16, |x, y| {
        image::Rgb([(x * 16) as u8, (y * 16) as u8, 60])
    });
    let mut bytes = encode(16, 16, rgb.as_raw(), ExtendedColorType::Rgb8, Format::Jpeg);
    let clean = decode(&bytes).unwrap();
    bytes.extend(b"\0\0\0\x18ftypmp42 trailing video bytes");
    assert_eq!(decode(&bytes).unwrap(), clean);
}

#[test]
fn sixteen_bit_png_reduces_like_pillow() {
    let values: [u16; 6] = [0, 0x00FF, 0x0100, 0x80FF, 0x8080, 0xFFFF];
    let be = |vals: &[u16]| {
        vals.iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>()
    };
    let n = values.len() as u32;
    let high: Vec<u8> = values.iter().map(|v| (v >> 8) as u8).collect();
    let column = |im: RgbImage| im.pixels().map(|p| p[0]).collect::<Vec<u8>>();
    use png::{BitDepth::Sixteen, ColorType};

    // Colour: Pillow unpacks the high byte.
    let rgb: Vec<u16> = values.iter().flat_map(|&v| [v, v, 7]).collect();
    let out = decode(&png_raw(n, 1, ColorType::Rgb, Sixteen, &be(&rgb))).unwrap();
    assert_eq!(column(out.clone()), high);
    assert!(out.pixels().all(|p| p[2] == 0));
    let rgba: Vec<u16> = values.iter().flat_map(|&v| [v, v, v, 0x1234]).collect();
    let out = decode(&png_raw(n, 1, ColorType::Rgba, Sixteen, &be(&rgba))).unwrap();
    assert_eq!(column(out), high);
    let la: Vec<u16> = values.iter().flat_map(|&v| [v, 0x1234]).collect();
    let out = decode(&png_raw(n, 1, ColorType::GrayscaleAlpha, Sixteen, &be(&la))).unwrap();
    assert_eq!(column(out), high);

    // Grey alone opens as Pillow mode I;16, whose RGB conversion clips at 255.
    let out = decode(&png_raw(n, 1, ColorType::Grayscale, Sixteen, &be(&values))).unwrap();
    assert_eq!(column(out.clone()), vec![0, 255, 255, 255, 255, 255]);
    assert!(out.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
}

#[test]
fn palette_grey_alpha_and_low_bit_png() {
    use png::{BitDepth, ColorType};
    // Palette with a transparent entry: Pillow keeps the palette colour.
    let bytes = png_with(3, 1, ColorType::Indexed, BitDepth::Eight, &[0, 1, 2], |e| {
        e.set_palette(vec![10, 20, 30, 200, 100, 50, 1, 2, 3]);
        e.set_trns(vec![255, 0]);
    });
    let out = decode(&bytes).unwrap();
    assert_eq!(out.as_raw(), &[10, 20, 30, 200, 100, 50, 1, 2, 3]);

    // Grey + alpha: grey replicated, alpha dropped.
    let bytes = png_raw(
        2,
        1,
        ColorType::GrayscaleAlpha,
        BitDepth::Eight,
        &[40, 0, 220, 128],
    );
    assert_eq!(
        decode(&bytes).unwrap().as_raw(),
        &[40, 40, 40, 220, 220, 220]
    );

    // 1-bit and 4-bit grey scale up to full range as in Pillow.
    let bytes = png_raw(8, 1, ColorType::Grayscale, BitDepth::One, &[0b1011_0000]);
    let out: Vec<u8> = decode(&bytes).unwrap().pixels().map(|p| p[0]).collect();
    assert_eq!(out, [255, 0, 255, 255, 0, 0, 0, 0]);
    let bytes = png_raw(2, 1, ColorType::Grayscale, BitDepth::Four, &[0x1F]);
    let out: Vec<u8> = decode(&bytes).unwrap().pixels().map(|p| p[0]).collect();
    assert_eq!(out, [17, 255]);
}

#[test]
fn forged_header_of_a_huge_png_is_refused_before_decoding() {
    // Signature + IHDR claiming 100k x 100k (30 GB of RGB) and no pixel data at all: if the
    // decoder ran it would fail on the missing data (or allocate), not on the limit.
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, 100_000, 100_000);
    enc.set_color(png::ColorType::Rgb);
    let mut writer = enc.write_header().unwrap();
    // A token IDAT: readers look for the first one before they report the size.
    writer
        .write_chunk(
            png::chunk::IDAT,
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        )
        .unwrap();
    drop(writer);
    let info = probe(&bytes).unwrap();
    assert_eq!(
        (info.width, info.height, info.format),
        (100_000, 100_000, Format::Png)
    );
    let err = decode_rgb(&bytes, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::TooManyPixels {
                pixels: 10_000_000_000,
                max: 89_478_485,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("max_pixels"), "{err}");
}

#[test]
fn truncated_files_are_errors_not_panics() {
    let noise = RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([((x * 37) ^ (y * 11)) as u8, (x * y) as u8, 9])
    });
    for format in [
        Format::Jpeg,
        Format::Png,
        Format::WebP,
        Format::Tiff,
        Format::Bmp,
    ] {
        let bytes = encode(64, 48, noise.as_raw(), ExtendedColorType::Rgb8, format);
        for cut in [bytes.len() / 2, 40, 12] {
            let err = decode(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(
                    err,
                    ImageError::Corrupt { .. } | ImageError::UnknownFormat { .. }
                ),
                "{format} cut at {cut}: {err:?}"
            );
        }
    }
}

#[test]
fn zero_sized_images_are_refused() {
    // GIF: logical screen 4x0, no colour table, one empty frame. The header parses, so the
    // refusal is ours and typed.
    let mut gif = b"GIF89a".to_vec();
    gif.extend([4, 0, 0, 0, 0, 0, 0]);
    gif.extend([0x2c, 0, 0, 0, 0, 4, 0, 0, 0, 0, 2, 2, 0x4c, 0x01, 0, 0x3b]);
    let zero = ImageError::ZeroSized {
        width: 4,
        height: 0,
    };
    assert_eq!(probe(&gif), Err(zero.clone()));
    assert_eq!(decode(&gif), Err(zero));

    // BMP: a header saying 0 x 4 (BITMAPINFOHEADER, 24 bits); its decoder refuses it itself.
    let mut bmp = b"BM".to_vec();
    bmp.extend(54u32.to_le_bytes()); // file size
    bmp.extend([0; 4]);
    bmp.extend(54u32.to_le_bytes()); // pixel data offset
    bmp.extend(40u32.to_le_bytes()); // info header size
    bmp.extend(0i32.to_le_bytes()); // width
    bmp.extend(4i32.to_le_bytes()); // height
    bmp.extend(1u16.to_le_bytes());
    bmp.extend(24u16.to_le_bytes());
    bmp.extend([0; 24]);
    let err = decode(&bmp).unwrap_err();
    assert!(
        matches!(err, ImageError::Corrupt { format: "bmp", .. }),
        "{err:?}"
    );
}

#[test]
fn aspect_ratio_over_the_limit_is_refused() {
    let png_of = |w, h| {
        let im = RgbImage::new(w, h);
        encode(w, h, im.as_raw(), ExtendedColorType::Rgb8, Format::Png)
    };
    let default = |bytes: &[u8]| decode_rgb(bytes, &Limits::default());
    let wide = png_of(60, 10);
    let err = default(&wide).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::AspectRatio {
                width: 60,
                height: 10,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        default(&png_of(10, 60)),
        Err(ImageError::AspectRatio { .. })
    ));
    assert!(default(&png_of(50, 10)).is_ok(), "exactly 5:1 is allowed");
    let loose = Limits {
        max_aspect: 10.0,
        ..Limits::default()
    };
    assert!(decode_rgb(&wide, &loose).is_ok());
}

#[test]
fn byte_limit_and_unknown_input() {
    let im = RgbImage::new(20, 20);
    let bytes = encode(20, 20, im.as_raw(), ExtendedColorType::Rgb8, Format::Png);
    let tight = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    let err = decode_rgb(&bytes, &tight).unwrap_err();
    assert_eq!(
        err,
        ImageError::TooManyBytes {
            bytes: bytes.len() as u64,
            max: 10
        }
    );
    let few = Limits {
        max_pixels: 399,
        ..Limits::default()
    };
    assert!(matches!(
        decode_rgb(&bytes, &few),
        Err(ImageError::TooManyPixels { .. })
    ));

    assert!(matches!(probe(b""), Err(ImageError::UnknownFormat { .. })));
    let err = probe(b"hello, world").unwrap_err();
    assert!(matches!(err, ImageError::UnknownFormat { .. }), "{err:?}");
    assert!(err.to_string().contains("68 65 6c 6c"), "{err}");
    let err = probe(b"qoif\0\0\0\x10\0\0\0\x10\x03\x00").unwrap_err();
    assert_eq!(
        err,
        ImageError::UnsupportedFormat {
            format: "qoi".into()
        }
    );
}
