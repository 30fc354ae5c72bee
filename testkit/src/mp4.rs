//! A minimal ISO-BMFF (MP4) reader for the video tests: box tree, one H.264 track in progressive
//! (`stbl`) or fragmented (`moof`/`trun`) form, and decoding back with openh264. It panics on
//! a malformed file: it reads the files the tests wrote.

use openh264::decoder::{DecodedYUV, Decoder};
use openh264::formats::YUVSource;

/// One box: its type, where it starts in the file and its content (after the header).
#[derive(Clone, Copy, Debug)]
pub struct Mp4Box<'a> {
    /// The four-character type.
    pub kind: [u8; 4],
    /// Offset of the box (its header) in the file.
    pub start: usize,
    /// The content after the header.
    pub body: &'a [u8],
    /// Offset of `body` in the file.
    pub body_start: usize,
}

impl Mp4Box<'_> {
    /// The type as text.
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.kind).into_owned()
    }
}

/// The sibling boxes in `data`, which starts at file offset `base`.
pub fn boxes(data: &[u8], base: usize) -> Vec<Mp4Box<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let mut size = be32(data, pos) as usize;
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
        let mut header = 8;
        if size == 1 {
            size = be64(data, pos + 8) as usize;
            header = 16;
        } else if size == 0 {
            size = data.len() - pos;
        }
        assert!(
            size >= header && pos + size <= data.len(),
            "truncated box {kind:?} at {pos}"
        );
        out.push(Mp4Box {
            kind,
            start: base + pos,
            body: &data[pos + header..pos + size],
            body_start: base + pos + header,
        });
        pos += size;
    }
    assert_eq!(pos, data.len(), "trailing bytes after the last box");
    out
}

/// The children of a container box.
pub fn children<'a>(parent: &Mp4Box<'a>) -> Vec<Mp4Box<'a>> {
    boxes(parent.body, parent.body_start)
}

/// The first child of `parent` of type `kind`.
pub fn child<'a>(parent: &Mp4Box<'a>, kind: &str) -> Option<Mp4Box<'a>> {
    children(parent)
        .into_iter()
        .find(|b| b.kind == kind.as_bytes())
}

/// Follows `path` (e.g. `["trak", "mdia", "mdhd"]`) from `parent`.
pub fn path<'a>(parent: &Mp4Box<'a>, path: &[&str]) -> Option<Mp4Box<'a>> {
    path.iter().try_fold(*parent, |b, kind| child(&b, kind))
}

/// The big-endian u16 at `at`.
pub fn be16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(d[at..at + 2].try_into().unwrap())
}

/// The big-endian u32 at `at`.
pub fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(d[at..at + 4].try_into().unwrap())
}

/// The big-endian u64 at `at`.
pub fn be64(d: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(d[at..at + 8].try_into().unwrap())
}

/// `(timescale, duration)` of an `mvhd` or `mdhd` box.
pub fn time_header(b: &Mp4Box) -> (u32, u64) {
    if b.body[0] == 1 {
        (be32(b.body, 20), be64(b.body, 24))
    } else {
        (be32(b.body, 12), u64::from(be32(b.body, 16)))
    }
}

/// `(width, height)` of a `tkhd` box (16.16 fixed point, the last 8 bytes).
pub fn track_size(tkhd: &Mp4Box) -> (u32, u32) {
    let n = tkhd.body.len();
    (be32(tkhd.body, n - 8) >> 16, be32(tkhd.body, n - 4) >> 16)
}

/// The SPS and PPS of the `avcC` inside an `stsd` box.
pub fn avc_parameter_sets(stsd: &Mp4Box) -> (Vec<u8>, Vec<u8>) {
    // stsd: version/flags, entry count, then the avc1 entry: 8-byte header + 78 bytes of fields.
    let entry = boxes(&stsd.body[8..], stsd.body_start + 8)[0];
    assert_eq!(&entry.kind, b"avc1");
    let avcc = boxes(&entry.body[78..], entry.body_start + 78)
        .into_iter()
        .find(|b| &b.kind == b"avcC")
        .expect("avcC box");
    let d = avcc.body;
    assert_eq!(d[5] & 0x1f, 1, "one SPS");
    let sps_len = be16(d, 6) as usize;
    let sps = d[8..8 + sps_len].to_vec();
    let p = 8 + sps_len;
    assert_eq!(d[p], 1, "one PPS");
    let pps_len = be16(d, p + 1) as usize;
    (sps, d[p + 3..p + 3 + pps_len].to_vec())
}

/// Entries of a full box whose body is version/flags, a count, then fixed-size u32 records.
pub fn table(b: &Mp4Box, fields: usize) -> Vec<Vec<u32>> {
    let count = be32(b.body, 4) as usize;
    (0..count)
        .map(|i| {
            (0..fields)
                .map(|f| be32(b.body, 8 + 4 * (i * fields + f)))
                .collect()
        })
        .collect()
}

