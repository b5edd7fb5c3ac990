//! Source specs, the folder source and the MJPEG recording source, including damaged input.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use image::RgbImage;
use lanewatch::camera::mjpeg::{MjpegFileSource, Scan, scan};
use lanewatch::camera::{CaptureConfig, Frame, FrameSource, SourceError, SourceSpec};
use proptest::prelude::*;

use crate::common::LFW_IMAGES as LFW;
const T: Duration = Duration::from_millis(100);

use crate::common::temp_dir;

fn solid(w: u32, h: u32, rgb: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(w, h, image::Rgb(rgb))
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    crate::common::encode_jpeg(img, 90)
}

fn mean(frame: &Frame) -> [f64; 3] {
    let mut sum = [0f64; 3];
    for p in frame.rgb.pixels() {
        for c in 0..3 {
            sum[c] += f64::from(p[c]);
        }
    }
    let n = f64::from(frame.rgb.width() * frame.rgb.height());
    sum.map(|s| s / n)
}

fn near(got: [f64; 3], want: [u8; 3]) -> bool {
    got.iter()
        .zip(want)
        .all(|(g, w)| (g - f64::from(w)).abs() < 4.0)
}

#[test]
fn specs_parse_and_print_back() {
    let cases = [
        ("v4l2:/dev/video0", "v4l2:/dev/video0"),
        ("v4l2:2", "v4l2:/dev/video2"),
        ("frames:/data/lane 1", "frames:/data/lane 1"),
        ("frames:relative/dir", "frames:relative/dir"),
        ("mjpeg:/rec/a.mjpeg", "mjpeg:/rec/a.mjpeg"),
    ];
    for (input, shown) in cases {
        let spec: SourceSpec = input.parse().unwrap();
        assert_eq!(spec.to_string(), shown);
        assert_eq!(shown.parse::<SourceSpec>().unwrap(), spec);
    }
    assert_eq!(
        "v4l2:0".parse::<SourceSpec>().unwrap(),
        SourceSpec::V4l2 {
            device: "/dev/video0".into()
        }
    );
}

#[test]
fn bad_specs_say_what_is_wrong_and_what_is_expected() {
    for (input, why) in [
        ("", "no scheme"),
        ("/dev/video0", "no scheme"),
        ("v4l2:", "nothing after"),
        ("v4l2:video0", "absolute path"),
        ("v4l2:99999999999", "too large"),
        ("rtsp://cam/stream", "unknown scheme"),
        ("frames:a\0b", "NUL"),
    ] {
        let err = input.parse::<SourceSpec>().unwrap_err().to_string();
        assert!(err.contains(why), "{input:?}: {err}");
        assert!(err.contains("v4l2:/dev/videoN"), "{input:?}: {err}");
    }
}

