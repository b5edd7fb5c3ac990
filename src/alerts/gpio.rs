//! GPIO output for alerts (feature `gpio`): pulses one line of a GPIO character device (a lane
//! light or relay) for a fixed time per alert. The pulse runs on its own thread so that the
//! pipeline never waits for it.

use std::path::PathBuf;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use gpiocdev::line::Value;
use gpiocdev::request::Request;

use super::{Alert, AlertSink};

/// Which line to drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpioConfig {
    /// e.g. `/dev/gpiochip0`.
    pub chip: PathBuf,
    pub line: u32,
    pub active_low: bool,
    pub pulse: Duration,
}

/// Pulses a GPIO line once per alert.
pub struct GpioSink {
    tx: Option<SyncSender<()>>,
    worker: Option<JoinHandle<()>>,
}

impl GpioSink {
    /// Requests the line as an output (inactive) and starts the pulse thread.
    pub fn open(config: &GpioConfig) -> Result<Self, String> {
        let mut builder = Request::builder();
        builder
            .on_chip(&config.chip)
            .with_consumer("lanewatch")
            .with_line(config.line)
            .as_output(Value::Inactive);
        if config.active_low {
            builder.as_active_low();
        }
        let request = builder.request().map_err(|e| {
            format!(
                "cannot request GPIO line {} on {}: {e}; check the chip path, the line number and that no other program holds it",
                config.line,
                config.chip.display()
            )
        })?;
        let (tx, rx) = mpsc::sync_channel::<()>(16);
        let line = config.line;
        let pulse = config.pulse;
        let worker = std::thread::Builder::new()
            .name("lanewatch-gpio".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    if let Err(e) = request.set_value(line, Value::Active) {
                        eprintln!("lanewatch: gpio line {line}: {e}");
                        continue;
                    }
                    std::thread::sleep(pulse);
                    if let Err(e) = request.set_value(line, Value::Inactive) {
                        eprintln!("lanewatch: gpio line {line}: {e}");
                    }
                }
            })
            .map_err(|e| format!("cannot start the GPIO thread: {e}"))?;
        Ok(GpioSink {
            tx: Some(tx),
            worker: Some(worker),
        })
    }
}

impl AlertSink for GpioSink {
    fn name(&self) -> &str {
        "gpio"
    }

    fn deliver(&mut self, _alert: &Alert, _journaled: bool) -> Result<(), String> {
        let Some(tx) = &self.tx else {
            return Err("gpio worker stopped".into());
        };
        match tx.try_send(()) {
            // Pulses already queued signal the same thing.
            Ok(()) | Err(TrySendError::Full(())) => Ok(()),
            Err(TrySendError::Disconnected(())) => Err("gpio worker stopped".into()),
        }
    }
}

impl Drop for GpioSink {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
