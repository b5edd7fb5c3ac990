//! A scripted source for tests and demos without hardware: a shared list of steps (frames,
//! timeouts, unplugs, corrupt frames, failed opens, panics) played across successive opens, so that
//! a [`super::reconnect::Reconnecting`] wrapper can be driven through every fault a camera shows.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use image::RgbImage;

use super::pixel;
use super::{Frame, FrameSource, SourceError};

/// One scripted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A frame whose every byte is this value.
    Frame(u8),
    /// The picture at this index of [`Script::with_pictures`] (a real face, for pipeline tests).
    Picture(usize),
    /// No frame in time.
    Timeout,
    /// The device disappears: this source instance returns `Unplugged` from now on.
    Unplug,
    /// One unusable frame.
    Corrupt,
    /// The stream ends.
    End,
    /// The next open of the source fails (consumed by [`Script::open`]).
    OpenFail,
    /// `next_frame` panics (a driver or library bug).
    Panic,
    /// The current source instance will panic when dropped (as the v4l crate's stream can).
    PanicOnDrop,
}

#[derive(Debug, Default)]
struct Shared {
    steps: Mutex<VecDeque<Step>>,
    live: AtomicUsize,
    opens: AtomicU64,
}

/// The script, shared by every source opened from it.
#[derive(Debug, Clone)]
pub struct Script {
    shared: Arc<Shared>,
    width: u32,
    height: u32,
    pictures: Arc<Vec<RgbImage>>,
}

impl Script {
    /// A script whose frames are `width` x `height`.
    pub fn new(width: u32, height: u32, steps: impl IntoIterator<Item = Step>) -> Self {
        Script {
            shared: Arc::new(Shared {
                steps: Mutex::new(steps.into_iter().collect()),
                ..Shared::default()
            }),
            width,
            height,
            pictures: Arc::new(Vec::new()),
        }
    }

    /// The pictures that [`Step::Picture`] steps play (each at its own size).
    pub fn with_pictures(mut self, pictures: Vec<RgbImage>) -> Self {
        self.pictures = Arc::new(pictures);
        self
    }

    fn pop_if(&self, want: Step) -> bool {
        let mut steps = self.shared.steps.lock().unwrap_or_else(|e| e.into_inner());
        if steps.front() == Some(&want) {
            steps.pop_front();
            true
        } else {
            false
        }
    }

    fn pop(&self) -> Option<Step> {
        let mut steps = self.shared.steps.lock().unwrap_or_else(|e| e.into_inner());
        steps.pop_front()
    }

    /// Opens a source: fails if the next step is [`Step::OpenFail`] (consuming it).
    pub fn open(&self) -> Result<ScriptedSource, SourceError> {
        if self.pop_if(Step::OpenFail) {
            return Err(SourceError::Open {
                origin: "scripted".into(),
                reason: "scripted open failure".into(),
            });
        }
        self.shared.opens.fetch_add(1, Ordering::SeqCst);
        self.shared.live.fetch_add(1, Ordering::SeqCst);
        Ok(ScriptedSource {
            script: self.clone(),
            unplugged: false,
            panic_on_drop: false,
            seq: 0,
        })
    }

    /// Sources opened from this script and not yet dropped: proves the wrapper does not leak.
    pub fn live_sources(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// Successful opens so far.
    pub fn opens(&self) -> u64 {
        self.shared.opens.load(Ordering::SeqCst)
    }

    /// Steps not yet played.
    pub fn remaining(&self) -> usize {
        self.shared
            .steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// One opened instance of a [`Script`].
#[derive(Debug)]
pub struct ScriptedSource {
    script: Script,
    unplugged: bool,
    panic_on_drop: bool,
    seq: u64,
}

impl FrameSource for ScriptedSource {
    fn next_frame(&mut self, frame: &mut Frame, timeout: Duration) -> Result<(), SourceError> {
        let origin = || "scripted".to_string();
        if self.unplugged {
            return Err(SourceError::Unplugged {
                origin: origin(),
                detail: "scripted device is gone".into(),
            });
        }
        loop {
            let step = self.script.pop().unwrap_or(Step::End);
            return match step {
                Step::Frame(v) => {
                    pixel::reshape(&mut frame.rgb, self.script.width, self.script.height).map_err(
                        |e| SourceError::Corrupt {
                            origin: origin(),
                            reason: e.to_string(),
                        },
                    )?;
                    frame.rgb.as_mut().fill(v);
                    frame.timestamp = SystemTime::now();
                    frame.seq = self.seq;
                    self.seq += 1;
                    Ok(())
                }
                Step::Picture(i) => {
                    let Some(picture) = self.script.pictures.get(i) else {
                        return Err(SourceError::Corrupt {
                            origin: origin(),
                            reason: format!("script has no picture {i}"),
                        });
                    };
                    pixel::reshape(&mut frame.rgb, picture.width(), picture.height()).map_err(
                        |e| SourceError::Corrupt {
                            origin: origin(),
                            reason: e.to_string(),
                        },
                    )?;
                    frame.rgb.as_mut().copy_from_slice(picture.as_raw());
                    frame.timestamp = SystemTime::now();
                    frame.seq = self.seq;
                    self.seq += 1;
                    Ok(())
                }
                Step::Timeout => Err(SourceError::Timeout {
                    origin: origin(),
                    waited: timeout,
                }),
                Step::Unplug => {
                    self.unplugged = true;
                    Err(SourceError::Unplugged {
                        origin: origin(),
                        detail: "scripted unplug (ENODEV)".into(),
                    })
                }
                Step::Corrupt => Err(SourceError::Corrupt {
                    origin: origin(),
                    reason: "scripted corrupt frame".into(),
                }),
                Step::End => Err(SourceError::EndOfStream { origin: origin() }),
                // An open failure scripted while a source is running applies to the next open.
                Step::OpenFail => {
                    let mut steps = self
                        .script
                        .shared
                        .steps
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    steps.push_front(Step::OpenFail);
                    drop(steps);
                    self.unplugged = true;
                    Err(SourceError::Unplugged {
                        origin: origin(),
                        detail: "scripted unplug before a failed reopen".into(),
                    })
                }
                Step::Panic => panic!("scripted panic in next_frame"),
                Step::PanicOnDrop => {
                    self.panic_on_drop = true;
                    continue;
                }
            };
        }
    }

    fn name(&self) -> &str {
        "scripted"
    }
}

impl Drop for ScriptedSource {
    fn drop(&mut self) {
        self.script.shared.live.fetch_sub(1, Ordering::SeqCst);
        if self.panic_on_drop && !std::thread::panicking() {
            panic!("scripted panic while dropping the source");
        }
    }
}