#[test]
fn folder_source_reads_images_in_name_order_and_skips_bad_ones() {
    let dir = temp_dir("frames");
    std::fs::write(dir.join("b.jpg"), jpeg(&solid(40, 30, [200, 30, 30]))).unwrap();
    solid(20, 10, [10, 200, 10])
        .save(dir.join("a.png"))
        .unwrap();
    image::GrayImage::from_pixel(16, 8, image::Luma([77]))
        .save(dir.join("c.png"))
        .unwrap();
    std::fs::write(dir.join("c2.JPG"), b"\xFF\xD8\xFF\xE0 broken").unwrap();
    std::fs::write(dir.join("d.txt"), b"not an image").unwrap();
    std::fs::create_dir(dir.join("e.jpg")).unwrap(); // a folder with an image name is ignored

    let spec: SourceSpec = format!("frames:{}", dir.display()).parse().unwrap();
    let mut source = spec.open(&CaptureConfig::default()).unwrap();
    let mut frame = Frame::empty();

    source.next_frame(&mut frame, T).unwrap();
    assert_eq!(frame.rgb.dimensions(), (20, 10));
    assert!(near(mean(&frame), [10, 200, 10]));
    assert_eq!(frame.seq, 0);

    source.next_frame(&mut frame, T).unwrap();
    assert_eq!(frame.rgb.dimensions(), (40, 30));
    assert!(near(mean(&frame), [200, 30, 30]), "{:?}", mean(&frame));

    source.next_frame(&mut frame, T).unwrap();
    assert_eq!(frame.rgb.dimensions(), (16, 8));
    assert!(
        frame.rgb.pixels().all(|p| p.0 == [77, 77, 77]),
        "gray replicated"
    );
    assert_eq!(frame.seq, 2);

    let err = source.next_frame(&mut frame, T).unwrap_err();
    assert!(matches!(err, SourceError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("c2.JPG"), "{err}");

    let end = source.next_frame(&mut frame, T).unwrap_err();
    assert!(matches!(end, SourceError::EndOfStream { .. }), "{end}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn folder_source_reads_lfw_person_folders() {
    let people: Vec<PathBuf> = std::fs::read_dir(LFW)
        .expect("LFW test data in ../shared/data/lfw (see its README)")
        .map(|e| e.unwrap().path())
        .take(5)
        .collect();
    for person in people {
        let count = std::fs::read_dir(&person).unwrap().count();
        let spec: SourceSpec = format!("frames:{}", person.display()).parse().unwrap();
        let mut source = spec.open(&CaptureConfig::default()).unwrap();
        let mut frame = Frame::empty();
        let mut got = 0;
        loop {
            match source.next_frame(&mut frame, T) {
                Ok(()) => {
                    assert_eq!(frame.rgb.dimensions(), (250, 250));
                    got += 1;
                }
                Err(SourceError::EndOfStream { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, count, "{}", person.display());
    }
}

#[test]
fn missing_or_empty_folders_are_open_errors_naming_the_path() {
    let missing = Path::new("/nonexistent/lanewatch/frames");
    let spec: SourceSpec = format!("frames:{}", missing.display()).parse().unwrap();
    let err = spec
        .open(&CaptureConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/nonexistent/lanewatch/frames"), "{err}");
    let empty = temp_dir("empty");
    let spec: SourceSpec = format!("frames:{}", empty.display()).parse().unwrap();
    let err = spec
        .open(&CaptureConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no .jpg"), "{err}");
}

/// A JPEG with an APP1 segment that embeds another complete JPEG (as EXIF thumbnails do).
fn with_thumbnail(main: &[u8], thumb: &[u8]) -> Vec<u8> {
    let mut out = main[..2].to_vec();
    let len = u16::try_from(thumb.len() + 2).unwrap();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(thumb);
    out.extend_from_slice(&main[2..]);
    out
}

/// Hands out at most 7 bytes per read, so markers straddle reads.
struct Dribble(std::io::Cursor<Vec<u8>>);

impl Read for Dribble {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7);
        self.0.read(&mut buf[..n])
    }
}

fn run_to_end(source: &mut dyn FrameSource) -> (Vec<[f64; 3]>, usize) {
    let mut frame = Frame::empty();
    let (mut good, mut corrupt) = (Vec::new(), 0);
    for _ in 0..1000 {
        match source.next_frame(&mut frame, T) {
            Ok(()) => good.push(mean(&frame)),
            Err(SourceError::Corrupt { .. }) => corrupt += 1,
            Err(SourceError::EndOfStream { .. }) => return (good, corrupt),
            Err(e) => panic!("{e}"),
        }
    }
    panic!("source never ended");
}

fn recording() -> (Vec<u8>, Vec<[u8; 3]>) {
    let colors = [
        [250, 10, 10],
        [10, 250, 10],
        [10, 10, 250],
        [128, 128, 128],
        [200, 200, 20],
    ];
    let frames: Vec<Vec<u8>> = colors.iter().map(|&c| jpeg(&solid(64, 48, c))).collect();
    let thumb = jpeg(&solid(8, 8, [0, 0, 0]));
    let mut stream = Vec::new();
    stream.extend_from_slice(b"garbage before the first frame \xFF\x00\xFF");
    stream.extend_from_slice(&frames[0]);
    // A frame cut short by a dropped USB packet, followed directly by the next frame.
    stream.extend_from_slice(&frames[3][..frames[3].len() / 2]);
    stream.extend_from_slice(&with_thumbnail(&frames[1], &thumb));
    stream.extend_from_slice(b"\x00\x00junk\xFF\xD9");
    stream.extend_from_slice(&frames[2]);
    // Back-to-back clean frames after the garbage: reading resumed.
    stream.extend_from_slice(&frames[4]);
    // Truncated at the end of the file.
    stream.extend_from_slice(&frames[0][..frames[0].len() - 10]);
    (stream, vec![colors[0], colors[1], colors[2], colors[4]])
}

#[test]
fn mjpeg_recording_skips_and_counts_damaged_frames() {
    let (stream, want) = recording();
    let dir = temp_dir("mjpeg");
    let path = dir.join("lane.mjpeg");
    std::fs::write(&path, &stream).unwrap();
    let spec: SourceSpec = format!("mjpeg:{}", path.display()).parse().unwrap();
    let mut source = spec.open(&CaptureConfig::default()).unwrap();
    let (good, corrupt) = run_to_end(&mut source);
    assert_eq!(good.len(), want.len(), "good frames {good:?}");
    for (g, w) in good.iter().zip(&want) {
        assert!(near(*g, *w), "{g:?} vs {w:?}");
    }
    assert_eq!(
        corrupt, 2,
        "the truncated middle frame and the truncated last frame"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mjpeg_markers_split_across_reads_are_found() {
    let (stream, want) = recording();
    let mut source = MjpegFileSource::from_reader(
        Box::new(Dribble(std::io::Cursor::new(stream))),
        "mjpeg:dribble".into(),
        1 << 20,
    );
    let (good, corrupt) = run_to_end(&mut source);
    assert_eq!(good.len(), want.len());
    assert_eq!(corrupt, 2);
    let stats = source.stats();
    assert_eq!(stats.delivered, want.len() as u64);
    assert_eq!(stats.corrupt, 2);
    assert!(stats.skipped_bytes >= 34, "garbage counted: {stats:?}");
}

#[test]
fn mjpeg_frames_over_the_size_limit_are_skipped_and_reading_resumes() {
    let big = jpeg(&RgbImage::from_fn(256, 256, |x, y| {
        image::Rgb([(x ^ y) as u8, x as u8, y as u8])
    }));
    let small = jpeg(&solid(16, 16, [90, 90, 90]));
    assert!(big.len() > 4000 && small.len() < 2000);
    let mut stream = big.clone();
    stream.extend_from_slice(&small);
    let mut source = MjpegFileSource::from_reader(
        Box::new(std::io::Cursor::new(stream)),
        "mjpeg:limit".into(),
        3000,
    );
    let (good, corrupt) = run_to_end(&mut source);
    assert_eq!(corrupt, 1);
    assert_eq!(good.len(), 1);
    assert!(near(good[0], [90, 90, 90]));
}

#[test]
fn scan_finds_one_frame_exactly() {
    let f = jpeg(&solid(8, 8, [1, 2, 3]));
    let mut buf = b"xx".to_vec();
    buf.extend_from_slice(&f);
    buf.extend_from_slice(&f);
    assert_eq!(
        scan(&buf, false, 1 << 20),
        Scan::Frame {
            start: 2,
            end: 2 + f.len()
        }
    );
    assert_eq!(
        scan(&buf[..2 + f.len() - 1], false, 1 << 20),
        Scan::NeedMore { discard: 2 }
    );
    assert!(matches!(
        scan(&buf[..2 + f.len() - 1], true, 1 << 20),
        Scan::Corrupt { .. }
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn scan_never_panics_and_always_makes_progress(bytes in proptest::collection::vec(any::<u8>(), 0..600), eof: bool) {
        match scan(&bytes, eof, 256) {
            Scan::Frame { start, end } => prop_assert!(start < end && end <= bytes.len()),
            Scan::Corrupt { start, resume, .. } => prop_assert!(start < resume && resume <= bytes.len().max(start + 1)),
            Scan::NeedMore { discard } => prop_assert!(discard <= bytes.len()),
        }
    }

    #[test]
    fn mjpeg_source_survives_any_stream(bytes in proptest::collection::vec(prop_oneof![Just(0xFFu8), Just(0xD8), Just(0xD9), Just(0xDA), Just(0x00), any::<u8>()], 0..3000)) {
        let mut source = MjpegFileSource::from_reader(Box::new(std::io::Cursor::new(bytes)), "mjpeg:fuzz".into(), 1024);
        let mut frame = Frame::empty();
        let mut ended = false;
        for _ in 0..5000 {
            if let Err(SourceError::EndOfStream { .. }) = source.next_frame(&mut frame, T) {
                ended = true;
                break;
            }
        }
        prop_assert!(ended, "must reach the end of a finite stream");
    }
}

/// No camera exists on CI machines, but the V4L2 open path and its teardown still run: a missing
/// node fails at open(2), and /dev/null (not a V4L2 device) fails at VIDIOC_QUERYCAP, after which
/// the half-opened source is torn down without panicking.
#[cfg(feature = "v4l2")]
#[test]
fn v4l2_open_failures_are_clear_errors_and_recoverable() {
    use lanewatch::camera::reconnect::{ReconnectPolicy, reconnecting};

    let spec: SourceSpec = "v4l2:/dev/video-lanewatch-missing".parse().unwrap();
    let err = spec
        .open(&CaptureConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/dev/video-lanewatch-missing"), "{err}");
    assert!(err.contains("plugged in"), "{err}");

    let spec: SourceSpec = "v4l2:/dev/null".parse().unwrap();
    let err = spec
        .open(&CaptureConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("VIDIOC_QUERYCAP"), "{err}");

    let policy = ReconnectPolicy {
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        timeouts_before_reopen: 3,
    };
    let mut camera = reconnecting(spec, CaptureConfig::default(), policy).on_event(|_, _| {});
    let mut frame = Frame::empty();
    for _ in 0..5 {
        let err = camera
            .next_frame(&mut frame, Duration::from_millis(5))
            .unwrap_err();
        assert!(matches!(err, SourceError::Timeout { .. }), "{err}");
    }
    let stats = camera.stats();
    assert!(stats.open_failures >= 2, "{stats:?}");
    assert!(!stats.connected);
}

/// A real small JPEG whose frame header (SOF) claims `w` x `h`: what a hostile 9 KB file looks like.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut bytes = jpeg(&solid(16, 16, [90, 90, 90]));
    let sof = bytes
        .windows(2)
        .position(|m| m[0] == 0xFF && (m[1] == 0xC0 || m[1] == 0xC2))
        .expect("a SOF marker");
    // FF C0, length (2), precision (1), height (2), width (2)
    bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    bytes
}

/// Frames from files are capped at 4096x4096 from the header, before any pixel buffer is made:
/// an image claiming 8192x8192 is a corrupt frame, and the frame buffer never grows for it.
#[test]
fn oversized_images_are_refused_from_the_header_without_decoding() {
    use lanewatch::camera::pixel::{JpegDecoder, MAX_FILE_DIMENSION, decode_photo};

    let dir = temp_dir("frames-huge");
    std::fs::write(dir.join("a.jpg"), jpeg_claiming(8192, 8192)).unwrap();
    std::fs::write(dir.join("b.jpg"), jpeg_claiming(4097, 16)).unwrap();
    std::fs::write(dir.join("c.jpg"), jpeg(&solid(40, 30, [200, 30, 30]))).unwrap();
    let spec: SourceSpec = format!("frames:{}", dir.display()).parse().unwrap();
    let mut source = spec.open(&CaptureConfig::default()).unwrap();
    let mut frame = Frame::empty();
    for name in ["a.jpg", "b.jpg"] {
        let err = source.next_frame(&mut frame, T).unwrap_err();
        assert!(matches!(err, SourceError::Corrupt { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(name) && text.contains("larger than"),
            "{text}"
        );
        assert!(
            frame.rgb.as_raw().capacity() < 1 << 20,
            "a buffer was made for {name}"
        );
    }
    source.next_frame(&mut frame, T).unwrap();
    assert_eq!(frame.rgb.dimensions(), (40, 30));
    std::fs::remove_dir_all(&dir).unwrap();

    // A recording: same limit.
    let mut rec = jpeg_claiming(8192, 8192);
    rec.extend(jpeg(&solid(24, 16, [10, 10, 200])));
    let mut source = MjpegFileSource::from_reader(
        Box::new(std::io::Cursor::new(rec)),
        "mjpeg:test".into(),
        1 << 20,
    );
    let err = source.next_frame(&mut frame, T).unwrap_err();
    assert!(matches!(err, SourceError::Corrupt { .. }), "{err}");
    source.next_frame(&mut frame, T).unwrap();
    assert_eq!(frame.rgb.dimensions(), (24, 16));

    // A camera is held to its configured capture size (V4L2 MJPEG uses this decoder).
    let camera = JpegDecoder::with_max_size(640, 480);
    let mut rgb = RgbImage::default();
    let err = camera
        .decode_into(&jpeg_claiming(1280, 720), &mut rgb)
        .unwrap_err();
    assert!(err.to_string().contains("1280x720"), "{err}");
    assert_eq!(rgb.as_raw().capacity(), 0);
    camera
        .decode_into(&jpeg(&solid(640, 480, [1, 2, 3])), &mut rgb)
        .unwrap();

    // Enrolment photos.
    let err = decode_photo(&jpeg_claiming(8192, 8192)).unwrap_err();
    assert!(err.to_string().contains("8192"), "{err}");
    assert_eq!(MAX_FILE_DIMENSION, 4096);
    assert_eq!(
        decode_photo(&jpeg(&solid(20, 10, [0, 0, 0])))
            .unwrap()
            .dimensions(),
        (20, 10)
    );
}

/// Decoder messages are flattened to one line: a log line is never split.
#[test]
fn decode_errors_are_one_line() {
    let whole = jpeg(&solid(64, 64, [9, 9, 9]));
    let dir = temp_dir("frames-oneline");
    for (i, cut) in [whole.len() / 2, 40, 200].into_iter().enumerate() {
        let mut bytes = whole[..cut.min(whole.len())].to_vec();
        bytes.extend(b"\n\r\x1b[2J junk");
        std::fs::write(dir.join(format!("{i}.jpg")), &bytes).unwrap();
    }
    let spec: SourceSpec = format!("frames:{}", dir.display()).parse().unwrap();
    let mut source = spec.open(&CaptureConfig::default()).unwrap();
    let mut frame = Frame::empty();
    loop {
        match source.next_frame(&mut frame, T) {
            Ok(()) => {}
            Err(SourceError::EndOfStream { .. }) => break,
            Err(e) => {
                let text = e.to_string();
                assert!(!text.contains('\n') && !text.contains('\r'), "{text:?}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A folder entry that is a FIFO (directly or behind a symlink) is skipped as corrupt, named, and
/// never opened for a blocking read.
#[cfg(unix)]
#[test]
fn fifos_in_a_frames_folder_are_skipped_without_blocking() {
    let dir = temp_dir("frames-fifo");
    let fifo = dir.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "mkfifo(1) failed or is missing (Debian's coreutils has it)"
    );
    std::os::unix::fs::symlink(&fifo, dir.join("a.jpg")).unwrap();
    std::fs::write(dir.join("b.jpg"), jpeg(&solid(40, 30, [200, 30, 30]))).unwrap();
    let spec: SourceSpec = format!("frames:{}", dir.display()).parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut source = spec.open(&CaptureConfig::default()).unwrap();
        let mut frame = Frame::empty();
        let first = source.next_frame(&mut frame, T).map_err(|e| e.to_string());
        let second = source
            .next_frame(&mut frame, T)
            .map(|()| frame.rgb.dimensions());
        let _ = tx.send((first, second.map_err(|e| e.to_string())));
    });
    let (first, second) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the folder source blocked on a FIFO");
    let err = first.unwrap_err();
    assert!(err.contains("a.jpg") && err.contains("FIFO"), "{err}");
    assert_eq!(second.unwrap(), (40, 30));
    std::fs::remove_dir_all(&dir).unwrap();
}
