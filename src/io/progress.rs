//! A one-line progress bar on stderr, hand-written (no terminal dependency).
//!
//! On a terminal the line is redrawn in place (`\r`) at most ten times a second; when
//! stderr is redirected to a file, a plain line is printed at every tenth of the way
//! instead, so logs stay readable. Drawing never touches stdout, so a program's
//! machine-readable output (e.g. a final JSON line) stays clean.
//!
//! ```
//! use gumbelgrad::io::ProgressBar;
//! let mut bar = ProgressBar::new(1000).hidden(); // hidden: draws nothing (for this doc)
//! for step in 1..=1000 {
//!     bar.set(step, &format!("loss {:.1}", 100.0 / step as f64));
//! }
//! bar.finish("done");
//! assert_eq!(bar.position(), 1000);
//! ```

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A progress bar counting up to a known total.
#[derive(Debug)]
pub struct ProgressBar {
    total: u64,
    position: u64,
    start: Instant,
    last_draw: Option<Instant>,
    last_tenth: u64,
    terminal: bool,
    hidden: bool,
    unit: &'static str,
}

impl ProgressBar {
    /// A bar for `total` steps, starting its clock now.
    pub fn new(total: u64) -> Self {
        ProgressBar {
            total: total.max(1),
            position: 0,
            start: Instant::now(),
            last_draw: None,
            last_tenth: 0,
            terminal: std::io::stderr().is_terminal(),
            hidden: false,
            unit: "steps",
        }
    }

    /// Names what is counted in the rate (default `"steps"`, e.g. `"images"`).
    pub fn unit(mut self, unit: &'static str) -> Self {
        self.unit = unit;
        self
    }

    /// Time left at the rate so far (`None` before the first step).
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate();
        (rate > 0.0).then(|| Duration::from_secs_f64((self.total - self.position) as f64 / rate))
    }

    /// Draws nothing (for quiet runs and tests); still counts.
    pub fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

    /// Steps done so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Steps per second since the bar was created.
    pub fn rate(&self) -> f64 {
        let seconds = self.start.elapsed().as_secs_f64();
        if seconds > 0.0 {
            self.position as f64 / seconds
        } else {
            0.0
        }
    }

    /// Moves to `position` and shows `message` (e.g. `"loss 123.4 tau 0.87"`).
    pub fn set(&mut self, position: u64, message: &str) {
        self.position = position.min(self.total);
        if self.hidden {
            return;
        }
        let now = Instant::now();
        if self.terminal {
            let due = self
                .last_draw
                .is_none_or(|t| now - t >= Duration::from_millis(100));
            if due || self.position == self.total {
                self.last_draw = Some(now);
                eprint!("\r{}\x1b[K", self.line(message));
                let _ = std::io::stderr().flush();
            }
        } else {
            let tenth = self.position * 10 / self.total;
            if tenth > self.last_tenth {
                self.last_tenth = tenth;
                eprintln!("{}", self.line(message));
            }
        }
    }

    /// On a terminal, erases the bar's line so that other text can be printed; the
    /// next [`set`](Self::set) draws it again. Does nothing otherwise.
    pub fn clear(&mut self) {
        if self.terminal && !self.hidden {
            eprint!("\r\x1b[K");
            let _ = std::io::stderr().flush();
            self.last_draw = None;
        }
    }

    /// Draws the final state and ends the line.
    pub fn finish(&mut self, message: &str) {
        if self.hidden {
            return;
        }
        if self.terminal {
            eprintln!("\r{}\x1b[K", self.line(message));
        } else if self.last_tenth < 10 {
            eprintln!("{}", self.line(message));
        }
    }

    /// The text of the bar: `[#####.....] 500/1000  12.3 steps/s  ETA 0:41  message`.
    pub fn line(&self, message: &str) -> String {
        const WIDTH: u64 = 30;
        let filled = (self.position * WIDTH / self.total) as usize;
        let eta = match self.eta() {
            Some(left) => clock(left),
            None => "?".to_string(),
        };
        format!(
            "[{}{}] {}/{}  {:.1} {}/s  ETA {}  {}",
            "#".repeat(filled),
            ".".repeat(WIDTH as usize - filled),
            self.position,
            self.total,
            self.rate(),
            self.unit,
            eta,
            message
        )
    }
}

/// `m:ss`, or `h:mm:ss` from an hour on.
fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}