/// The samples (length-prefixed NAL units) of a progressive track's `stbl`.
pub fn progressive_samples<'a>(file: &'a [u8], stbl: &Mp4Box) -> Vec<&'a [u8]> {
    let stsz = child(stbl, "stsz").expect("stsz");
    let fixed = be32(stsz.body, 4);
    let count = be32(stsz.body, 8) as usize;
    let sizes: Vec<usize> = (0..count)
        .map(|i| if fixed != 0 { fixed } else { be32(stsz.body, 12 + 4 * i) } as usize)
        .collect();
    let offsets: Vec<u64> = match child(stbl, "stco") {
        Some(stco) => table(&stco, 1).iter().map(|r| u64::from(r[0])).collect(),
        None => {
            let co64 = child(stbl, "co64").expect("stco or co64");
            let n = be32(co64.body, 4) as usize;
            (0..n).map(|i| be64(co64.body, 8 + 8 * i)).collect()
        }
    };
    let stsc = table(&child(stbl, "stsc").expect("stsc"), 3);
    let mut samples = Vec::new();
    let mut next = 0;
    for (chunk, &offset) in offsets.iter().enumerate() {
        let per_chunk = stsc
            .iter()
            .rev()
            .find(|e| e[0] as usize <= chunk + 1)
            .expect("stsc entry")[1] as usize;
        let mut at = offset as usize;
        for _ in 0..per_chunk {
            samples.push(&file[at..at + sizes[next]]);
            at += sizes[next];
            next += 1;
        }
    }
    assert_eq!(samples.len(), count, "stsc/stco do not cover stsz");
    samples
}

/// One fragment of a fragmented MP4.
pub struct Fragment<'a> {
    /// `tfdt`: the decode time of its first sample.
    pub base_decode_time: u64,
    /// Each sample's duration (when `trun` stores them).
    pub durations: Vec<u32>,
    /// The samples (length-prefixed NAL units).
    pub samples: Vec<&'a [u8]>,
}

/// The fragments (`moof` + `mdat`) of a fragmented file's single track.
pub fn fragments(file: &[u8]) -> Vec<Fragment<'_>> {
    let mut out = Vec::new();
    for moof in boxes(file, 0).into_iter().filter(|b| &b.kind == b"moof") {
        let traf = child(&moof, "traf").expect("traf");
        let tfhd = child(&traf, "tfhd").expect("tfhd");
        let tfhd_flags = be32(tfhd.body, 0) & 0xff_ffff;
        let base = if tfhd_flags & 1 != 0 {
            be64(tfhd.body, 8) as usize
        } else {
            moof.start
        };
        let tfdt = child(&traf, "tfdt").expect("tfdt");
        let base_decode_time = if tfdt.body[0] == 1 {
            be64(tfdt.body, 4)
        } else {
            u64::from(be32(tfdt.body, 4))
        };
        let trun = child(&traf, "trun").expect("trun");
        let flags = be32(trun.body, 0) & 0xff_ffff;
        let count = be32(trun.body, 4) as usize;
        let mut pos = 8;
        let mut data = base;
        if flags & 0x1 != 0 {
            data = (base as i64 + i64::from(be32(trun.body, pos) as i32)) as usize;
            pos += 4;
        }
        if flags & 0x4 != 0 {
            pos += 4;
        }
        let (mut durations, mut samples) = (Vec::new(), Vec::new());
        for _ in 0..count {
            for (bit, target) in [(0x100, Some(&mut durations)), (0x200, None)] {
                if flags & bit != 0 {
                    let value = be32(trun.body, pos);
                    pos += 4;
                    match target {
                        Some(durations) => durations.push(value),
                        None => {
                            samples.push(&file[data..data + value as usize]);
                            data += value as usize;
                        }
                    }
                }
            }
            pos += 4 * [0x400, 0x800].iter().filter(|&&b| flags & b != 0).count();
        }
        assert_eq!(samples.len(), count, "trun without sample sizes");
        out.push(Fragment {
            base_decode_time,
            durations,
            samples,
        });
    }
    out
}

/// Decodes length-prefixed H.264 samples to RGB frames (`(width, height, rgb)`).
pub fn decode(samples: &[&[u8]], sps: &[u8], pps: &[u8]) -> Vec<(usize, usize, Vec<u8>)> {
    let start_code = [0u8, 0, 0, 1];
    let mut decoder = Decoder::new().expect("openh264 decoder");
    let mut frames = Vec::new();
    for (i, sample) in samples.iter().enumerate() {
        let mut annexb = Vec::new();
        if i == 0 {
            for ps in [sps, pps] {
                annexb.extend_from_slice(&start_code);
                annexb.extend_from_slice(ps);
            }
        }
        let mut at = 0;
        while at < sample.len() {
            let len = be32(sample, at) as usize;
            annexb.extend_from_slice(&start_code);
            annexb.extend_from_slice(&sample[at + 4..at + 4 + len]);
            at += 4 + len;
        }
        if let Some(yuv) = decoder.decode(&annexb).expect("decodable sample") {
            frames.push(to_rgb(&yuv));
        }
    }
    for yuv in decoder.flush_remaining().expect("flush") {
        frames.push(to_rgb(&yuv));
    }
    frames
}

fn to_rgb(yuv: &DecodedYUV) -> (usize, usize, Vec<u8>) {
    let (w, h) = yuv.dimensions();
    let mut rgb = vec![0u8; w * h * 3];
    yuv.write_rgb8(&mut rgb);
    (w, h, rgb)
}
